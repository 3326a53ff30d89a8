// The C++ quantized modules: the buffers python/mnq/nn has (names, dtypes, shapes), SPEC §1's EMA and scale,
// eval-mode freezing, and the method-specific scales of the non-linear layers.
#include <ATen/ATen.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <limits>

#include "csrc/nn/layers.h"
#include "csrc/nn/min_max.h"
#include "csrc/nn/nonlinear.h"
#include "csrc/nn/quant.h"

using namespace mnq::nn;

TEST_CASE("QuantAct keeps python's buffers and SPEC's EMA range", "[nn]") {
  QuantAct act(8);
  const auto bufs = act->named_buffers();
  REQUIRE(bufs.keys() == std::vector<std::string>{"min_val", "max_val", "scale", "initialized"});
  REQUIRE(bufs["min_val"].scalar_type() == at::kFloat);
  REQUIRE(bufs["scale"].scalar_type() == at::kDouble);
  REQUIRE(bufs["initialized"].scalar_type() == at::kBool);

  act->train();
  const at::Tensor a = at::tensor({-1.0f, 0.5f, 2.0f}), b = at::tensor({-3.0f, 1.0f});
  auto [ya, sa] = act(a);
  REQUIRE(bufs["min_val"].item<float>() == -1.0f);  // the first batch initialises the range
  REQUIRE(sa.item<double>() == 2.0 / 127);
  REQUIRE(at::allclose(ya, at::round(a.to(at::kDouble) / sa).clamp(-128, 127).mul(sa).to(at::kFloat), 1e-6, 1e-7));
  act(b);
  const double lo = -1.0 * 0.95 + -3.0 * 0.05, hi = 2.0 * 0.95 + 1.0 * 0.05;  // v <- 0.95·v + 0.05·batch_v
  REQUIRE(bufs["min_val"].item<float>() == Approx(lo).epsilon(1e-6));
  REQUIRE(bufs["max_val"].item<float>() == Approx(hi).epsilon(1e-6));
  REQUIRE(bufs["scale"].item<double>() == Approx(std::max(std::abs(lo), hi) / 127.0).epsilon(1e-6));

  act->eval();
  const at::Tensor s = bufs["scale"].clone();
  act(at::full({4}, 100.0f));
  REQUIRE(at::equal(bufs["scale"], s));  // frozen in eval
}

TEST_CASE("QuantAct requantizes with a fused residual", "[nn]") {
  QuantAct act(16);
  act->train();
  const at::Tensor s_in = at::scalar_tensor(0.01, at::kDouble), s_id = at::scalar_tensor(0.02, at::kDouble);
  const at::Tensor x = at::randint(-100, 100, {5, 7}).to(at::kFloat) * 0.01f;
  const at::Tensor id = at::randint(-100, 100, {5, 7}).to(at::kFloat) * 0.02f;
  auto [y, s] = act(x, s_in, id, s_id);
  // two requants, each rounding by at most half a step of the output scale
  REQUIRE(at::allclose(y, x + id, 0, s.item<double>() * 1.01 + 1e-6));
  REQUIRE_THROWS_WITH(act(x, at::Tensor(), id, s_id), Catch::Contains("needs scale_in"));
  REQUIRE_THROWS_WITH(act(x, s_in, id, at::Tensor()), Catch::Contains("together"));
}

TEST_CASE("PtfAct keeps python's buffers and picks per-channel power-of-two factors", "[nn]") {
  PtfAct ptf(3, 8);
  REQUIRE(ptf->named_buffers().keys() ==
          std::vector<std::string>{"min_val", "max_val", "scale", "initialized", "alpha", "alpha_err", "alpha_frozen"});
  ptf->train();
  // channel 2 spans the whole range (needs alpha 3); channels 0, 1 are small (alpha 0 resolves them best)
  const at::Tensor x = at::randn({64, 3}) * at::tensor({0.05f, 0.1f, 4.0f});
  auto [y, sa] = ptf(x);
  REQUIRE(ptf->alpha()[2].item<int64_t>() == 3);
  REQUIRE(ptf->alpha()[0].item<int64_t>() == 0);
  REQUIRE(sa.first.item<double>() == ptf->scale().item<double>() / 8);
  ptf->freeze_alpha();
  ptf(x * 0.01f);
  REQUIRE(ptf->alpha()[2].item<int64_t>() == 3);  // frozen
  REQUIRE_THROWS_WITH(ptf(at::zeros({2, 4})), Catch::Contains("expected 3 channels"));
}

