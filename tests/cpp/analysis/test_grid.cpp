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
