// kernels/layernorm_common.h: the affine output, the mean and centred sum of squares, rounding shifts, loaders.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "kernels/layernorm_common.h"

using namespace mnq::kernels;

TEST_CASE("ln_affine_out is floor(y·f/2) + bias for every f in [0, 2^31]", "[layernorm]") {
  const i64 fs[] = {0, 1, 2, 3, 7, 64, (i64(1) << 25) + 1, kInt31Max - 1, kInt31Max, i64(1) << 31};
  for (const i64 f : fs) {
    const LnFactor fac = ln_factor(f);
    for (i64 y = -300; y <= 300; ++y) {
      REQUIRE(ln_affine_out(static_cast<int32_t>(y), fac, 5) == floor_div(y * f, 2) + 5);
    }
    for (const i64 y : {-(i64(1) << 22), -(i64(1) << 22) + 1, (i64(1) << 22) - 1, i64(1) << 22}) {
      REQUIRE(ln_affine_out(static_cast<int32_t>(y), fac, -kLnMaxBiasInt) == floor_div(y * f, 2) - kLnMaxBiasInt);
    }
  }
}

TEST_CASE("ln_mean rounds half to even, also for negative sums", "[layernorm]") {
  REQUIRE(ln_mean(5, 2) == 2);    // 2.5
  REQUIRE(ln_mean(7, 2) == 4);    // 3.5
  REQUIRE(ln_mean(-5, 2) == -2);  // −2.5
  REQUIRE(ln_mean(-7, 2) == -4);  // −3.5
  REQUIRE(ln_mean(-8, 3) == -3);  // −2.67
  REQUIRE(ln_mean(0, 7) == 0);
}

TEST_CASE("ln_mean (64-bit) equals round_div (128-bit) on every sign, tie and extreme", "[layernorm]") {
  std::mt19937_64 rng(5);
  const i64 big = (i64(1) << 62) + 12345;
  for (const i64 cols : {i64(1), i64(2), i64(3), i64(7), i64(384), i64(65535), kLnMaxCols}) {
    std::vector<i64> sums = {0, 1, -1, cols / 2, -(cols / 2), cols, -cols, big, -big, kInt64Max, kInt64Min + 1};
    for (i64 k = -40; k <= 40; ++k) sums.push_back(k * cols + cols / 2);  // ties (even C) and their neighbours
    for (int t = 0; t < 2000; ++t) sums.push_back(static_cast<i64>(rng() >> (1 + rng() % 60)) * ((rng() & 1) ? 1 : -1));
    for (const i64 base : std::vector<i64>(sums)) {
      for (const i64 d : {i64(-1), i64(0), i64(1)}) {
        const i64 s = (base == kInt64Max && d == 1) || (base == kInt64Min + 1 && d == -1) ? base : base + d;
        INFO("sum " << s << " cols " << cols);
        REQUIRE(ln_mean(s, cols) == static_cast<i64>(round_div(s, cols)));
      }
    }
  }
}

TEST_CASE("ln_centered_sumsq equals the direct sum of squared deviations", "[layernorm]") {
  std::mt19937_64 rng(7);
  for (const i64 lim : {i64(3), i64(1) << 15, i64(1) << 21}) {
    std::uniform_int_distribution<i64> d(-lim, lim - 1);
    for (int trial = 0; trial < 200; ++trial) {
      const i64 cols = 1 + static_cast<i64>(rng() % 800);
      std::vector<i64> q(cols);
      i64 s = 0, ss = 0;
      for (auto& v : q) {
        v = d(rng);
        s += v;
        ss += v * v;
      }
      const i64 mean = ln_mean(s, cols);
      i64 direct = 0;
      for (const i64 v : q) direct += (v - mean) * (v - mean);
      REQUIRE(ln_centered_sumsq(s, ss, mean, cols) == direct);
    }
  }
}

TEST_CASE("round_shr64 matches the 128-bit round_shr", "[layernorm]") {
  std::mt19937_64 rng(11);
  for (int k = 0; k <= 40; ++k) {
    for (i64 a = -5000; a <= 5000; ++a) REQUIRE(round_shr64(a, k) == static_cast<i64>(round_shr(a, k)));
    for (int t = 0; t < 2000; ++t) {
      const i64 a = static_cast<i64>(rng() >> 2) * ((rng() & 1) ? 1 : -1);  // |a| < 2^62
      REQUIRE(round_shr64(a, k) == static_cast<i64>(round_shr(a, k)));
    }
  }
  REQUIRE(round_shr64(3, 1) == 2);    // 1.5 → 2
  REQUIRE(round_shr64(5, 1) == 2);    // 2.5 → 2
  REQUIRE(round_shr64(-3, 1) == -2);  // −1.5 → −2
  REQUIRE(round_shr64(-5, 1) == -2);  // −2.5 → −2
  REQUIRE(round_shr64(-5, 0) == -5);
}

TEST_CASE("bit_length", "[layernorm]") {
  REQUIRE(bit_length(u64(0)) == 0);
  REQUIRE(bit_length(u64(1)) == 1);
  REQUIRE(bit_length((u64(1) << 32) - 1) == 32);
  REQUIRE(bit_length(u64(1) << 32) == 33);
  REQUIRE(bit_length(~u64(0)) == 64);
}

TEST_CASE("loaders flag out-of-range codes and NaN and load them as 0", "[layernorm]") {
  const int32_t ints[] = {-5, 5, 6, -6};
  int bad = 0;
  const LnIntIn<int32_t> in{ints};
  REQUIRE(in.load(0, 0, -5, 5, bad) == -5);
  REQUIRE(in.load(1, 1, -5, 5, bad) == 5);
  REQUIRE(bad == 0);
  REQUIRE(in.load(2, 2, -5, 5, bad) == 0);
  REQUIRE(bad == 1);
  const int16_t shorts[] = {-32768, 32767};  // 16-bit codes are always inside a LayerNorm's declared range
  bad = 0;
  REQUIRE(LnIntIn<int16_t>{shorts}.load(0, 0, kLnInt16Lo, kLnInt16Hi, bad) == -32768);
  REQUIRE(bad == 0);
  const float xs[] = {0.25f, -2.5f, 1e30f, std::numeric_limits<float>::quiet_NaN()};
  bad = 0;
  const LnFloatIn fin{xs, 4.0};
  REQUIRE(fin.load(0, 0, -100, 100, bad) == 1);
  REQUIRE(fin.load(1, 1, -100, 100, bad) == -10);
  REQUIRE(bad == 0);
  REQUIRE(fin.load(2, 2, -100, 100, bad) == 0);
  REQUIRE(bad == 1);
  bad = 0;
  REQUIRE(fin.load(3, 3, -100, 100, bad) == 0);
  REQUIRE(bad == 1);
  const double inv[] = {1.0, 0.5};
  bad = 0;
  const float ys[] = {3.0f, 3.0f};
  const LnChannelFloatIn cin{ys, inv};
  REQUIRE(cin.load(0, 0, -100, 100, bad) == 3);
  REQUIRE(cin.load(1, 1, -100, 100, bad) == 2);  // rint(1.5) = 2 (half to even)
  REQUIRE(bad == 0);
}
