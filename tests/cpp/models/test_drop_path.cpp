// Stochastic depth: eval and rate 0 are the identity; in training whole samples are dropped and the kept ones
// scaled by 1/keep; the per-block rates are timm's linspace; the FP and quantized ViT / Swin models are unchanged
// in eval by a drop-path rate, and in training draw their masks from torch's CPU generator (reproducible).
#include <ATen/ATen.h>

#include <catch2/catch.hpp>

#include "csrc/models/drop_path.h"
#include "csrc/models/factory.h"
#include "csrc/models/weights.h"

using namespace mnq::models;

TEST_CASE("drop_path: identity in eval and at rate 0; per-sample drops scaled by 1/keep", "[drop_path]") {
  at::manual_seed(0);
  const at::Tensor x = at::rand({400, 3, 5}) + 0.5;
  CHECK(drop_path(x, 0.3, false).is_same(x));
  CHECK(drop_path(x, 0.0, true).is_same(x));
  const at::Tensor y = drop_path(x, 0.25, true);
  const at::Tensor ratio = (y / x).reshape({400, -1});
  int64_t kept = 0;
  for (int64_t i = 0; i < 400; ++i) {
    const at::Tensor r = ratio[i];
    const bool dropped = r.eq(0).all().item<bool>();
    const bool scaled = at::allclose(r, at::full_like(r, 1.0 / 0.75));
    CHECK((dropped || scaled));  // the whole sample, never part of it
    kept += scaled;
  }
  CHECK(kept > 260);  // 300 expected (keep 0.75); binomial sd ≈ 8.7
  CHECK(kept < 340);
  // The mask comes from the CPU generator: the same seed, the same mask.
  at::manual_seed(5);
  const at::Tensor a = drop_path(x, 0.5, true);
  at::manual_seed(5);
  CHECK(at::equal(a, drop_path(x, 0.5, true)));

  const std::vector<double> r = drop_path_rates(0.1, 12);
  REQUIRE(r.size() == 12);
  CHECK(r[0] == 0.0);
  CHECK(r[11] == Approx(0.1));
  CHECK(r[6] == Approx(0.1 * 6 / 11));
  CHECK(drop_path_rates(0.0, 3) == std::vector<double>{0, 0, 0});
}

TEST_CASE("drop_path: models are unchanged in eval, stochastic and reproducible in training", "[drop_path]") {
  at::manual_seed(1);
  const at::Tensor x = at::randn({6, 1, 28, 28});
  at::NoGradGuard no_grad;
  for (const std::string preset : {"vit_mnist_tiny", "swin_mnist_tiny"}) {
    for (bool quant : {false, true}) {
      INFO(preset << (quant ? " quantized" : " fp"));
      auto make = [&](const ModelOverrides& o) { return quant ? create_quant(preset, QuantOptions{}, o) : create_fp(preset, o); };
      Model plain = make({});
      if (quant) {
        plain.module->train();  // calibrates the activation ranges (no drop-path at rate 0)
        plain(x);
      }
      ModelOverrides dp;
      dp.drop_path = 0.5;
      // Two models with the state of `plain` and drop-path rates 0 … 0.5.
      auto with_state = [&] {
        Model m = make(dp);
        copy_parameters(*plain.module, *m.module);
        auto buffers = m.module->named_buffers();
        for (const auto& b : plain.module->named_buffers()) buffers[b.key()].copy_(b.value());
        return m;
      };
      Model d1 = with_state(), d2 = with_state();
      plain.module->eval();
      d1.module->eval();
      CHECK(at::equal(plain(x), d1(x)));
      plain.module->train();
      d1.module->train();
      d2.module->train();
      at::manual_seed(7);
      const at::Tensor p = plain(x);
      at::manual_seed(7);
      const at::Tensor a = d1(x);
      at::manual_seed(7);
      const at::Tensor b = d2(x);
      CHECK(at::equal(a, b));   // the masks come from the CPU generator
      CHECK(!at::equal(a, p));  // and some branches were dropped
    }
  }
}
