// Full-precision Swin: presets with timm's parameter counts, window geometry, and — in the hidden [timm] test
// that tests/python/test_models_timm.py runs with files it writes first — equality with timm's forward.
#include <ATen/ATen.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <map>

#include "csrc/models/swin.h"
#include "csrc/models/weights.h"

using namespace mnq::models;

TEST_CASE("Swin presets have timm's parameter counts and names", "[swin]") {
  // numbers from timm 1.0.31 (the mnist one: scripts/export_timm.py's swin_mnist_tiny overrides)
  const std::map<std::string, int64_t> timm_counts = {{"swin_tiny_patch4_window7_224", 28288354},
                                                      {"swin_small_patch4_window7_224", 49606258},
                                                      {"swin_mnist_tiny", 136854}};
  for (const auto& [name, count] : timm_counts) {
    INFO(name);
    int64_t n = 0;
    SwinTransformer m(swin_preset(name));
    for (const auto& p : m->parameters()) n += p.numel();
    REQUIRE(n == count);
  }
  const auto names = SwinTransformer(swin_preset("swin_mnist_tiny"))->named_parameters().keys();
  for (const char* k :
       {"patch_embed.proj.weight", "patch_embed.norm.bias", "layers.0.blocks.1.attn.qkv.weight",
        "layers.0.blocks.0.attn.relative_position_bias_table", "layers.1.downsample.norm.weight",
        "layers.1.downsample.reduction.weight", "layers.1.blocks.1.mlp.fc2.bias", "norm.weight", "head.fc.weight"}) {
    INFO(k);
    REQUIRE(std::count(names.begin(), names.end(), k) == 1);
  }
  REQUIRE(swin_layer_names(swin_preset("swin_mnist_tiny")).size() == 1 + 2 * 4 + 2 * 4 + 1);
}

TEST_CASE("Swin windows: shift only when the map holds several windows", "[swin]") {
  const SwinWindow shifted(14, 7, 3), single(7, 7, 3), small(4, 7, 3);
  REQUIRE(shifted.shift == 3);
  REQUIRE(shifted.mask.sizes() == at::IntArrayRef({4, 49, 49}));
  // the top-left window holds one region only, the bottom-right one four
  REQUIRE(shifted.mask[0].eq(0).all().item<bool>());
  REQUIRE(shifted.mask[3].eq(-100).any().item<bool>());
  REQUIRE(single.shift == 0);
  REQUIRE_FALSE(single.mask.defined());
  REQUIRE(small.window == 4);
  REQUIRE(shifted.relative_position_index.min().item<int64_t>() == 0);
  REQUIRE(shifted.relative_position_index.max().item<int64_t>() == 13 * 13 - 1);
  const at::Tensor x = at::randn({2, 14, 14, 5});
  REQUIRE(at::equal(window_reverse(window_partition(x, 7), 7, 14, 14), x));
}

// Run by tests/python/test_models_timm.py with the same environment variables as the ViT test.
TEST_CASE("the FP Swin equals timm's forward on the same weights", "[.][timm]") {
  const char* preset = std::getenv("MNQ_TIMM_PRESET");
  const char* weights = std::getenv("MNQ_TIMM_WEIGHTS");
  const char* io_file = std::getenv("MNQ_TIMM_IO");
  REQUIRE(preset != nullptr);
  REQUIRE(weights != nullptr);
  REQUIRE(io_file != nullptr);
  SwinTransformer m(swin_preset(preset));
  load_weights(*m, weights);
  m->eval();
  std::map<std::string, at::Tensor> io;
  for (auto& [k, t] : read_safetensors(io_file)) io[k] = t;
  at::NoGradGuard no_grad;
  const at::Tensor f = m->forward_features(io.at("input")), y = m->forward(io.at("input"));
  INFO("max |features - timm| = " << (f - io.at("features")).abs().max().item<double>());
  INFO("max |logits - timm| = " << (y - io.at("output")).abs().max().item<double>());
  REQUIRE(at::allclose(f, io.at("features"), 1e-4, 1e-4));
  REQUIRE(at::allclose(y, io.at("output"), 1e-4, 1e-4));
}
