// requant's one-rounding float32 form (csrc/cpu/requant_fused_simd.h: fake-quant output of float input with small
// multipliers) against the scalar definition, bit for bit, on every path this CPU has: arbitrary float inputs (not
// code multiples: the code's own rounding then moves q·md by up to |md|/2), near-ties of x / S and of q·md, ±0,
// NaN, ±inf, codes beyond 2^62 (no code: NaN), requants at the form's 2^22 bound (an output window there), the
// multiplier bounds (Σ|md| = 2^−6 and just above; |md| = 2^−36 and just below), per-tensor and per-channel scales,
// with and without the residual, row tails.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "csrc/cpu/isa.h"
#include "csrc/cpu/requant_simd.h"
#include "kernels/common.h"
#include "tests/cpp/ops/simd_test_util.h"

using namespace mnq::kernels;
namespace cpu = mnq::ops::cpu;

namespace {

using simd_test::SideData;

// A side of rows × cols float inputs with multiplier ratio ~`ratio` (dyadic() of ratio·(1 + small per column) when
// per channel; below 2^−32, beyond dyadic()'s shifts, a small m with k = 62) on scales S ~ 6/32767. Values:
// x = fl32(y·S) for y drawn so that the requant q·md lands around `center` ± 300 (an output window there shows every
// code), with near-ties of y (the code's rounding) and of q·md (the requant's), and special lanes.
SideData make_side(int64_t cols, int64_t n, double ratio, bool per_tensor, double center, std::mt19937& rng) {
  SideData d;
  d.uniform = per_tensor;
  for (int64_t c = 0; c < cols; ++c) {
    const int64_t cc = per_tensor ? 0 : c;
    const double rc = ratio * (1 + 0.013 * static_cast<double>(cc % 7));
    Dyadic dy = dyadic(rc);
    if (dy.k > 62) dy = Dyadic{std::max<i64>(1, std::llround(std::ldexp(rc, 62))), 62};  // |md| < 2^−32: a small m
    d.push_column(dy.m, dy.k, 6.0 / 32767 * (1 + 0.021 * static_cast<double>(cc % 5)));
  }
  std::uniform_real_distribution<double> spread(-300.0, 300.0), unit(0.0, 1.0);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t c = i % cols;
    const double md = d.md[c], s = d.s[c];
    const double t = center + spread(rng);  // the requant's argument q·md
    double y = t / md;                       // x / S
    const unsigned pick = rng() % 64;
    if (pick < 6) y = std::floor(y) + 0.5;                                     // a tie of the code
    if (pick >= 6 && pick < 12) y = std::round(std::floor(t) + 0.5) / md;      // q·md near a half-integer
    if (pick >= 12 && pick < 16) y = std::floor(std::floor(t) + 0.5) / md + (unit(rng) - 0.5);  // both near
    float x = static_cast<float>(y * s);
    for (int u = static_cast<int>(rng() % 5) - 2; u != 0; u += u > 0 ? -1 : 1) {
      x = std::nextafter(x, u > 0 ? INFINITY : -INFINITY);
    }
    d.x.push_back(simd_test::with_special_values(x, s, 1024, rng));
  }
  return d;
}

}  // namespace

TEST_CASE("requant's one-rounding form equals the scalar definition", "[simd][quant]") {
  std::mt19937 rng(41);
  // Ratios: the bench's 16-bit → 8-bit residual (~2^−8), the sum bound 2^−6 (2^−7 per side) and above, tiny ones
  // down to the |md| bound 2^−36 and below it (where codes beyond 2^62 keep their requant small).
  for (const double ratio : {0.0036623, 0x1p-7, 0x1.02p-7, 0x1p-6, 0x1p-20, 0x1.01p-36, 0x1p-37, 0x1p-44}) {
    for (const int64_t cols : {16, 40, 384}) {
      const int64_t rows = std::max<int64_t>(2, 3000 / cols), n = rows * cols;
      for (const bool per_tensor : {true, false}) {
        for (const bool residual : {false, true}) {
          // Output windows: 8 bits around 0; 10 bits at the form's 2^22 requant bound and at 2^21.
          for (const double center : {0.0, 0x1p22, -0x1p22, 0x1p21}) {
            const SideData a = make_side(cols, n, ratio, per_tensor, center, rng);
            const SideData b = make_side(cols, n, ratio, per_tensor, 0.0, rng);
            const i64 lo = center == 0.0 ? -128 : static_cast<i64>(center) - 512;
            const i64 hi = center == 0.0 ? 127 : static_cast<i64>(center) + 511;
            for (const double out_scale : {0.05, 0.064913024504979336}) {
              INFO("ratio " << ratio << " cols " << cols << " per_tensor " << per_tensor << " residual " << residual
                            << " center " << center << " S_out " << out_scale);
              const cpu::RequantSimdSide sa = a.side(), sb = b.side();
              simd_test::require_same_fake(sa, residual ? &sb : nullptr, cols, rows, lo, hi, out_scale);
            }
          }
        }
      }
    }
  }
}
