// The isolated mode's grid (csrc/analysis/grid.h): the CPU path against the reference tensor expression, on
// per-tensor and per-channel scales, narrow and wide code ranges (the certified float32 form and the exact float64
// one), ties, values beyond the clamp range, ±inf, NaN, a zero scale and the shapes the layers pass.
#include <ATen/ATen.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <limits>

#include "csrc/analysis/grid.h"
#include "csrc/cpu/isa.h"

using namespace mnq::analysis;
namespace cpu = mnq::ops::cpu;

namespace {

// Equal values element for element; NaN equals NaN, and ±0 are equal (the reference may keep rint's −0.0 where the
// integer code 0 stores +0.0: grid.cpp).
void require_same_values(const at::Tensor& want, const at::Tensor& got) {
  REQUIRE(want.sizes() == got.sizes());
  REQUIRE(want.scalar_type() == got.scalar_type());
  const at::Tensor w = want.contiguous(), g = got.contiguous();
  const float* a = w.data_ptr<float>();
  const float* b = g.data_ptr<float>();
  for (int64_t i = 0; i < w.numel(); ++i) {
    if (!(a[i] == b[i] || (std::isnan(a[i]) && std::isnan(b[i])))) {
      INFO("element " << i << ": " << a[i] << " vs " << b[i]);
      REQUIRE(a[i] == b[i]);
    }
  }
}

// xq: codes in [lo, hi] on scale s (per channel when s has C elements), as fake-quant values; x: the float input
// near xq with ties of x / s, values beyond the range and the specials.
std::pair<at::Tensor, at::Tensor> grid_inputs(const at::Tensor& s, int64_t rows, int64_t lo, int64_t hi) {
  const int64_t C = s.numel() == 1 ? 24 : s.numel();
  const at::Tensor codes = at::randint(lo, hi + 1, {rows, C}, at::kDouble);
  const at::Tensor xq = (codes * s).to(at::kFloat);
  const at::Tensor frac = at::randint(0, 4, {rows, C}, at::kDouble) * 0.5 - 0.75;  // ±1/4, ±3/4
  const at::Tensor half = at::randint(0, 2, {rows, C}, at::kDouble) * 0.75;        // turns ±3/4, −1/4 into ties
  at::Tensor x = ((codes + frac + half) * s * 1.3).to(at::kFloat);
  float* p = x.data_ptr<float>();
  const float inf = std::numeric_limits<float>::infinity();
  const float special[] = {inf, -inf, std::nanf(""), 0.0f, -0.0f, 1e-45f, -1e-45f, 3e38f};
  for (int64_t i = 0; i < 8 && i < x.numel(); ++i) p[i * 7 % x.numel()] = special[i];
  return {x, xq};
}

}  // namespace

TEST_CASE("on_grid's CPU path equals the reference expression", "[analyzer][grid]") {
  at::manual_seed(5);
  const char* before = cpu::set_isa("avx512");
  for (const char* path : {"scalar", "avx2", "avx512"}) {
    cpu::set_isa(path);
    for (const int64_t bits : {4, 8, 16, 19, 22, 32}) {
      const int64_t hi = (int64_t(1) << (bits - 1)) - 1;
      for (const bool per_channel : {false, true}) {
        const at::Tensor s = per_channel ? at::rand({40}, at::kDouble) * 1e-3 + 1e-6 : at::tensor({0.0471}, at::kDouble);
        auto [x, xq] = grid_inputs(s, 33, -hi - 1, hi);
        INFO("path " << path << " bits " << bits << " per channel " << per_channel);
        require_same_values(on_grid_reference(x, s, xq), on_grid(x, s, xq));
        // A narrower range than the quantizer's (codes within [−3, 5]): the clamp follows xq's own codes.
        auto [x2, xq2] = grid_inputs(s, 5, -3, 5);
        require_same_values(on_grid_reference(x2, s, xq2), on_grid(x2, s, xq2));
        // 0-d and 4-d shapes, x given flat (the tap's layout may differ from the layer's).
        const at::Tensor xq4 = xq.reshape({3, 11, 1, -1});
        require_same_values(on_grid_reference(x.reshape({-1}), s, xq4), on_grid(x.reshape({-1}), s, xq4));
      }
    }
  }
  cpu::set_isa(before);
  // No scale: x itself; a scalar; NaN in xq, a zero scale (both take the reference).
  const at::Tensor x = at::randn({4, 6});
  require_same_values(x, on_grid(x.reshape({-1}), at::Tensor(), x));
  const at::Tensor one = at::tensor({0.5}, at::kDouble);
  require_same_values(on_grid_reference(x[0][0], one, x[1][1]), on_grid(x[0][0], one, x[1][1]));
  at::Tensor xq = (x * 4).round() / 4;
  xq[1][2] = std::nanf("");
  require_same_values(on_grid_reference(x, one, xq), on_grid(x, one, xq));
  const at::Tensor zero = at::zeros({1}, at::kDouble);
  require_same_values(on_grid_reference(x, zero, x), on_grid(x, zero, x));
  // A float32 scale, per channel, is read as float64 as the reference does.
  const at::Tensor s32 = at::rand({6}) * 0.1 + 0.01;
  require_same_values(on_grid_reference(x, s32, x), on_grid(x, s32, x));
}

TEST_CASE("on_grid with its range given: the batch's range on a shard, as one process clamps the batch",
          "[analyzer][grid]") {
  at::manual_seed(7);
  for (const bool per_channel : {false, true}) {
    const at::Tensor s = per_channel ? at::rand({24}, at::kDouble) * 1e-2 + 1e-4 : at::tensor({0.0471}, at::kDouble);
    auto [x, xq] = grid_inputs(s, 16, -128, 127);
    INFO("per channel " << per_channel);
    // The range of the call is code_range's: the same values as on_grid.
    const CodeRange whole = code_range(s, xq);
    REQUIRE(whole.lo.scalar_type() == at::kDouble);
    require_same_values(on_grid(x, s, xq), on_grid(x, s, xq, whole));
    // A shard (the first 4 rows, narrower codes) given the whole batch's range (what the data-parallel analyzer
    // all-reduces) is the whole batch's result on those rows, not the shard's own clamp.
    const at::Tensor shard_q = (at::randint(-3, 6, {4, xq.size(1)}, at::kDouble) * s).to(at::kFloat);
    const at::Tensor q_all = at::cat({shard_q, xq.narrow(0, 4, xq.size(0) - 4)});
    const at::Tensor shard_x = x.narrow(0, 0, 4);
    const at::Tensor want = on_grid(x, s, q_all).narrow(0, 0, 4);
    require_same_values(want, on_grid(shard_x, s, shard_q, code_range(s, q_all)));
    const at::Tensor own = on_grid(shard_x, s, shard_q);
    REQUIRE_FALSE(at::equal(own.nan_to_num(0), want.nan_to_num(0)));  // the shard's own range clamps more
    // The reference form (a range on another device or beyond the fast path's bound takes it): the same values.
    const CodeRange wide{code_range(s, q_all).lo - 0.0, code_range(s, q_all).hi + 0.0};
    require_same_values(want, on_grid(shard_x, s, shard_q, wide));
  }
  // NaN in the range: the reference expression's clamp (NaN propagates), as on_grid with NaN in xq.
  const at::Tensor x = at::randn({4, 6});
  const at::Tensor one = at::tensor({0.5}, at::kDouble);
  at::Tensor xq = (x * 4).round() / 4;
  xq[1][2] = std::nanf("");
  require_same_values(on_grid(x, one, xq), on_grid(x, one, xq, code_range(one, xq)));
}
