// The mnq ops called from C++ through csrc/ops.h, the public C++ op API (typed dispatcher handles), as the C++
// models, analyzer, trainer and integer engine call them.
#include <ATen/ATen.h>
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include "csrc/ops.h"

namespace ops = mnq::ops;

TEST_CASE("shiftmax runs from C++ and its rows sum to about one", "[ops]") {
  const at::Tensor q = at::randint(-128, 128, {4, 197}, at::kInt);
  auto [out, s_out] = ops::shiftmax(q, 0.05);
  REQUIRE(out.scalar_type() == at::kInt);
  REQUIRE(s_out == std::ldexp(1.0, -15));
  const at::Tensor sums = out.to(at::kDouble).sum(-1) * s_out;
  REQUIRE((sums - 1.0).abs().max().item<double>() < 0.02);
}

TEST_CASE("shiftmax_qat has a straight-through softmax gradient from C++", "[ops]") {
  const double s = 0.05;
  const at::Tensor x = (at::randint(-100, 100, {3, 11}, at::kFloat) * s).requires_grad_(true);
  const auto [y, s_out] = ops::shiftmax_qat(x, at::scalar_tensor(s, at::kDouble));
  REQUIRE(s_out.scalar_type() == at::kDouble);
  REQUIRE(!s_out.requires_grad());
  REQUIRE(at::equal(s_out, at::scalar_tensor(std::ldexp(1.0, -15), at::kDouble)));
  const at::Tensor g = at::randn({3, 11});
  const at::Tensor gx = torch::autograd::grad({y}, {x}, {g})[0];
  const at::Tensor xr = x.detach().requires_grad_(true);
  const at::Tensor want = torch::autograd::grad({at::softmax(xr, -1)}, {xr}, {g})[0];
  REQUIRE(at::allclose(gx, want, 1e-6, 1e-7));
}

TEST_CASE("bad input raises a clear error from C++", "[ops]") {
  REQUIRE_THROWS_WITH(ops::shiftmax(at::zeros({2, 3}), 0.1, 16, 15), Catch::Contains("integer tensor"));
  REQUIRE_THROWS_WITH(ops::shiftmax(at::zeros({2, 3}, at::kInt), -1.0, 16, 15), Catch::Contains("scale"));
  REQUIRE_THROWS_WITH(ops::shiftmax(at::zeros({2, 3}, at::kInt), 0.1, 17, 15), Catch::Contains("out_bits"));
}

TEST_CASE("every op family runs from C++", "[ops]") {
  const at::Tensor q = at::randint(-128, 128, {3, 50}, at::kInt);
  auto [sm, s_sm] = ops::ibert_softmax(q, 0.05);
  REQUIRE(s_sm == std::ldexp(1.0, -16));
  REQUIRE((sm.to(at::kDouble).sum(-1) * s_sm - 1.0).abs().max().item<double>() < 0.05);

  auto [code, mask] = ops::log_int_softmax(q, 0.05);
  REQUIRE(code.scalar_type() == at::kByte);
  REQUIRE(mask.scalar_type() == at::kBool);

  auto [g, s_g] = ops::shift_gelu(q, 0.03);
  REQUIRE(g.sizes() == q.sizes());
  REQUIRE(s_g == 0.03 * std::ldexp(1.0, -7));

  const at::Tensor x = at::randn({4, 6});
  const at::Tensor codes = ops::quantize(x, at::scalar_tensor(0.1, at::kDouble), 8);
  REQUIRE(at::equal(codes, at::clamp(at::round(x.to(at::kDouble) / 0.1), -128, 127).to(at::kInt)));

  const at::Tensor r = ops::requant(codes, at::scalar_tensor(0.1, at::kDouble), at::scalar_tensor(0.2, at::kDouble), 8);
  REQUIRE(r.abs().max().item<int>() <= 64);
}

TEST_CASE("every handle of csrc/ops.h matches its schema and runs", "[ops]") {
  // A handle whose C++ signature differs from the registered schema throws when it is first used: calling each
  // once with valid inputs proves all 21 signatures (and the defaults) against csrc/registry.cpp.
  const at::Tensor q = at::randint(-100, 100, {2, 3, 16}, at::kInt);
  const at::Tensor x = q.to(at::kFloat) * 0.05;
  const at::Tensor s = at::scalar_tensor(0.05, at::kDouble);
  const at::Tensor gamma = at::rand({16}) + 0.5, beta = at::randn({16}) * 0.1;
  const at::Tensor alpha = at::randint(0, 4, {16}, at::kInt);
  const at::Tensor s_next = at::scalar_tensor(0.02, at::kDouble);
  REQUIRE(std::get<0>(ops::ibert_softmax(q, 0.05)).sizes() == q.sizes());
  REQUIRE(std::get<0>(ops::ibert_softmax_qat(x, s)).sizes() == q.sizes());
  REQUIRE(std::get<0>(ops::shiftmax_qat(x, s)).sizes() == q.sizes());
  REQUIRE(std::get<0>(ops::log_int_softmax_qat(x, s)).sizes() == q.sizes());
  REQUIRE(std::get<0>(ops::ibert_gelu(q, s)).sizes() == q.sizes());
  REQUIRE(std::get<0>(ops::ibert_gelu_qat(x, s)).sizes() == q.sizes());
  REQUIRE(std::get<0>(ops::shift_gelu_qat(x, s)).sizes() == q.sizes());
  REQUIRE(std::get<1>(ops::ilayernorm(q, 0.05, gamma, beta)).numel() == 16);
  REQUIRE(std::get<1>(ops::ibert_layernorm(q, 0.05, gamma, beta)).numel() == 16);
  REQUIRE(std::get<1>(ops::ptf_layernorm(q, alpha, 0.05, gamma, beta, 0.02)) == 0.02);
  REQUIRE(std::get<0>(ops::ilayernorm_qat(x, s, gamma, beta)).sizes() == q.sizes());
  REQUIRE(std::get<0>(ops::ibert_layernorm_qat(x, s, gamma, beta)).sizes() == q.sizes());
  REQUIRE(std::get<0>(ops::ptf_layernorm_qat(x, alpha, s, gamma, beta, s_next)).sizes() == q.sizes());
  const at::Tensor m = at::full({}, int64_t{1} << 30, at::kLong), k = at::full({}, int64_t{31}, at::kLong);
  // round(q·2^30 / 2^31), half to even (SPEC §0)
  REQUIRE(at::equal(ops::requant_dyadic(q, m, k, 8).to(at::kDouble), at::round(q.to(at::kDouble) / 2)));
  REQUIRE(ops::ptf_quantize(x, alpha, s, 8).sizes() == q.sizes());
  REQUIRE(ops::ptf_alpha_error(x, s, 8).sizes() == at::IntArrayRef({16, 4}));
  REQUIRE(ops::quantize_qat(x, s, 8).sizes() == q.sizes());
  REQUIRE(ops::requant_qat(x, s, s_next, 8).sizes() == q.sizes());
  REQUIRE(ops::ptf_quantize_qat(x, alpha, s, 8).sizes() == q.sizes());
}
