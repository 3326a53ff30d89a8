// kernels/shift_exp.h and kernels/shiftmax.h: known answers, sweeps against the definition and against exp.
#include <catch2/catch.hpp>

#include <cmath>

#include "kernels/shiftmax.h"

using namespace mnq::kernels;

namespace {
// SPEC §2.2 shift_exp written with plain integer divisions, as an independent check of the fast path.
i64 shift_exp_def(i64 x, i64 x0, int n) {
  x = x + floor_div(x, 2) - floor_div(x, 16);
  x = std::max(x, n * x0);
  const i64 k = floor_div(x, x0);
  const i64 r = x - x0 * k;
  const i64 e = floor_div((r - 2 * x0) * (i64(1) << (n - k)), 2);
  return std::max<i64>(e, 0);
}
}  // namespace

TEST_CASE("shift_exp matches the SPEC definition on a sweep", "[shift_exp]") {
  for (double s : {0.5, 0.1, 0.0371, 0.01, 1.0 / 127, 3e-4}) {
    const ShiftExpConsts c = shift_exp_consts(s, 15);
    REQUIRE(c.x0 == static_cast<i64>(std::floor(-1.0 / s)));
    for (i64 x = -40000; x <= 0; x += 7) REQUIRE(shift_exp(x, c) == shift_exp_def(x, c.x0, 15));
  }
}

TEST_CASE("shift_exp known answers", "[shift_exp]") {
  const ShiftExpConsts c = shift_exp_consts(0.1, 15);  // x0 = −10
  REQUIRE(c.x0 == -10);
  REQUIRE(shift_exp(0, c) == 10 * (1 << 15));  // (0 + 20)·2^15 / 2
  // far below n·x0 the value stays at the floor value (x clamps to −150)
  REQUIRE(shift_exp(-100000, c) == shift_exp(-105, c));
}

TEST_CASE("shift_exp is monotone and close to exp", "[shift_exp]") {
  const double s = 0.01;
  const ShiftExpConsts c = shift_exp_consts(s, 15);
  i64 prev = 0;
  for (i64 x = -1000; x <= 0; ++x) {
    const i64 e = shift_exp(x, c);
    REQUIRE(e >= prev);
    prev = e;
    const double approx = static_cast<double>(e) / static_cast<double>(-c.x0 * (i64(1) << 15));
    REQUIRE(std::fabs(approx - std::exp(x * s)) < 0.08);
  }
}

TEST_CASE("shift_exp_capped equals min(e, cap) and handles positive x", "[shift_exp]") {
  const ShiftExpConsts c = shift_exp_consts(0.05 * 1.702, 23);
  for (i64 x = -300; x <= 0; ++x) REQUIRE(shift_exp_capped(x, c, kInt31Max) == std::min(shift_exp(x, c), kInt31Max));
  i64 prev = 0;
  for (i64 x = 1; x <= 2000; ++x) {
    const i64 e = shift_exp_capped(x, c, kInt31Max);
    REQUIRE(e >= prev);
    REQUIRE(e <= kInt31Max);
    prev = e;
  }
  REQUIRE(prev == kInt31Max);
  // small positive x: exact value
  const ShiftExpConsts d = shift_exp_consts(0.09, 3);
  REQUIRE(d.x0 == -12);
  REQUIRE(log2e_shift(4) == 6);  // 4 + 2 − 0
  // k = floor(6 / −12) = −1, r = 6 − 12 = −6, e = (−6 + 24)·2^(3+1) / 2
  REQUIRE(shift_exp_capped(4, d, i64(1) << 40) == 144);
}

TEST_CASE("shift_exp32 equals shift_exp wherever Shiftmax accepts the scale", "[shift_exp]") {
  for (int n : {1, 8, 15, 20}) {
    for (double s : {0.9, 0.08, 1.0 / 127, 3e-4, 2e-5}) {
      const ShiftExpConsts c = shift_exp_consts(s, n);
      if (static_cast<double>(-c.x0) * std::ldexp(1.0, n) >= 2147483647.0) continue;  // outside the range
      const ShiftExp32 c32 = shift_exp32_consts(c);
      REQUIRE(log2e_shift(c32.x_lo) <= c.n * c.x0);
      for (i64 x = -3 * static_cast<i64>(-c32.x_lo); x <= 0; x += 1 + (-c32.x_lo) / 20000) {
        const int32_t xc = static_cast<int32_t>(std::max<i64>(x, c32.x_lo));
        REQUIRE(shift_exp32(xc, c32) == shift_exp(x, c));
      }
    }
  }
}

TEST_CASE("shift_exp32_input clamps q - m without overflow", "[shift_exp]") {
  const ShiftExp32 c = shift_exp32_consts(shift_exp_consts(0.05, 15));
  REQUIRE(shift_exp32_input(5, 5, c) == 0);
  REQUIRE(shift_exp32_input(3, 5, c) == -2);
  REQUIRE(shift_exp32_input(INT32_MIN, INT32_MAX, c) == c.x_lo);
  REQUIRE(shift_exp32_input(c.x_lo + 7, 7, c) == c.x_lo);
  REQUIRE(shift_exp32_input(c.x_lo + 8, 7, c) == c.x_lo + 1);
}

TEST_CASE("shiftmax output stays within its bits", "[shiftmax]") {
  for (int b : {2, 8, 16}) {
    const ShiftmaxConsts c = shiftmax_consts(0.05, b, 15);
    const int32_t e_max = shiftmax_exp(7, 7, c);  // the row maximum: x = 0
    REQUIRE(e_max == 20 * (1 << 15));
    // one element (s = e): f = floor((2^31−1)/e), e·f ∈ (2^31 − 1 − e, 2^31 − 1], so out is just below 2^(b−1)
    const int32_t f = shiftmax_factor(e_max);
    REQUIRE(shiftmax_out(e_max, f, c) < (1 << (b - 1)));
    REQUIRE(shiftmax_out(e_max, f, c) >= ((kInt31Max - e_max) >> (32 - b)));
  }
  // a saturated sum gives f = 1
  REQUIRE(shiftmax_factor(i64(1) << 40) == 1);
}