TEST_CASE("QuantLinear fake-quantizes its weight per output channel and computes the integer product", "[nn]") {
  QuantLinear lin(6, 4, true, 8);
  auto [wq, sw] = lin->quantized_weight();
  REQUIRE(at::allclose(sw, lin->weight.abs().amax(1).to(at::kDouble) / 127));
  REQUIRE((wq - lin->weight).abs().max().item<double>() <= sw.max().item<double>() / 2 + 1e-7);
  const at::Tensor x = at::randint(-127, 128, {3, 6}).to(at::kFloat) * 0.1f;
  auto [y, s] = lin(x, at::scalar_tensor(0.1, at::kDouble));
  REQUIRE(s.sizes() == at::IntArrayRef({4}));
  REQUIRE(at::allclose(s, sw * 0.1));
  REQUIRE(at::allclose(y, at::linear(x, lin->weight, lin->bias), 0.05, 0.05));
  // SPEC §1: the integer product exactly, fl32(fl64(q_a @ q_wᵀ + q_b)·S_out), here with int64 sums
  const at::Tensor s_out = sw * 0.1;
  const at::Tensor q_a = at::round(x.to(at::kDouble) / 0.1).to(at::kLong);
  const at::Tensor q_w = at::round(wq.to(at::kDouble) / sw.unsqueeze(1)).to(at::kLong);
  const at::Tensor q_b = at::round(lin->bias.detach().to(at::kDouble) / s_out).to(at::kLong);
  const at::Tensor want = ((at::matmul(q_a, q_w.t()) + q_b).to(at::kDouble) * s_out).to(at::kFloat);
  REQUIRE(at::equal(y, want));
  REQUIRE_THROWS_WITH(lin(x, at::ones({2}, at::kDouble)), Catch::Contains("per tensor"));
  REQUIRE_THROWS_WITH(QuantLinear(2, 2, true, 1), Catch::Contains("bits"));
}

TEST_CASE("quant_matmul computes the integer product of the attention's views exactly", "[nn]") {
  at::manual_seed(5);
  // q and kᵀ as the attention slices them from the qkv tensor [B, N, 3, H, hd]: strided views, 8-bit codes
  const int64_t B = 2, N = 13, H = 3, hd = 16;
  const at::Tensor qkv = at::randint(-128, 128, {B, N, 3 * H * hd}).to(at::kFloat) * 0.25f;
  const auto heads = qkv.reshape({B, N, 3, H, hd}).permute({2, 0, 3, 1, 4}).unbind(0);
  const at::Tensor s = at::scalar_tensor(0.25, at::kDouble);
  const at::Tensor kt = heads[1].transpose(-2, -1);
  auto [y, so] = quant_matmul(heads[0], s, kt, s);
  REQUIRE(so.item<double>() == 0.0625);
  // SPEC §1: fl32(fl64(q_a @ q_b)·S_a·S_b), here with int64 sums
  const at::Tensor q_a = at::round(heads[0].to(at::kDouble) / 0.25).to(at::kLong);
  const at::Tensor q_b = at::round(kt.to(at::kDouble) / 0.25).to(at::kLong);
  REQUIRE(at::equal(y, (at::matmul(q_a, q_b).to(at::kDouble) * 0.0625).to(at::kFloat)));
  // attn @ v: the output's storage is [B, N, H, hd], so merging the heads is a view
  const at::Tensor p = at::softmax(y, -1).mul(32768).round().div(32768);
  auto [o, so2] = quant_matmul(p, at::scalar_tensor(1.0 / 32768, at::kDouble), heads[2], s);
  const at::Tensor q_p = at::round(p.to(at::kDouble) * 32768).to(at::kLong);
  const at::Tensor q_v = at::round(heads[2].to(at::kDouble) / 0.25).to(at::kLong);
  REQUIRE(at::equal(o, (at::matmul(q_p, q_v).to(at::kDouble) * (0.25 / 32768)).to(at::kFloat)));
  REQUIRE(o.transpose(1, 2).reshape({B, N, H * hd}).data_ptr() == o.data_ptr());
  REQUIRE(o.transpose(1, 2).is_contiguous());
  REQUIRE_THROWS_WITH(quant_matmul(heads[0], at::ones({2}, at::kDouble), kt, s), Catch::Contains("per tensor"));
}

