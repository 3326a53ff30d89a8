// kernels/common.h: exhaustive sweeps over small ranges against obvious definitions.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>

#include "kernels/common.h"

using namespace mnq::kernels;

TEST_CASE("floor_div matches floor of the rational for all signs", "[common]") {
  for (i64 a = -200; a <= 200; ++a) {
    for (i64 b = -13; b <= 13; ++b) {
      if (b == 0) continue;
      REQUIRE(floor_div(a, b) == static_cast<i64>(std::floor(static_cast<double>(a) / static_cast<double>(b))));
      REQUIRE(floor_div128(a, b) == floor_div(a, b));
    }
  }
}

TEST_CASE("shr is floor division by a power of two", "[common]") {
  for (i64 a = -1000; a <= 1000; ++a) {
    for (int k = 0; k < 12; ++k) REQUIRE(shr(a, k) == floor_div(a, i64(1) << k));
  }
  REQUIRE(shr(-5, 70) == -1);
  REQUIRE(shr(5, 70) == 0);
}

TEST_CASE("round_shr and round_div round half to even", "[common]") {
  for (i64 a = -300; a <= 300; ++a) {
    for (int k = 0; k < 8; ++k) {
      const double exact = static_cast<double>(a) / static_cast<double>(i64(1) << k);
      REQUIRE(static_cast<i64>(round_shr(a, k)) == static_cast<i64>(std::nearbyint(exact)));
    }
    for (i64 b = 1; b <= 9; ++b) {
      REQUIRE(static_cast<i64>(round_div(a, b)) ==
              static_cast<i64>(std::nearbyint(static_cast<double>(a) / static_cast<double>(b))));
    }
  }
  REQUIRE(round_shr(i128(1) << 100, 127) == 0);
  REQUIRE(round_shr(5, 1) == 2);   // 2.5 → 2
  REQUIRE(round_shr(7, 1) == 4);   // 3.5 → 4
  REQUIRE(round_shr(-5, 1) == -2); // −2.5 → −2
}

TEST_CASE("dyadic reproduces batch_frexp", "[common]") {
  const Dyadic one = dyadic(1.0);
  REQUIRE(one.m == (i64(1) << 30));
  REQUIRE(one.k == 30);
  const Dyadic half = dyadic(0.5);
  REQUIRE(half.m == (i64(1) << 30));
  REQUIRE(half.k == 31);
  // mantissa rounding to 2^31 wraps to 2^30 with k − 1
  const Dyadic almost = dyadic(std::nextafter(1.0, 0.0));
  REQUIRE(almost.m == (i64(1) << 30));
  REQUIRE(almost.k == 30);
  const Dyadic neg = dyadic(-0.75);
  REQUIRE(neg.m == -(i64(3) << 29));
  for (double r : {1e-6, 3.3e-3, 0.123456789, 0.9, 1.7, 250.0, 3e9}) {
    const Dyadic d = dyadic(r);
    REQUIRE(std::llabs(d.m) >= (i64(1) << 30));
    REQUIRE(std::llabs(d.m) < (i64(1) << 31));
    REQUIRE(std::fabs(std::ldexp(static_cast<double>(d.m), -d.k) / r - 1.0) < 1e-9);
  }
}

TEST_CASE("requant is the exactly rounded product", "[common]") {
  for (double r : {0.3, 0.5, 1.0, 1.37, 0.001, 4.0e9}) {
    const Dyadic d = dyadic(r);
    for (i64 q = -500; q <= 500; ++q) {
      const i128 p = static_cast<i128>(q) * d.m;
      i64 want;
      if (d.k >= 0) {
        want = static_cast<i64>(round_shr(p, d.k));
      } else {
        want = saturate64(p * (i128(1) << -d.k));
      }
      REQUIRE(requant(q, d) == want);
    }
  }
  // a tie: q·m / 2^k = 2.5 → 2, 3.5 → 4
  const Dyadic h = dyadic(0.5);
  REQUIRE(requant(5, h) == 2);
  REQUIRE(requant(7, h) == 4);
  REQUIRE(requant(-5, h) == -2);
  // saturation for huge multipliers
  REQUIRE(requant(i64(1) << 40, dyadic(std::ldexp(1.0, 40))) == kInt64Max);
  REQUIRE(requant(-(i64(1) << 40), dyadic(std::ldexp(1.0, 40))) == kInt64Min);
}

TEST_CASE("isqrt is the exact floor square root", "[common]") {
  for (u64 v = 0; v < 200000; ++v) {
    const u64 r = isqrt64(v);
    REQUIRE(r * r <= v);
    REQUIRE((r + 1) * (r + 1) > v);
    REQUIRE(isqrt128(v) == r);
  }
  for (u64 r : {u64(4294967295ull), u64(3037000499ull), u64(1) << 40, u64(123456789012ull)}) {
    const u128 sq = static_cast<u128>(r) * r;
    REQUIRE(isqrt128(sq) == r);
    REQUIRE(isqrt128(sq - 1) == r - 1);
    REQUIRE(isqrt128(sq + 2 * r) == r);  // (r+1)² − 1
  }
  REQUIRE(isqrt64(UINT64_MAX) == 4294967295ull);
}

TEST_CASE("sat_add is min(a + b, cap)", "[common]") {
  REQUIRE(sat_add(3, 4, 10) == 7);
  REQUIRE(sat_add(7, 4, 10) == 10);
  REQUIRE(sat_add(kInt31Max, kInt31Max, kInt31Max) == kInt31Max);
}

TEST_CASE("Divider64 divides exactly by multiply-high", "[common]") {
  std::mt19937_64 rng(3);
  auto check = [](u64 n, u64 d) {
    const Divider64 v = divider64(d);
    INFO("n = " << n << ", d = " << d);
    REQUIRE(divide(n, v) == n / d);
    REQUIRE(modulo(n, v) == n % d);
  };
  for (u64 d = 1; d <= 1000; ++d) {
    for (u64 n = 0; n <= 3000; ++n) check(n, d);
    for (u64 n : {~u64(0), ~u64(0) - 1, u64(1) << 63, (u64(1) << 63) - 1}) check(n, d);
  }
  // Powers of two and their neighbours up to 2^62, near multiples, and random operands.
  for (int k = 1; k <= 62; ++k) {
    for (u64 d : {(u64(1) << k) - 1, u64(1) << k, (u64(1) << k) + 1}) {
      for (u64 q : {u64(0), u64(1), u64(3), (~u64(0)) / d}) {
        for (u64 off : {u64(0), u64(1), d - 1}) {
          if (q * d / d == q && q * d + off >= q * d) check(q * d + off, d);
        }
      }
      for (int i = 0; i < 200; ++i) check(rng(), d);
    }
  }
  for (int i = 0; i < 200000; ++i) {
    const u64 d = (rng() >> (rng() % 63)) | 1;
    check(rng() >> (rng() % 64), d < (u64(1) << 63) ? d : d >> 1);
    check(rng() >> (rng() % 64), (rng() % 100000) + 1);
  }
}
