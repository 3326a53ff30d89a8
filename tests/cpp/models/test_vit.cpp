// Full-precision ViT / DeiT: presets (parameter names and counts as timm's), weights files, and — in the hidden
// [timm] tests that tests/python/test_models_timm.py runs with files it writes first — equality with timm.
#include <ATen/ATen.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "csrc/models/swin.h"
#include "csrc/models/vit.h"
#include "csrc/models/weights.h"

using namespace mnq::models;
namespace fs = std::filesystem;

namespace {

int64_t count_params(const torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

std::string env(const char* name) {
  const char* v = std::getenv(name);
  INFO("environment variable " << name << " (set by tests/python/test_models_timm.py)");
  REQUIRE(v != nullptr);
  return v;
}

at::Tensor tensor_named(const NamedTensors& ts, const std::string& key) {
  for (const auto& [k, t] : ts) {
    if (k == key) return t;
  }
  FAIL("no tensor '" << key << "'");
  return {};
}

fs::path temp_file(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("mnq_vit_test_" + std::to_string(::getpid()));
  fs::create_directories(d);
  return d / name;
}

}  // namespace

TEST_CASE("timm presets have timm's parameter counts", "[vit]") {
  // numbers from timm 1.0.31: sum(p.numel() for p in timm.create_model(name).parameters())
  const std::map<std::string, int64_t> timm_counts = {{"vit_small_patch16_224", 22050664},
                                                      {"vit_base_patch16_224", 86567656},
                                                      {"deit_tiny_patch16_224", 5717416},
                                                      {"deit_small_patch16_224", 22050664},
                                                      {"deit_base_patch16_224", 86567656},
                                                      {"deit_tiny_distilled_patch16_224", 5910800},
                                                      {"deit_small_distilled_patch16_224", 22436432},
                                                      {"deit_base_distilled_patch16_224", 87338192}};
  for (const auto& [name, count] : timm_counts) {
    INFO(name);
    REQUIRE(count_params(*VisionTransformer(vit_preset(name))) == count);
  }
}

TEST_CASE("every preset constructs and maps images to logits", "[vit]") {
  for (const auto& name : vit_preset_names()) {
    const ViTConfig c = vit_preset(name);
    if (c.img_size > 32) continue;  // the 224×224 ones are counted above; a forward of each is slow on CPU
    INFO(name);
    VisionTransformer m(c);
    m->eval();
    const at::Tensor y = m->forward(at::randn({2, c.in_chans, c.img_size, c.img_size}));
    REQUIRE(y.sizes() == at::IntArrayRef({2, c.num_classes}));
    REQUIRE(at::isfinite(y).all().item<bool>());
  }
  REQUIRE_THROWS_WITH(vit_preset("vit_huge"), Catch::Contains("vit_huge") && Catch::Contains("deit_tiny_patch16_224"));
}

TEST_CASE("parameter names are timm's", "[vit]") {
  const auto names = VisionTransformer(vit_preset("deit_mnist_tiny_distilled"))->named_parameters().keys();
  for (const char* k : {"cls_token", "pos_embed", "dist_token", "patch_embed.proj.weight", "blocks.0.norm1.weight",
                        "blocks.0.attn.qkv.weight", "blocks.0.attn.proj.bias", "blocks.3.mlp.fc2.weight", "norm.bias",
                        "head.weight", "head_dist.weight"}) {
    INFO(k);
    REQUIRE(std::count(names.begin(), names.end(), k) == 1);
  }
}

TEST_CASE("weights round-trip through safetensors, and bad files are named", "[vit][weights]") {
  const ViTConfig c = vit_preset("vit_mnist_tiny");
  VisionTransformer a(c), b(c);
  a->eval();
  b->eval();
  const fs::path f = temp_file("w.safetensors");
  save_weights(*a, f.string());
  load_weights(*b, f.string(), true);
  const at::Tensor x = at::randn({3, 1, 28, 28});
  REQUIRE(at::equal(a->forward(x), b->forward(x)));

  NamedTensors ts = read_safetensors(f.string());
  REQUIRE(ts.front().first == "cls_token");  // file order = module order
  ts.erase(ts.begin() + 1);                  // drop pos_embed
  write_safetensors(f.string(), ts);
  REQUIRE_THROWS_WITH(load_weights(*b, f.string()),
                      Catch::Contains(f.string()) && Catch::Contains("missing key 'pos_embed'"));

  ts = read_safetensors(f.string());
  ts.emplace_back("pos_embed", at::zeros({1, 10, 64}));
  write_safetensors(f.string(), ts);
  REQUIRE_THROWS_WITH(load_weights(*b, f.string()),
                      Catch::Contains("'pos_embed' has shape [1, 10, 64] in the file but [1, 50, 64]"));

  ts.back() = {"pos_embed", at::zeros({1, 50, 64})};
  ts.emplace_back("head_dist.weight", at::zeros({10, 64}));
  write_safetensors(f.string(), ts);
  REQUIRE_THROWS_WITH(load_weights(*b, f.string()), Catch::Contains("unexpected key 'head_dist.weight'"));

  REQUIRE_THROWS_WITH(read_safetensors("/nonexistent.safetensors"), Catch::Contains("/nonexistent.safetensors"));
  std::ofstream(f, std::ios::binary) << "short";
  REQUIRE_THROWS_WITH(read_safetensors(f.string()), Catch::Contains("too short"));
}

// Run by tests/python/test_models_timm.py: MNQ_TIMM_PRESET names the preset, MNQ_TIMM_WEIGHTS the exported timm
// weights, MNQ_TIMM_IO a file with `input` and timm's eval-mode `output` (and `features`, forward_features).
TEST_CASE("the FP model equals timm's forward on the same weights", "[.][timm]") {
  VisionTransformer m(vit_preset(env("MNQ_TIMM_PRESET")));
  load_weights(*m, env("MNQ_TIMM_WEIGHTS"));
  m->eval();
  const NamedTensors io = read_safetensors(env("MNQ_TIMM_IO"));
  const at::Tensor x = tensor_named(io, "input");
  at::NoGradGuard no_grad;
  const at::Tensor f = m->forward_features(x), y = m->forward(x);
  const at::Tensor want_f = tensor_named(io, "features"), want_y = tensor_named(io, "output");
  INFO("max |features - timm| = " << (f - want_f).abs().max().item<double>());
  INFO("max |logits - timm| = " << (y - want_y).abs().max().item<double>());
  // timm uses fused scaled-dot-product attention; the difference is float32 rounding only
  REQUIRE(at::allclose(f, want_f, 1e-4, 1e-4));
  REQUIRE(at::allclose(y, want_y, 1e-4, 1e-4));
}

// Run by tests/python/test_models_timm.py: MNQ_TIMM_SHAPES is a JSON {preset: {parameter: shape}} from timm.
TEST_CASE("every timm-named preset has timm's parameter names and shapes", "[.][timm]") {
  std::ifstream in(env("MNQ_TIMM_SHAPES"));
  const nlohmann::json want = nlohmann::json::parse(in);
  REQUIRE(want.size() >= 10);
  for (const auto& [name, shapes] : want.items()) {
    INFO(name);
    const bool swin = name.rfind("swin", 0) == 0;
    const auto params = swin ? SwinTransformer(swin_preset(name))->named_parameters()
                             : VisionTransformer(vit_preset(name))->named_parameters();
    REQUIRE(params.size() == shapes.size());
    for (const auto& item : params) {
      INFO(item.key());
      REQUIRE(shapes.contains(item.key()));
      REQUIRE(item.value().sizes().vec() == shapes.at(item.key()).get<std::vector<int64_t>>());
    }
  }
}