TEST_CASE("the non-linear layers return each method's output scale", "[nn]") {
  at::manual_seed(3);  // this case's own inputs (torch_seed.cpp seeds every case with 0)
  const at::Tensor q = at::randint(-128, 128, {2, 5, 9}).to(at::kFloat);
  const at::Tensor s = at::scalar_tensor(0.05, at::kDouble);
  REQUIRE(IntSoftmax("ivit")(q * 0.05f, s).second.item<double>() == std::ldexp(1.0, -15));
  REQUIRE(IntSoftmax("ibert")(q * 0.05f, s).second.item<double>() == std::ldexp(1.0, -16));
  REQUIRE(IntSoftmax("fqvit")(q * 0.05f, s).second.item<double>() == std::ldexp(1.0, -15));
  REQUIRE(IntGELU("ivit")(q * 0.05f, s).second.item<double>() == 0.05 * std::ldexp(1.0, -7));
  REQUIRE_FALSE(IntGELU("fqvit")(q * 0.05f, s).second.defined());
  const at::Tensor sc = at::full({9}, 1e-4, at::kDouble);
  auto [g, gs] = IntGELU("ibert")(q * 1e-4f, sc);
  REQUIRE(gs.sizes() == at::IntArrayRef({9}));
  REQUIRE((gs < 0).all().item<bool>());  // SPEC §3.1: negative by construction
  // i-GELU's error bound as tests/python/test_nn.py states it, on this input range
  REQUIRE(((g - at::gelu(q * 1e-4f)).abs() <= (q * 1e-4f).abs() * 0.08 + 1e-4).all().item<bool>());

  IntLayerNorm ln(9, "ivit");
  // 16-bit codes of a wide spread: I-LayerNorm's integer square root is 10 Newton steps from 2^16 (SPEC §4.1), which
  // converge only for Σ(q − mean)² above ~2^18, i.e. a std above ~170 codes over 9 values; int8-range rows fall
  // short, and their outputs are off by tens of percent by design.
  const at::Tensor q16 = at::randint(-2000, 2000, {2, 5, 9}).to(at::kFloat);
  auto [y, ys] = ln(q16 * 0.05f, s);
  REQUIRE(at::allclose(ys, at::full({9}, 3.0 / std::ldexp(1.0, 30), at::kDouble)));
  // Then its two roundings, per row: the mean to a code (half a code) and the std to its integer square root (up to
  // one code), so |y − layer_norm| ≤ (1/2 + |z|)/(σ − 1) with σ the row's std in codes and |z| ≤ √8 for 9 values.
  const at::Tensor sigma = q16.std(-1, /*unbiased=*/false, /*keepdim=*/true);
  REQUIRE((sigma > 170).all().item<bool>());
  const at::Tensor bound = (0.5 + std::sqrt(8.0)) / (sigma - 1.0) + 1e-4;
  REQUIRE((y - at::layer_norm(q16 * 0.05f, {9}, {}, {}, 1e-6)).abs().le(bound).all().item<bool>());
  REQUIRE_THROWS_WITH(IntLayerNorm(9, "fqvit")(q, s), Catch::Contains("scale_next"));
  REQUIRE_THROWS_WITH(IntSoftmax("relu"), Catch::Contains("method must be one of ivit, ibert, fqvit"));
}

TEST_CASE("FrozenWeightsScope keeps the quantized weight until the weight changes", "[nn]") {
  at::manual_seed(4);
  QuantLinear lin(16, 8, true, 8);
  QuantConv2d conv(torch::nn::Conv2dOptions(2, 4, 3), 8);
  const at::Tensor x = at::randn({5, 16}), s = at::tensor(0.02, at::kDouble);
  const at::Tensor img = at::randn({2, 2, 6, 6});
  const at::Tensor want = lin(x, s).first, want_conv = conv(img, s).first;
  const auto holders = lin->weight.use_count();
  {
    at::NoGradGuard no_grad;
    FrozenWeightsScope frozen;
    CHECK(at::equal(lin(x, s).first, want));
    CHECK(at::equal(lin(x, s).first, want));  // the kept weight: the same values
    CHECK(lin->weight.use_count() == holders + 1);  // the kept copy holds its source
    {
      FrozenWeightsScope inner;  // a nested scope's end releases nothing
    }
    CHECK(lin->weight.use_count() == holders + 1);
    CHECK(at::equal(conv(img, s).first, want_conv));
    CHECK(at::equal(conv(img, s).first, want_conv));
    lin->weight.mul_(0.5);  // an in-place change (a new version) is seen at once
    const at::Tensor halved = lin(x, s).first;
    CHECK(!at::equal(halved, want));
    lin->weight.mul_(2.0);
    CHECK(at::equal(lin(x, s).first, want));
  }
  CHECK(lin->weight.use_count() == holders);  // the outermost scope's end released the kept copy
  {
    // Autograd on: nothing kept, the gradient reaches the weight (STE) as without a scope.
    FrozenWeightsScope frozen;
    lin(x, s).first.sum().backward();
    REQUIRE(lin->weight.grad().defined());
    CHECK(lin->weight.grad().abs().sum().item<double>() > 0);
  }
  // A change between scopes through a tensor that shares no version counter (.data()) is seen by the next scope.
  {
    at::NoGradGuard no_grad;
    FrozenWeightsScope frozen;
    CHECK(at::equal(lin(x, s).first, want));
  }
  lin->weight.data().mul_(0.25);
  const at::Tensor quarter = [&] {
    at::NoGradGuard no_grad;
    return lin(x, s).first;
  }();
  at::NoGradGuard no_grad;
  FrozenWeightsScope frozen;
  CHECK(at::equal(lin(x, s).first, quarter));
}

