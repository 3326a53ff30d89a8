// The mnq ops called from C++ through the dispatcher, as the C++ models and trainer call them.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <catch2/catch.hpp>
#include <torch/torch.h>

namespace {
template <class Sig>
c10::TypedOperatorHandle<Sig> op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Sig>();
}
}  // namespace

TEST_CASE("shiftmax runs from C++ and its rows sum to about one", "[ops]") {
  auto shiftmax = op<std::tuple<at::Tensor, double>(const at::Tensor&, double, int64_t, int64_t)>("mnq::shiftmax");
  const at::Tensor q = at::randint(-128, 128, {4, 197}, at::kInt);
  auto [out, s_out] = shiftmax.call(q, 0.05, 16, 15);
  REQUIRE(out.scalar_type() == at::kInt);
  REQUIRE(s_out == std::ldexp(1.0, -15));
  const at::Tensor sums = out.to(at::kDouble).sum(-1) * s_out;
  REQUIRE((sums - 1.0).abs().max().item<double>() < 0.02);
}

TEST_CASE("shiftmax_qat has a straight-through softmax gradient from C++", "[ops]") {
  auto qat = op<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, const at::Tensor&, int64_t, int64_t)>(
      "mnq::shiftmax_qat");
  const double s = 0.05;
  const at::Tensor x = (at::randint(-100, 100, {3, 11}, at::kFloat) * s).requires_grad_(true);
  const auto [y, s_out] = qat.call(x, at::scalar_tensor(s, at::kDouble), 16, 15);
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
  auto shiftmax = op<std::tuple<at::Tensor, double>(const at::Tensor&, double, int64_t, int64_t)>("mnq::shiftmax");
  REQUIRE_THROWS_WITH(shiftmax.call(at::zeros({2, 3}), 0.1, 16, 15), Catch::Contains("integer tensor"));
  REQUIRE_THROWS_WITH(shiftmax.call(at::zeros({2, 3}, at::kInt), -1.0, 16, 15), Catch::Contains("scale"));
  REQUIRE_THROWS_WITH(shiftmax.call(at::zeros({2, 3}, at::kInt), 0.1, 17, 15), Catch::Contains("out_bits"));
}

TEST_CASE("every op family runs from C++", "[ops]") {
  const at::Tensor q = at::randint(-128, 128, {3, 50}, at::kInt);
  auto ibert = op<std::tuple<at::Tensor, double>(const at::Tensor&, double, int64_t)>("mnq::ibert_softmax");
  auto [sm, s_sm] = ibert.call(q, 0.05, 16);
  REQUIRE(s_sm == std::ldexp(1.0, -16));
  REQUIRE((sm.to(at::kDouble).sum(-1) * s_sm - 1.0).abs().max().item<double>() < 0.05);

  auto lis = op<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&, double, int64_t)>("mnq::log_int_softmax");
  auto [code, mask] = lis.call(q, 0.05, 4);
  REQUIRE(code.scalar_type() == at::kByte);
  REQUIRE(mask.scalar_type() == at::kBool);

  auto sg = op<std::tuple<at::Tensor, double>(const at::Tensor&, double, int64_t, int64_t)>("mnq::shift_gelu");
  auto [g, s_g] = sg.call(q, 0.03, 8, 23);
  REQUIRE(g.sizes() == q.sizes());
  REQUIRE(s_g == 0.03 * std::ldexp(1.0, -7));

  auto quant = op<at::Tensor(const at::Tensor&, const at::Tensor&, int64_t, int64_t)>("mnq::quantize");
  const at::Tensor x = at::randn({4, 6});
  const at::Tensor codes = quant.call(x, at::scalar_tensor(0.1, at::kDouble), 8, -1);
  REQUIRE(at::equal(codes, at::clamp(at::round(x.to(at::kDouble) / 0.1), -128, 127).to(at::kInt)));

  using RequantSig = at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t,
                                const std::optional<at::Tensor>&, const std::optional<at::Tensor>&);
  auto requant = op<RequantSig>("mnq::requant");
  const at::Tensor r = requant.call(codes, at::scalar_tensor(0.1, at::kDouble), at::scalar_tensor(0.2, at::kDouble), 8,
                                    std::nullopt, std::nullopt);
  REQUIRE(r.abs().max().item<int>() <= 64);
}
