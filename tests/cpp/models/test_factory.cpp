// The preset factory: family dispatch, overrides, errors, and that FP and quantized models of both families run.
#include <ATen/ATen.h>

#include <catch2/catch.hpp>

#include "csrc/models/factory.h"
#include "csrc/models/weights.h"

using namespace mnq::models;

TEST_CASE("factory: presets dispatch to their family", "[factory]") {
  CHECK(preset_family("vit_mnist_tiny") == Family::kViT);
  CHECK(preset_family("deit_tiny_patch16_224") == Family::kViT);
  CHECK(preset_family("swin_mnist_tiny") == Family::kSwin);
  CHECK_THROWS_WITH(preset_family("vit_hugh"), Catch::Contains("unknown model preset 'vit_hugh'") &&
                                                   Catch::Contains("swin_tiny_patch4_window7_224"));
  const auto layers = mixable_layers("vit_mnist_tiny");
  REQUIRE(layers.size() == 4 * 4 + 1);
  CHECK(layers[1].first == "blocks.0.attn.softmax");
  CHECK(layers[1].second == OpType::kSoftmax);
  CHECK(layers.back().first == "norm");
}

TEST_CASE("factory: FP and quantized models of both families give logits", "[factory]") {
  at::manual_seed(0);
  const at::Tensor x = at::randn({2, 1, 28, 28});
  for (const std::string preset : {"vit_mnist_tiny", "swin_mnist_tiny"}) {
    INFO(preset);
    Model fp = create_fp(preset, ModelOverrides{7, {}, {}});
    CHECK(!fp.quantized);
    CHECK(fp(x).sizes() == at::IntArrayRef({2, 7}));
    QuantOptions opt;
    opt.bits = 6;
    opt.plan = Plan::parse("all: ivit\nsoftmax: fqvit\n");
    Model q = create_quant(preset, opt);
    CHECK(q.quantized);
    CHECK(q.bits == 6);
    CHECK(q.methods.size() == mixable_layers(preset).size());
    for (const auto& [name, method] : q.methods) {
      CHECK(method == (*layer_op_type(name) == OpType::kSoftmax ? "fqvit" : "ivit"));
    }
    q.module->train();
    const at::Tensor y = q(x);
    CHECK(y.sizes() == at::IntArrayRef({2, 10}));
    CHECK(at::isfinite(y).all().item<bool>());
    q.freeze_alpha();
  }
}

TEST_CASE("factory: overrides are validated", "[factory]") {
  CHECK_THROWS_WITH(create_fp("vit_mnist_tiny", ModelOverrides{{}, 30, {}}), Catch::Contains("img_size"));
}

TEST_CASE("factory: copy_parameters moves FP weights into the quantized twin", "[factory]") {
  at::manual_seed(1);
  Model fp = create_fp("vit_mnist_tiny");
  Model q = create_quant("vit_mnist_tiny", QuantOptions{});
  copy_parameters(*fp.module, *q.module);
  const auto qp = q.module->named_parameters();
  for (const auto& item : fp.module->named_parameters()) {
    INFO(item.key());
    REQUIRE(qp.find(item.key()) != nullptr);
    CHECK(at::equal(*qp.find(item.key()), item.value()));
  }
  Model other = create_fp("vit_mnist_tiny", ModelOverrides{3, {}, {}});
  CHECK_THROWS_WITH(copy_parameters(*other.module, *q.module), Catch::Contains("head.weight"));
}