TEST_CASE("channel_min_max equals aminmax per tensor and per channel; NaN is reported", "[nn]") {
  at::manual_seed(6);
  for (const int64_t C : {1, 3, 40, 64, 100}) {
    for (const int64_t rows : {1, 2, 7, 33, 1000}) {
      const at::Tensor x = at::randn({rows, C}) * 10;
      std::vector<float> mn, mx;
      REQUIRE(channel_min_max(x.t().contiguous().t(), C, mn, mx));  // non-contiguous input: read by value order
      const auto [lo, hi] = at::aminmax(x, 0);
      for (int64_t c = 0; c < C; ++c) {
        CHECK(mn[size_t(c)] == lo[c].item<float>());
        CHECK(mx[size_t(c)] == hi[c].item<float>());
      }
    }
  }
  at::Tensor x = at::randn({9, 5});
  x[8][4] = std::nanf("");  // in the tail
  std::vector<float> mn, mx;
  CHECK(!channel_min_max(x, 5, mn, mx));
  CHECK(!channel_min_max(x, 1, mn, mx));
}

TEST_CASE("sum_min_max is the range of x + y; a residual QuantAct observes the sum's range", "[nn]") {
  at::manual_seed(7);
  for (const int64_t n : {1, 7, 63, 64, 65, 1000, 12345}) {
    const at::Tensor x = at::randn({n}) * 100, y = at::randn({n}) * 1e-3f;  // sums that round
    float mn = 0, mx = 0;
    REQUIRE(sum_min_max(x, y, mn, mx));
    const auto [lo, hi] = at::aminmax(x + y);
    CHECK(mn == lo.item<float>());
    CHECK(mx == hi.item<float>());
  }
  const at::Tensor a = at::randn({6, 40}), b = at::randn({40, 6}).t();  // non-contiguous y
  float mn = 0, mx = 0;
  REQUIRE(sum_min_max(a, b, mn, mx));
  CHECK(mn == (a + b).min().item<float>());
  CHECK(mx == (a + b).max().item<float>());
  at::Tensor inf = at::zeros({70});
  inf[3] = std::numeric_limits<float>::infinity();
  REQUIRE(sum_min_max(inf, at::ones({70}), mn, mx));  // an infinity is a value
  CHECK(std::isinf(mx));
  at::Tensor neg = at::zeros({70}), pos = at::zeros({70});
  neg[69] = -std::numeric_limits<float>::infinity();
  pos[69] = std::numeric_limits<float>::infinity();
  CHECK(!sum_min_max(neg, pos, mn, mx));  // −inf + inf = NaN, in the tail
  CHECK(!sum_min_max(a, a.reshape({40, 6}), mn, mx));  // shapes differ

  // QuantAct(x, s, identity, s_id) in training observes the range of x + identity, as python's QuantAct does.
  QuantAct fused(16), plain(16);
  const at::Tensor s = at::tensor(0.01, at::kDouble);
  for (int i = 0; i < 3; ++i) {
    const at::Tensor h = at::round(at::randn({4, 9, 8}) * 50) * 0.01, id = at::round(at::randn({4, 9, 8}) * 80) * 0.01;
    fused(h, s, id, s);
    plain->observe(h + id);
  }
  CHECK(at::equal(fused->scale(), plain->scale()));
  CHECK(at::equal(fused->named_buffers()["min_val"], plain->named_buffers()["min_val"]));
  CHECK(at::equal(fused->named_buffers()["max_val"], plain->named_buffers()["max_val"]));
}
