// The method plan: parsing, precedence (layer > op type > all), canonical round trip, atomic save, and errors
// that name the offending key or file.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "csrc/models/plan.h"
#include "csrc/models/presets.h"

using mnq::models::OpType;
using mnq::models::Plan;
namespace fs = std::filesystem;

namespace {
fs::path temp_dir() {
  const fs::path d = fs::temp_directory_path() / ("mnq_plan_test_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d;
}
}  // namespace

TEST_CASE("layer names map to op types by suffix", "[plan]") {
  using mnq::models::layer_op_type;
  REQUIRE(layer_op_type("blocks.0.norm1") == OpType::kLayerNorm);
  REQUIRE(layer_op_type("blocks.11.norm2") == OpType::kLayerNorm);
  REQUIRE(layer_op_type("blocks.3.attn.softmax") == OpType::kSoftmax);
  REQUIRE(layer_op_type("blocks.3.mlp.gelu") == OpType::kGelu);
  REQUIRE(layer_op_type("norm") == OpType::kLayerNorm);
  REQUIRE(layer_op_type("layers.2.blocks.5.attn.softmax") == OpType::kSoftmax);
  REQUIRE(layer_op_type("layers.1.downsample.norm") == OpType::kLayerNorm);
  REQUIRE_FALSE(layer_op_type("blocks.0.attn.qkv"));
  REQUIRE_FALSE(layer_op_type("blocks.x.norm1"));
  REQUIRE_FALSE(layer_op_type("softmax"));
}

TEST_CASE("a layer key overrides its op type, which overrides all", "[plan]") {
  const Plan p = Plan::parse("all: ivit\nsoftmax: ibert\nblocks.1.attn.softmax: fqvit\nblocks.0.norm1: ibert\n");
  REQUIRE(p.method_for("blocks.0.attn.softmax") == "ibert");
  REQUIRE(p.method_for("blocks.1.attn.softmax") == "fqvit");
  REQUIRE(p.method_for("blocks.0.norm1") == "ibert");
  REQUIRE(p.method_for("blocks.0.norm2") == "ivit");
  REQUIRE(p.method_for("blocks.0.mlp.gelu") == "ivit");
  REQUIRE(p.method_for("norm") == "ivit");
}

TEST_CASE("resolve covers every layer of a model", "[plan]") {
  const auto layers = mnq::models::vit_layer_names(mnq::models::vit_preset("vit_mnist_tiny"));
  REQUIRE(layers.size() == 4 * 4 + 1);
  const auto m = Plan::parse("gelu: ibert\nlayernorm: fqvit\nsoftmax: ivit\n").resolve(layers);
  REQUIRE(m.size() == layers.size());
  REQUIRE(m.at("blocks.3.mlp.gelu") == "ibert");
  REQUIRE(m.at("norm") == "fqvit");
  REQUIRE(m.at("blocks.2.attn.softmax") == "ivit");
}

TEST_CASE("bad plans give errors naming the key", "[plan]") {
  REQUIRE_THROWS_WITH(Plan::parse("all: ivit\nblocks.0.attn.qkv: ibert\n", "p.yaml"),
                      Catch::Contains("p.yaml") && Catch::Contains("unknown plan key 'blocks.0.attn.qkv'"));
  REQUIRE_THROWS_WITH(Plan::parse("softmax: relu\n", "p.yaml"), Catch::Contains("key 'softmax'") &&
                                                                    Catch::Contains("'relu'") &&
                                                                    Catch::Contains("ivit, ibert, fqvit"));
  REQUIRE_THROWS_WITH(Plan::parse("gelu: [ivit, ibert]\n", "p.yaml"), Catch::Contains("key 'gelu'"));
  REQUIRE_THROWS_WITH(Plan::parse("- ivit\n- ibert\n", "p.yaml"),
                      Catch::Contains("p.yaml") && Catch::Contains("mapping"));
  REQUIRE_THROWS_WITH(Plan::parse("all: [unclosed\n", "p.yaml"), Catch::Contains("p.yaml"));
  REQUIRE_THROWS_AS(Plan::parse("all: ivit\n").set("layernorm", "IVIT"), std::invalid_argument);

  const auto layers = mnq::models::vit_layer_names(mnq::models::vit_preset("vit_mnist_tiny"));
  REQUIRE_THROWS_WITH(Plan::parse("softmax: ivit\ngelu: ivit\n", "p.yaml").resolve(layers),
                      Catch::Contains("layer 'blocks.0.norm1' has no method"));
  // A well-formed layer name the model lacks (block 7 of a 4-block model) is a typo, not a no-op.
  REQUIRE_THROWS_WITH(Plan::parse("all: ivit\nblocks.7.norm1: ibert\n", "p.yaml").resolve(layers),
                      Catch::Contains("'blocks.7.norm1' is not a layer of this model"));
}

TEST_CASE("an unreadable plan file is named in the error", "[plan]") {
  REQUIRE_THROWS_WITH(Plan::load("/nonexistent/dir/plan.yaml"), Catch::Contains("/nonexistent/dir/plan.yaml"));
  const fs::path bad = temp_dir() / "bad.yaml";
  std::ofstream(bad) << "all: ivit\nnorm: bogus\n";
  REQUIRE_THROWS_WITH(Plan::load(bad.string()), Catch::Contains(bad.string()) && Catch::Contains("key 'norm'"));
}

TEST_CASE("plans round-trip through YAML and files", "[plan]") {
  Plan p = Plan::uniform("ivit");
  p.set("blocks.10.norm1", "ibert").set("blocks.2.attn.softmax", "fqvit").set("gelu", "ibert");
  p.set("blocks.2.norm1", "fqvit");
  const std::string text = p.to_yaml();
  // canonical order: defaults first, then layers in model order (block 2 before block 10, norm1 before softmax)
  REQUIRE(text ==
          "all: ivit\ngelu: ibert\nblocks.2.norm1: fqvit\nblocks.2.attn.softmax: fqvit\n"
          "blocks.10.norm1: ibert\n");
  REQUIRE(Plan::parse(text) == p);

  const fs::path file = temp_dir() / "plan.yaml";
  p.save(file.string());
  REQUIRE(Plan::load(file.string()) == p);
  p.set("norm", "ibert").save(file.string());  // overwrite in place
  REQUIRE(Plan::load(file.string()).method_for("norm") == "ibert");
  for (const auto& e : fs::directory_iterator(file.parent_path())) {
    REQUIRE(e.path().filename().string().find(".tmp") == std::string::npos);  // no temporary left behind
  }
  REQUIRE_THROWS_WITH(p.save("/nonexistent/dir/plan.yaml"), Catch::Contains("/nonexistent/dir"));
}
