// The quantized Swin: every uniform plan trains (forward + backward) and tracks the FP Swin on the same weights,
// a mixed plan reaches every layer (downsample norms included) with SPEC §6's residual widths, and a checkpoint
// reloads to bit-identical eval output.
#include <ATen/ATen.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>

#include "csrc/models/qswin.h"
#include "csrc/models/weights.h"
#include "tests/cpp/models/model_test_util.h"

using namespace mnq::models;
namespace fs = std::filesystem;

using mnq_test::calibrate;

TEST_CASE("quantized Swin: uniform plans run forward and backward and track the FP model", "[qswin]") {
  at::manual_seed(0);
  const SwinConfig c = swin_preset("swin_mnist_tiny");
  SwinTransformer fp(c);
  fp->eval();
  const fs::path f = mnq_test::temp_file("qswin", "fp.safetensors");
  save_weights(*fp, f.string());
  const at::Tensor x = at::randn({4, 1, 28, 28});
  const at::Tensor want = fp->forward(x).detach();

  for (const char* method : {"ivit", "ibert", "fqvit"}) {
    INFO("method " << method);
    QuantSwinTransformer m(c, QuantOptions{8, Plan::uniform(method)});
    load_weights(*m, f.string());  // FP weights by timm name
    calibrate(m, x);
    m->freeze_alpha();
    m->train();
    m->forward(x).pow(2).mean().backward();
    for (const char* p : {"patch_embed.proj.weight", "layers.0.blocks.1.attn.relative_position_bias_table",
                          "layers.0.blocks.1.attn.qkv.weight", "layers.1.downsample.norm.weight",
                          "layers.1.downsample.reduction.weight", "norm.bias", "head.fc.weight"}) {
      INFO("gradient of " << p);
      const at::Tensor g = m->named_parameters()[p].grad();
      REQUIRE(g.defined());
      REQUIRE(at::isfinite(g).all().item<bool>());
      REQUIRE(g.abs().sum().item<double>() > 0);
    }
    m->eval();
    const at::Tensor q = m->forward(x).detach();
    const double db = 20 * std::log10(want.norm().item<double>() / (want - q).norm().item<double>());
    INFO("logit SQNR vs FP: " << db << " dB");
    REQUIRE(db > 15.0);  // measured 19.7 (ivit, 8-bit softmax), 34.7 (ibert), 26.9 (fqvit)
  }
}

TEST_CASE("quantized Swin: a mixed plan reaches every layer with its residual widths", "[qswin]") {
  const Plan plan = Plan::parse(
      "all: ivit\nlayers.1.downsample.norm: ibert\nlayers.0.blocks.1.norm2: fqvit\nlayers.1.blocks.0.norm1: ibert\n"
      "layers.0.blocks.0.attn.softmax: fqvit\nlayers.1.blocks.1.mlp.gelu: ibert\nnorm: fqvit\n");
  QuantSwinTransformer m(swin_preset("swin_mnist_tiny"), QuantOptions{6, plan});
  REQUIRE(m->layer_methods() == plan.resolve(swin_layer_names(m->config())));
  const auto bufs = m->named_buffers();
  // residual quantizers: 22 bits exactly where they feed an ibert LayerNorm
  REQUIRE(bufs.contains("layers.0.blocks.1.norm2.ptf.alpha"));
  REQUIRE(bufs.contains("norm.ptf.alpha"));
  REQUIRE_FALSE(bufs.contains("layers.1.blocks.1.mlp.qact_fc1.scale"));
  const auto qbits = [&](const std::string& name) {
    return m->named_modules()[name]->as<mnq::nn::QuantActImpl>()->bits();
  };
  REQUIRE(qbits("layers.0.blocks.1.qact_res2") == 22);      // feeds layers.1.downsample.norm (ibert)
  REQUIRE(qbits("layers.1.downsample.qact_out") == 22);     // feeds layers.1.blocks.0.norm1 (ibert)
  REQUIRE(qbits("layers.1.blocks.0.qact_res1") == 16);      // feeds layers.1.blocks.0.norm2 (ivit)
  REQUIRE(qbits("layers.0.blocks.0.qact_res2") == 16);      // feeds layers.0.blocks.1.norm1 (ivit)
  REQUIRE(qbits("layers.1.blocks.0.attn.qact_scores") == 6);
  REQUIRE(qbits("layers.1.blocks.0.attn.qact_bias") == 16);
  REQUIRE(qbits("qact_patch_norm") == 16);  // feeds layers.0.blocks.0.norm1 (ivit)
  const at::Tensor x = at::randn({2, 1, 28, 28});
  calibrate(m, x);
  m->eval();
  REQUIRE(at::isfinite(m->forward(x)).all().item<bool>());
}

TEST_CASE("quantized Swin: a checkpoint reloads to bit-identical eval output", "[qswin][weights]") {
  const Plan plan = Plan::parse("softmax: ibert\ngelu: ibert\nlayernorm: fqvit\nlayers.0.blocks.0.norm1: ibert\n");
  QuantSwinTransformer a(swin_preset("swin_mnist_tiny"), QuantOptions{8, plan});
  const at::Tensor x = at::randn({3, 1, 28, 28});
  calibrate(a, x);
  a->eval();
  const fs::path f = mnq_test::temp_file("qswin", "q.safetensors");
  save_weights(*a, f.string());
  QuantSwinTransformer b(swin_preset("swin_mnist_tiny"), QuantOptions{8, plan});
  load_weights(*b, f.string(), true);
  b->eval();
  at::NoGradGuard no_grad;
  REQUIRE(at::equal(a->forward(x), b->forward(x)));
}
