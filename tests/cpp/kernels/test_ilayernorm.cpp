// kernels/ilayernorm.h: the fixed 10-step Newton square root and the row factor of I-LayerNorm (SPEC §4.1).
#include <catch2/catch.hpp>
#include <cmath>
#include <random>
#include <vector>

#include "kernels/ilayernorm.h"

using namespace mnq::kernels;

namespace {
// SPEC §4.1 written with floor_div: k = 2^16; 10 × k = floor((k + floor(var/k)) / 2).
i64 newton_def(i64 var) {
  i64 k = i64(1) << 16;
  for (int i = 0; i < 10; ++i) k = floor_div(k + floor_div(var, k), 2);
  return k;
}
}  // namespace

TEST_CASE("ilayernorm_std known answers", "[ilayernorm]") {
  REQUIRE(ilayernorm_std(0) == 64);                // halves ten times from 2^16
  REQUIRE(ilayernorm_std(i64(1) << 32) == 65536);  // 2^16 is the fixed point of √(2^32)
  REQUIRE(ilayernorm_std(i64(1) << 30) == 32768);  // converges within 10 steps
  REQUIRE(ilayernorm_std(100) == 64);              // below 64², the 64 floor dominates
}

TEST_CASE("ilayernorm_std matches the SPEC iteration and its bounds over the whole var range", "[ilayernorm]") {
  std::mt19937_64 rng(3);
  for (int e = 0; e <= 48; ++e) {
    for (int t = 0; t < 300; ++t) {
      const i64 var = static_cast<i64>(rng() % (u64(1) << e)) + (e ? (i64(1) << (e - 1)) : 0);  // ≤ 2^48
      const i64 k = ilayernorm_std(var);
      REQUIRE(k == newton_def(var));
      REQUIRE(k >= 64);
      REQUIRE(k >= static_cast<i64>(isqrt64(static_cast<u64>(var))));  // Newton from above never undershoots
      REQUIRE(k <= (i64(1) << 31) + (i64(1) << 15));
    }
  }
}

TEST_CASE("ilayernorm_std converges to isqrt for the variances of 16-bit rows of ViT widths", "[ilayernorm]") {
  // var = Σy² for C = 192…1024 and |y| of a few hundred to 2^15: isqrt(var) ∈ [2^12, 2^20], reached in 10 steps.
  for (i64 var = i64(1) << 24; var <= i64(1) << 40; var += var / 97 + 1) {
    const i64 k = ilayernorm_std(var);
    const i64 r = static_cast<i64>(isqrt64(static_cast<u64>(var)));
    REQUIRE(k >= r);
    REQUIRE(k <= r + 1);
  }
}

TEST_CASE("ilayernorm output of extreme 16-bit rows stays within 2^30", "[ilayernorm]") {
  for (const i64 cols : {i64(1), i64(2), i64(197), i64(384), kLnMaxCols}) {
    for (int pattern = 0; pattern < 3; ++pattern) {
      std::vector<i64> q(cols);
      for (i64 j = 0; j < cols; ++j) {
        q[j] = pattern == 0 ? (j % 2 ? kIlnHi : kIlnLo) : (pattern == 1 ? (j == 0 ? kIlnHi : kIlnLo) : kIlnLo);
      }
      i64 s = 0, ss = 0;
      for (const i64 v : q) {
        s += v;
        ss += v * v;
      }
      i64 mean = 0;
      const LnFactor f = ilayernorm_factor(s, ss, cols, mean);
      for (const i64 v : q) {
        const i64 yn = ln_affine_out(static_cast<int32_t>(v - mean), f, 0);
        REQUIRE(std::llabs(yn) <= (i64(1) << 30));
      }
    }
  }
}

TEST_CASE("ilayernorm normalizes a row to about 2^30 / sqrt(C) per unit deviation", "[ilayernorm]") {
  // Row ±a (C even): mean 0, var = C·a², std = √C·a, f ≈ 2^31/(√C·a), yn = a·f/2 ≈ 2^30/√C.
  const i64 cols = 256, a = 1000;
  i64 s = 0, ss = 0;
  for (i64 j = 0; j < cols; ++j) {
    const i64 v = j % 2 ? a : -a;
    s += v;
    ss += v * v;
  }
  i64 mean = 1;
  const LnFactor f = ilayernorm_factor(s, ss, cols, mean);
  REQUIRE(mean == 0);
  const double yn = static_cast<double>(ln_affine_out(static_cast<int32_t>(a), f, 0));
  REQUIRE(std::fabs(yn - std::ldexp(1.0, 30) / 16.0) < 1e-4 * yn);
}
