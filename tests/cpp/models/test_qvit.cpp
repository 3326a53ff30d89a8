// The quantized ViT / DeiT: every uniform plan trains (forward + backward) and tracks the FP model on the same
// weights, mixed plans put each method where the plan says with SPEC §6's method-specific wiring, and a
// checkpoint reloads to bit-identical eval output.
#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>

#include "csrc/models/qvit.h"
#include "csrc/models/vit.h"
#include "csrc/models/weights.h"
#include "tests/cpp/models/model_test_util.h"

using namespace mnq::models;
namespace fs = std::filesystem;
using mnq_test::calibrate;

namespace {

// SPEC §7's SQNR of y against the reference x, in dB.
double sqnr_db(const at::Tensor& x, const at::Tensor& y) {
  return 20 * std::log10(x.norm().item<double>() / (x - y).norm().item<double>());
}

QuantVisionTransformer quant_model(const std::string& preset, const Plan& plan, int64_t bits = 8) {
  return QuantVisionTransformer(vit_preset(preset), QuantOptions{bits, plan});
}

}  // namespace

TEST_CASE("uniform plans run forward and backward and track the FP model", "[qvit]") {
  at::manual_seed(0);
  const ViTConfig c = vit_preset("vit_mnist_tiny");
  VisionTransformer fp(c);
  fp->eval();
  const fs::path f = mnq_test::temp_file("qvit", "fp.safetensors");
  save_weights(*fp, f.string());
  const at::Tensor x = at::randn({4, 1, 28, 28});
  const at::Tensor want = fp->forward(x).detach();

  for (const char* method : {"ivit", "ibert", "fqvit"}) {
    INFO("method " << method);
    QuantVisionTransformer m = quant_model("vit_mnist_tiny", Plan::uniform(method));
    load_weights(*m, f.string());  // FP weights load by their timm names; quantizer buffers keep their defaults
    calibrate(m, x);
    m->freeze_alpha();

    m->train();
    const at::Tensor y = m->forward(x);
    REQUIRE(y.sizes() == at::IntArrayRef({4, 10}));
    y.pow(2).mean().backward();
    for (const char* p : {"cls_token", "pos_embed", "patch_embed.proj.weight", "blocks.0.norm1.weight",
                          "blocks.0.attn.qkv.weight", "blocks.3.mlp.fc1.bias", "norm.bias", "head.weight"}) {
      INFO("gradient of " << p);
      const at::Tensor g = m->named_parameters()[p].grad();
      REQUIRE(g.defined());
      REQUIRE(at::isfinite(g).all().item<bool>());
      REQUIRE(g.abs().sum().item<double>() > 0);
    }

    m->eval();
    const at::Tensor q = m->forward(x).detach();
    const double db = sqnr_db(want, q);
    INFO("logit SQNR vs FP: " << db << " dB");
    REQUIRE(db > 15.0);  // measured 28.9 (ivit), 31.1 (ibert), 20.9 (fqvit)
  }
}

TEST_CASE("the distilled quantized DeiT averages its two heads in eval", "[qvit]") {
  QuantVisionTransformer m = quant_model("deit_mnist_tiny_distilled", Plan::uniform("ivit"));
  const at::Tensor x = at::randn({2, 1, 28, 28});
  calibrate(m, x);
  m->eval();
  at::NoGradGuard no_grad;
  auto [a, b] = m->forward_heads(x);
  REQUIRE(at::equal(m->forward(x), (a + b) / 2));
  REQUIRE(m->named_parameters().contains("dist_token"));
  REQUIRE(m->named_parameters().contains("head_dist.weight"));
}

