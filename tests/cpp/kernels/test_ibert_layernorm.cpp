// kernels/ibert_layernorm.h: the per-row shift search and the row factor of I-BERT LayerNorm (SPEC §4.2).
#include <catch2/catch.hpp>
#include <random>
#include <vector>

#include "kernels/ibert_layernorm.h"

using namespace mnq::kernels;

namespace {
i64 v_of(const std::vector<i64>& y, int s) {
  i64 v = 0;
  for (const i64 e : y) v += floor_div(e, i64(1) << s) * floor_div(e, i64(1) << s);
  return v;
}

// The SPEC definition: the smallest s ≥ 0 with V(s) < 2^32, by linear search from 0.
int shift_def(const std::vector<i64>& y) {
  int s = 0;
  while (v_of(y, s) >= kIbertVarLimit) ++s;
  return s;
}

// ibert_find_shift over a centred row, with the pass as the backends compute it.
int shift_found(const std::vector<i64>& y, i64& var, int& passes) {
  var = v_of(y, 0);
  passes = 0;
  return ibert_find_shift(var, [&](int s, i64& below, i64& at) {
    ++passes;
    below = at = 0;
    for (const i64 e : y) {
      below += ibert_term(static_cast<int32_t>(e), s - 1);
      at += ibert_term(static_cast<int32_t>(e), s);
    }
  });
}
}  // namespace

TEST_CASE("ibert_term is floor(y / 2^s)²", "[ibert_layernorm]") {
  for (i64 y = -70000; y <= 70000; y += 13) {
    for (int s = 0; s <= kIbertMaxShift; ++s) {
      const i64 z = floor_div(y, i64(1) << s);
      REQUIRE(ibert_term(static_cast<int32_t>(y), s) == z * z);
    }
  }
}

TEST_CASE("the shift search finds the SPEC shift on rows of every magnitude", "[ibert_layernorm]") {
  std::mt19937_64 rng(5);
  int max_passes = 0;
  for (int mag = 0; mag <= 22; ++mag) {
    for (int t = 0; t < 40; ++t) {
      const i64 cols = 1 + static_cast<i64>(rng() % 1000);
      const i64 lim = i64(1) << mag;
      std::vector<i64> y(cols);
      for (auto& e : y) e = static_cast<i64>(rng() % static_cast<u64>(2 * lim)) - lim;  // |y| ≤ 2^22
      i64 var = 0;
      int passes = 0;
      const int s = shift_found(y, var, passes);
      REQUIRE(s == shift_def(y));
      REQUIRE(var == v_of(y, s));
      REQUIRE(var < kIbertVarLimit);
      max_passes = std::max(max_passes, passes);
    }
  }
  REQUIRE(max_passes <= 2);  // the estimate is at most one step off on these rows
}

TEST_CASE("the shift search is exact at the 2^32 boundary and at the bounds of the input", "[ibert_layernorm]") {
  // V(0) just below and at 2^32: one element of 2^16 gives exactly 2^32.
  for (const i64 top : {(i64(1) << 16) - 1, i64(1) << 16, (i64(1) << 16) + 1}) {
    std::vector<i64> y = {top, 0, 0};
    i64 var = 0;
    int passes = 0;
    REQUIRE(shift_found(y, var, passes) == shift_def(y));
  }
  // Rows that hit V(s) = 2^32 exactly at several shifts: 4 elements of 2^15·2^s.
  for (int s = 0; s <= 6; ++s) {
    std::vector<i64> y(4, i64(1) << (15 + s));
    i64 var = 0;
    int passes = 0;
    REQUIRE(shift_found(y, var, passes) == shift_def(y));
  }
  // The extreme row: C = 2^16 elements of ±(2^22 − 1) needs the largest shift, 15.
  std::vector<i64> y(kLnMaxCols);
  for (size_t j = 0; j < y.size(); ++j) y[j] = j % 2 ? (i64(1) << 22) - 1 : -(i64(1) << 22) + 1;
  i64 var = 0;
  int passes = 0;
  const int s = shift_found(y, var, passes);
  REQUIRE(s == shift_def(y));
  REQUIRE(s <= kIbertMaxShift);
}

TEST_CASE("ibert_factor known answers", "[ibert_layernorm]") {
  const auto f_of = [](i64 var, int shift) {
    const LnFactor f = ibert_factor(var, shift);
    return 2 * static_cast<i64>(f.half) + (f.odd_mask & 1);
  };
  REQUIRE(f_of(0, 0) == i64(1) << 31);            // constant row: std guarded to 1
  REQUIRE(f_of(3, 0) == i64(1) << 31);            // isqrt(3) = 1
  REQUIRE(f_of(4, 0) == i64(1) << 30);            // std = 2
  REQUIRE(f_of(4, 3) == i64(1) << 27);            // std = 2·2^3
  REQUIRE(f_of((i64(1) << 32) - 1, 0) == 32768);  // isqrt = 65535: floor(2^31 / 65535) = 32768
  REQUIRE(f_of(9, 15) == 21845);                  // std = 3·2^15
}

TEST_CASE("ibert_layernorm output of extreme 22-bit rows stays within 2^31", "[ibert_layernorm]") {
  for (const i64 cols : {i64(1), i64(2), i64(384), kLnMaxCols}) {
    for (int pattern = 0; pattern < 2; ++pattern) {
      std::vector<i64> q(cols);
      for (i64 j = 0; j < cols; ++j) {
        q[j] = pattern == 0 ? (j % 2 ? kIbertLnHi : kIbertLnLo) : (j ? kIbertLnLo : kIbertLnHi);
      }
      i64 s = 0, ss = 0;
      for (const i64 v : q) {
        s += v;
        ss += v * v;
      }
      const i64 mean = ln_mean(s, cols);
      std::vector<i64> y(cols);
      for (i64 j = 0; j < cols; ++j) y[j] = q[j] - mean;
      i64 var = ln_centered_sumsq(s, ss, mean, cols);
      REQUIRE(var == v_of(y, 0));
      int passes = 0;
      const int shift = shift_found(y, var, passes);
      const LnFactor f = ibert_factor(var, shift);
      for (const i64 e : y) REQUIRE(std::llabs(ln_affine_out(static_cast<int32_t>(e), f, 0)) < (i64(1) << 31));
    }
  }
}
