// kernels/quant.h: quantize_code rounding/clamping, requant_code with a fused residual, channel layout.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include "kernels/quant.h"

using namespace mnq::kernels;

TEST_CASE("quantize_code rounds half to even, clamps and rejects NaN", "[quant]") {
  i64 q = 0;
  const float xs[] = {0.5f, 1.5f, 2.5f, -0.5f, -2.5f, 126.6f, 1e9f, -1e9f};
  const i64 want[] = {0, 2, 2, 0, -2, 127, 127, -128};
  for (int i = 0; i < 8; ++i) {
    REQUIRE(quantize_code(xs[i], 1.0, -128, 127, q));
    REQUIRE(q == want[i]);
  }
  REQUIRE(quantize_code(std::numeric_limits<float>::infinity(), 0.1, -8, 7, q));
  REQUIRE(q == 7);
  REQUIRE_FALSE(quantize_code(std::nanf(""), 0.1, -8, 7, q));
}

TEST_CASE("quantize_code sweep equals rint(x / s) clamped", "[quant]") {
  for (double s : {0.1, 0.0371, 1.0 / 127, 3.3}) {
    for (int i = -3000; i <= 3000; ++i) {
      const float x = static_cast<float>(i) * 0.01f;
      i64 q = 0;
      REQUIRE(quantize_code(x, s, -128, 127, q));
      const double r = std::nearbyint(static_cast<double>(x) / s);
      REQUIRE(q == static_cast<i64>(std::min(127.0, std::max(-128.0, r))));
    }
  }
}

TEST_CASE("requant_code adds the residual exactly before clamping", "[quant]") {
  const Dyadic a = dyadic(0.25), b = dyadic(0.5);
  REQUIRE(requant_code(10, a, 4, b, -128, 127) == 2 + 2);   // round(2.5) = 2, round(2) = 2
  REQUIRE(requant_code(14, a, 5, b, -128, 127) == 4 + 2);   // round(3.5) = 4, round(2.5) = 2
  REQUIRE(requant_code(1000, a, 1000, b, -128, 127) == 127);
  REQUIRE(requant_code(kInt64Max, dyadic(4.0e9), kInt64Max, dyadic(4.0e9), -128, 127) == 127);
  REQUIRE(requant_code(kInt64Min, dyadic(4.0e9), kInt64Min, dyadic(4.0e9), -128, 127) == -128);
  for (i64 q = -300; q <= 300; ++q) {
    REQUIRE(requant_code(q, a, -128, 127) == clamp64(static_cast<i64>(round_shr(static_cast<i128>(q), 2)), -128, 127));
  }
}

// The CPU fast path's shift-only rounding (requant64) against the 128-bit reference requant(): every tie and
// near-tie for small products, and random codes and multipliers over the whole fast range (|q| < 2^31,
// |m| <= 2^31, 1 <= k <= 62), both signs.
TEST_CASE("requant64 equals requant on the fast range", "[quant]") {
  for (i64 k = 1; k <= 12; ++k) {
    for (i64 m : {1, 3, -3, 5, 255, -255}) {
      for (i64 q = -600; q <= 600; ++q) REQUIRE(requant64(q, m, k) == requant(q, Dyadic{m, static_cast<int>(k)}));
    }
  }
  std::mt19937_64 rng(7);
  for (int t = 0; t < 200000; ++t) {
    const i64 k = 1 + static_cast<i64>(rng() % 62);
    const i64 q = static_cast<i64>(rng() % (i64{1} << 32)) - (i64{1} << 31) + 1;
    i64 m = static_cast<i64>(rng() % ((i64{1} << 31) + 1));
    if (rng() & 1) m = -m;
    REQUIRE(requant64(q, m, k) == requant(q, Dyadic{m, static_cast<int>(k)}));
  }
}

// The wide fast path (codes up to 2^62, shifts 31..92) against requant(): ties and near-ties around every
// rounding boundary, the extreme codes and multipliers, and random inputs of every magnitude.
TEST_CASE("requant64_wide equals requant for wide codes", "[quant]") {
  std::mt19937_64 rng(11);
  auto check = [](i64 q, i64 m, i64 k) {
    REQUIRE(requant64_wide(q, m, k) == requant(q, Dyadic{m, static_cast<int>(k)}));
  };
  const i64 lim = kWideCodeLimit - 1;
  for (i64 k = 31; k <= kWideMaxShift; ++k) {
    for (i64 q : {lim, -lim, i64{0}, i64{1}, i64{-1}, i64{1} << 31, -(i64{1} << 31)}) {
      for (i64 m : {i64{1} << 31, -(i64{1} << 31), i64{1} << 30, i64{1}, i64{-1}}) check(q, m, k);
    }
    // q·m = u·2^(k−1) + e·2^30 (m = ±2^30, q = u·2^(k−31) + e): exact ties (e = 0) and their neighbours.
    const i64 sh = k - 31;
    const i64 umax = std::min<i64>(2048, i64{1} << std::min<i64>(11, 61 - sh));
    for (i64 u = -umax; u < umax; ++u) {
      for (i64 e = -2; e <= 2; ++e) {
        const i64 q = u * (i64{1} << sh) + e;
        if (q >= kWideCodeLimit || q <= -kWideCodeLimit) continue;
        check(q, i64{1} << 30, k);
        check(q, -(i64{1} << 30), k);
      }
    }
  }
  for (int t = 0; t < 300000; ++t) {
    const i64 k = 31 + static_cast<i64>(rng() % static_cast<uint64_t>(kWideMaxShift - 30));
    i64 q = static_cast<i64>(rng() >> 2) >> (rng() % 62);  // every magnitude below 2^62
    if (rng() & 1) q = -q;
    i64 m = static_cast<i64>(rng() % ((i64{1} << 31) + 1));
    if (rng() & 1) m = -m;
    check(q, m, k);
  }
}

TEST_CASE("channel layout indexes the axis", "[quant]") {
  const ChannelLayout per_tensor{1, 1};
  REQUIRE(per_tensor.channel(12345) == 0);
  const ChannelLayout last{5, 1};  // [..., 5]
  REQUIRE(last.channel(7) == 2);
  const ChannelLayout first{3, 4};  // [3, 4] along dim 0
  REQUIRE(first.channel(0) == 0);
  REQUIRE(first.channel(5) == 1);
  REQUIRE(first.channel(11) == 2);
}

TEST_CASE("quant_sq_error is the squared distance to the code", "[quant]") {
  REQUIRE(quant_sq_error(1.25f, 1.0, -128, 127) == Approx(0.0625));
  REQUIRE(quant_sq_error(300.0f, 1.0, -128, 127) == Approx(173.0 * 173.0));
}