TEST_CASE("a mixed plan puts each method where it says, with its wiring", "[qvit]") {
  const Plan plan = Plan::parse(
      "all: ivit\nlayernorm: ibert\nblocks.0.norm1: fqvit\nblocks.1.attn.softmax: fqvit\n"
      "blocks.2.attn.softmax: ibert\nblocks.1.mlp.gelu: ibert\nblocks.3.mlp.gelu: fqvit\nblocks.3.norm2: ivit\n");
  QuantVisionTransformer m = quant_model("vit_mnist_tiny", plan, 6);
  const auto methods = m->layer_methods();
  REQUIRE(methods == plan.resolve(vit_layer_names(m->config())));
  REQUIRE(methods.at("blocks.0.norm1") == "fqvit");
  REQUIRE(methods.at("blocks.0.norm2") == "ibert");
  REQUIRE(methods.at("blocks.1.attn.softmax") == "fqvit");
  REQUIRE(methods.at("blocks.1.mlp.gelu") == "ibert");
  REQUIRE(methods.at("norm") == "ibert");

  const auto names = m->named_buffers().keys();
  auto has = [&](const std::string& k) { return std::count(names.begin(), names.end(), k) == 1; };
  // fqvit LayerNorm reads through its own PtfAct; the others have none
  REQUIRE(has("blocks.0.norm1.ptf.alpha"));
  REQUIRE_FALSE(has("blocks.1.norm1.ptf.alpha"));
  // ibert GELU takes the fc1 accumulator: no quantizer before it
  REQUIRE_FALSE(has("blocks.1.mlp.qact_fc1.scale"));
  REQUIRE(has("blocks.0.mlp.qact_fc1.scale"));
  REQUIRE(has("blocks.3.mlp.qact_fc1.scale"));
  REQUIRE(has("blocks.1.mlp.qact_gelu.scale"));

  // residual quantizers feeding an ibert LayerNorm have 22 bits, the rest 16; W/A = 6 elsewhere
  const auto* b0 = m->blocks->ptr(0)->as<QuantBlock>();
  const auto* b3 = m->blocks->ptr(3)->as<QuantBlock>();
  REQUIRE(m->qact_pos_add->bits() == 16);  // feeds blocks.0.norm1 (fqvit)
  REQUIRE(b0->qact_res1->bits() == 22);  // feeds blocks.0.norm2 (ibert)
  REQUIRE(b0->qact_res2->bits() == 22);  // feeds blocks.1.norm1 (ibert)
  REQUIRE(b3->qact_res1->bits() == 16);  // feeds blocks.3.norm2 (ivit)
  REQUIRE(b3->qact_res2->bits() == 22);  // feeds norm (ibert)
  REQUIRE(b0->attn->qact_proj->bits() == 16);
  REQUIRE(b0->qact_norm1->bits() == 6);
  REQUIRE(b0->attn->qkv->bits() == 6);
  REQUIRE(m->blocks->ptr(0)->as<QuantBlock>()->norm1->ptf->bits() == 6);

  const at::Tensor x = at::randn({2, 1, 28, 28});
  calibrate(m, x);
  m->eval();
  REQUIRE(at::isfinite(m->forward(x)).all().item<bool>());
}

TEST_CASE("a checkpoint reloads to bit-identical eval output", "[qvit][weights]") {
  const Plan plan = Plan::parse(
      "softmax: fqvit\ngelu: ibert\nlayernorm: fqvit\nblocks.1.norm2: ibert\n"
      "blocks.2.attn.softmax: ivit\nblocks.2.mlp.gelu: ivit\n");
  QuantVisionTransformer a = quant_model("deit_mnist_tiny_distilled", plan);
  const at::Tensor x = at::randn({3, 1, 28, 28});
  calibrate(a, x);
  a->eval();
  const fs::path f = mnq_test::temp_file("qvit", "q.safetensors");
  save_weights(*a, f.string());

  QuantVisionTransformer b = quant_model("deit_mnist_tiny_distilled", plan);
  b->eval();
  REQUIRE_THROWS_WITH(b->forward(x), Catch::Contains("before any training/calibration batch"));
  load_weights(*b, f.string(), true);
  at::NoGradGuard no_grad;
  const at::Tensor ya = a->forward(x), yb = b->forward(x);
  REQUIRE(at::equal(ya, yb));
  for (const auto& item : a->named_buffers()) {
    INFO(item.key());
    REQUIRE(at::equal(item.value(), b->named_buffers()[item.key()]));
  }

  // another plan has other quantizers: loading with buffers required names what is missing
  QuantVisionTransformer c = quant_model("deit_mnist_tiny_distilled", Plan::uniform("ivit"));
  REQUIRE_THROWS_WITH(load_weights(*c, f.string(), true), Catch::Contains("unexpected key"));
}

TEST_CASE("bad plans and bit widths fail at construction, naming the key", "[qvit]") {
  REQUIRE_THROWS_WITH(quant_model("vit_mnist_tiny", Plan::parse("softmax: ivit\n", "mixed.yaml")),
                      Catch::Contains("mixed.yaml") && Catch::Contains("'blocks.0.norm1' has no method"));
  REQUIRE_THROWS_WITH(quant_model("vit_mnist_tiny", Plan::parse("all: ivit\nblocks.4.norm1: ibert\n")),
                      Catch::Contains("'blocks.4.norm1' is not a layer"));
  REQUIRE_THROWS_WITH(quant_model("vit_mnist_tiny", Plan::uniform("ivit"), 17), Catch::Contains("bits"));
}
