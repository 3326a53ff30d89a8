// requant's float32 form for wide output ranges (csrc/cpu/requant_wide32_simd.h: fake-quant output of float input
// onto more codes than fake_store32 certifies, e.g. a block's 16-bit residual QuantAct with multipliers near 1/2)
// against the scalar definition, bit for bit, on every path this CPU has: codes near ±2^15 and ±2^16 and beyond
// (the form's code bounds 2^21 and 2^17; near-ties of codes up to 2^23, where float32 codes go wrong), near-ties of
// x / S (the code's rounding) and of q·md (the requant's), exact ties of q·md (md = 1/2, 3/4), ±0, NaN, ±inf,
// multipliers near 1/2 and 1, tiny ones (large shifts), 2 and 2^5 (the form's bound) and above, output scales at the
// store's bounds 2^∓60 and beyond and ones whose stores meet exact float32 ties, output windows of 16, 12 and 24
// bits and one at 1.5·2^21, per-tensor and per-channel scales, with and without the residual, row tails of every
// length mod 16.
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

// A side of n float inputs over cols columns with multiplier ratio ~`ratio` (per channel: times 1 + small) on scales
// S ~ 6/32767. Values x = fl32(y·S), y mostly codes with q·md around `center` ± 20000, with near-ties of y, of q·md
// (exact ones when md has few bits), codes at the form's bounds, and special lanes.
SideData make_wide_side(int64_t cols, int64_t n, double ratio, bool per_tensor, double center, std::mt19937& rng) {
  SideData d;
  d.uniform = per_tensor;
  for (int64_t c = 0; c < cols; ++c) {
    const int64_t cc = per_tensor ? 0 : c;
    const Dyadic dy = dyadic(ratio * (1 + 0.013 * static_cast<double>(cc % 7)));
    d.push_column(dy.m, dy.k, 6.0 / 32767 * (1 + 0.021 * static_cast<double>(cc % 5)));
  }
  std::uniform_real_distribution<double> spread(-20000.0, 20000.0), unit(0.0, 1.0);
  const double edges[] = {32767, -32768, 32768, -32769, 65535, -65535, 65536, -65536, 65537, 0x1p20, -0x1p23, 0x1p25};
  for (int64_t i = 0; i < n; ++i) {
    const int64_t c = i % cols;
    const double md = d.md[c], s = d.s[c];
    const double t = center + spread(rng);  // the requant's argument q·md
    double y = std::round(t / md);          // a code: x / S
    const unsigned pick = rng() % 64;
    if (pick < 4) y = std::floor(t / md) + 0.5;                                        // a tie of the code
    if (pick >= 4 && pick < 12) y = std::round((std::floor(t) + 0.5) / md);            // q·md near a half-integer
    if (pick >= 12 && pick < 16) y = std::round((std::floor(t) + 0.5) / md) + (unit(rng) - 0.5);  // both near
    if (pick >= 16 && pick < 18) y = edges[rng() % 12] * (rng() % 2 ? 1 : -1);        // the form's code bounds
    if (pick == 18) y = unit(rng) * 40000 - 20000;                                     // off the grid
    if (pick == 19) y = std::floor((unit(rng) - 0.5) * 0x1p24) + 0.5;  // near-ties of codes around the form's bound
    float x = static_cast<float>(y * s);
    if (pick < 4 || pick >= 12) {
      for (int u = static_cast<int>(rng() % 5) - 2; u != 0; u += u > 0 ? -1 : 1) {
        x = std::nextafter(x, u > 0 ? INFINITY : -INFINITY);
      }
    }
    d.x.push_back(simd_test::with_special_values(x, s, 512, rng));
  }
  return d;
}

}  // namespace

TEST_CASE("requant's wide float32 form equals the scalar definition", "[simd][quant]") {
  std::mt19937 rng(43);
  // Ratios: the bench's S_in/S_out, S_id/S_out (10/19, 9/19), arbitrary ones near 1/2 and 1, exactly 1/2 and 3/4
  // (exact ties of q·md), a tiny one (k = 61), 2 and above (the code bound halves), the form's bound 2^5 and above.
  const double ratios[][2] = {{10.0 / 19, 9.0 / 19}, {0.5263158, 0.4736841}, {0.9999999, 0.031}, {0.5, 0.75},
                              {0x1p-30, 0.5}, {2.0, 0.5}, {2.25, 0.5}, {32.0, 0.5}, {32.5, 0.5}};
  for (const auto& ratio : ratios) {
    for (const int64_t cols : {16, 21, 31, 47, 384}) {
      const int64_t rows = std::max<int64_t>(2, 2000 / cols), n = rows * cols;
      for (const bool per_tensor : {true, false}) {
        for (const bool residual : {false, true}) {
          // Output windows: 16, 12 and 24 bits around 0; at 1.5·2^21 (md = 2 or 2^5: codes near 1.5·2^20 or
          // 1.5·2^16, below the code bounds 2^21 and 2^17).
          for (const double center : {0.0, 0x1.8p21}) {
            if (center != 0.0 && ratio[0] != 2.0 && ratio[0] != 32.0) continue;
            const SideData a = make_wide_side(cols, n, ratio[0], per_tensor, center, rng);
            const SideData b = make_wide_side(cols, n, ratio[1], per_tensor, 0.0, rng);
            for (const int bits : {16, 12, 24}) {
              const i64 lo = static_cast<i64>(center) - (i64(1) << (bits - 1));
              const i64 hi = static_cast<i64>(center) + (i64(1) << (bits - 1)) - 1;
              // Output scales: the bench's; stores at exact float32 ties (1 + 2^−24: v = 1) and where the
              // definition's double rounding leaves a tie (1 + 2^−24 + 2^−52); the store's bounds 2^∓60 and beyond.
              for (const double out_scale : {6.0 / 32767 * 1.9, 1 + 0x1p-24, 1 + 0x1p-24 + 0x1p-52,
                                             0x1p-10 * (1 + 0x1p-24), 0x1p-60, 0x1.fffffp-61, 0x1p60, 0x1.00001p60}) {
                INFO("ratio " << ratio[0] << " cols " << cols << " per_tensor " << per_tensor << " residual "
                              << residual << " center " << center << " bits " << bits << " S_out " << out_scale);
                const cpu::RequantSimdSide sa = a.side(), sb = b.side();
                simd_test::require_same_fake(sa, residual ? &sb : nullptr, cols, rows, lo, hi, out_scale);
              }
            }
          }
        }
      }
    }
  }
}
