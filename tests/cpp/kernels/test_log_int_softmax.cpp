// kernels/log_int_softmax.h: the division-free exponent search against SPEC §2.3's definition (v = round(s/e)
// by a 128-bit division, then the linear nearest power of two), exhaustively on small values and on random
// 128-bit sums, plus the rounding ties and the mask.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>

#include "kernels/log_int_softmax.h"

using namespace mnq::kernels;

namespace {
// SPEC §2.3 word for word: v = round(s / e), t = floor(log2 v), t += 1 when v − 2^t ≥ 2^(t−1).
int spec_t(u128 s, i64 e) {
  const i128 v = round_div(static_cast<i128>(s), e);
  int t = 0;
  while ((v >> (t + 1)) != 0) ++t;
  if (2 * (v - (static_cast<i128>(1) << t)) >= (static_cast<i128>(1) << t)) ++t;
  return t;
}

// xorshift64*: a fixed, portable stream of test values.
struct Rng {
  u64 state = 0x9E3779B97F4A7C15ull;
  u64 next() {
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return state * 2685821657736338717ull;
  }
};
}  // namespace

TEST_CASE("bit lengths", "[log_int_softmax]") {
  REQUIRE(bit_length(u64(0)) == 0);
  REQUIRE(bit_length(u64(1)) == 1);
  REQUIRE(bit_length(~u64(0)) == 64);
  REQUIRE(bit_length(u128(0)) == 0);
  REQUIRE(bit_length(u128(1) << 100) == 101);
  REQUIRE(bit_length((u128(1) << 64) - 1) == 64);
}

TEST_CASE("exponent known answers at the rounding ties", "[log_int_softmax]") {
  REQUIRE(lis_exponent(1, 1) == 0);   // v = 1
  REQUIRE(lis_exponent(3, 2) == 1);   // 1.5 → 2
  REQUIRE(lis_exponent(5, 2) == 1);   // 2.5 → 2 (half to even)
  REQUIRE(lis_exponent(6, 2) == 2);   // v = 3 = 2 + 1: rounds up to 4
  REQUIRE(lis_exponent(7, 2) == 2);   // 3.5 → 4
  REQUIRE(lis_exponent(11, 2) == 3);  // 5.5 → 6 = 4 + 2: rounds up to 8
  REQUIRE(lis_exponent(9, 2) == 2);   // 4.5 → 4
  REQUIRE(lis_exponent(u128(1) << 125, 1) == 125);
  REQUIRE(lis_exponent(3 * (u128(1) << 124), 1) == 126);
}

TEST_CASE("exponent equals the SPEC definition on all small pairs", "[log_int_softmax]") {
  for (i64 e = 1; e <= 300; ++e) {
    for (u128 s = static_cast<u128>(e); s <= 4000; ++s) {
      const int t = spec_t(s, e);
      REQUIRE(lis_exponent(s, e) == t);
      REQUIRE(lis_exponent_word<u128>(s, static_cast<u128>(e)) == t);
    }
  }
}

TEST_CASE("the 64-bit and 128-bit words agree below 2^61", "[log_int_softmax]") {
  Rng rng;
  for (int i = 0; i < 100000; ++i) {
    const u64 s = 1 + rng.next() % ((u64(1) << 61) - 1);
    const u64 e = 1 + rng.next() % std::min<u64>(s, u64(1) << (1 + rng.next() % 61));
    const int t = spec_t(s, static_cast<i64>(e));
    REQUIRE(lis_exponent_word<u64>(s, e) == t);
    REQUIRE(lis_exponent_word<u128>(s, e) == t);
  }
  const u64 top = (u64(1) << 61) - 1;  // the largest 64-bit sum, with e at both ends
  for (u64 e : {u64(1), u64(2), u64(3), top / 5, top / 3, top / 2, top})
    REQUIRE(lis_exponent_word<u64>(top, e) == spec_t(top, static_cast<i64>(e)));
}

TEST_CASE("exponent equals the SPEC definition on random 128-bit sums", "[log_int_softmax]") {
  Rng rng;
  for (int i = 0; i < 200000; ++i) {
    const int eb = 1 + static_cast<int>(rng.next() % 63);  // e < 2^eb ≤ 2^63
    const i64 e = static_cast<i64>(1 + rng.next() % ((u64(1) << eb) - 1));
    const int sb = static_cast<int>(rng.next() % 62);      // s = e·(1 + 2^sb-ish spread) + noise
    u128 s = static_cast<u128>(e) * (1 + (rng.next() >> (63 - sb))) + rng.next() % static_cast<u64>(e);
    if (s >= (u128(1) << 125)) s = (u128(1) << 125) + rng.next();
    REQUIRE(lis_exponent(s, e) == spec_t(s, e));
  }
  // s/e = K_j − 1/2 exactly (a tie of the rounding) and its neighbours s ± 3, at large magnitudes
  for (int j = 3; j < 60; ++j) {
    for (i64 e : {i64(2), i64(6), (i64(1) << 40) + 2, (i64(1) << 62) - 2}) {
      const u128 k = 3 * (u128(1) << (j - 2));
      for (i64 d = -3; d <= 3; ++d) {
        const u128 s = static_cast<u128>(static_cast<i128>(k * static_cast<u128>(e)) - e / 2 + d);
        REQUIRE(lis_exponent(s, e) == spec_t(s, e));
      }
    }
  }
}

TEST_CASE("codes saturate at 2^b − 1 with the mask set from t ≥ 2^b", "[log_int_softmax]") {
  const LogIntSoftmaxConsts c4{ibert_exp_consts(0.1, 30), 4};
  const LisCode zero = lis_code(100, 0, c4);
  REQUIRE(zero.code == 15);
  REQUIRE(zero.masked);
  const LisCode one = lis_code(1, 1, c4);
  REQUIRE((one.code == 0 && !one.masked));
  const LisCode t15 = lis_code(u128(1) << 15, 1, c4);
  REQUIRE((t15.code == 15 && !t15.masked));
  const LisCode t16 = lis_code(u128(1) << 16, 1, c4);
  REQUIRE((t16.code == 15 && t16.masked));
  const LogIntSoftmaxConsts c8{ibert_exp_consts(0.1, 30), 8};
  const LisCode big = lis_code(u128(1) << 125, 1, c8);  // t = 125 < 255: representable in 8 bits
  REQUIRE((big.code == 125 && !big.masked));
}

TEST_CASE("QAT values are 2^-code rounded to float32", "[log_int_softmax]") {
  for (int k = 0; k <= 255; ++k) REQUIRE(pow2_neg_f32(k) == static_cast<float>(std::ldexp(1.0, -k)));
  REQUIRE(pow2_neg_f32(149) > 0.0f);
  REQUIRE(pow2_neg_f32(150) == 0.0f);
}

TEST_CASE("branch-free 64-bit code test equals lis_exponent", "[log_int_softmax]") {
  std::mt19937_64 rng(7);
  for (u64 e = 1; e <= 300; ++e) {
    for (u64 s = e; s <= 4000; ++s) REQUIRE(lis_exponent_u64(s, bit_length(s), e) == lis_exponent(s, static_cast<i64>(e)));
  }
  for (int i = 0; i < 200000; ++i) {
    const u64 s = (rng() >> 3) | 1;  // < 2^61
    const u64 e = 1 + rng() % s;
    REQUIRE(lis_exponent_u64(s, bit_length(s), e) == lis_exponent(s, static_cast<i64>(e)));
  }
  const u64 s = (u64(1) << 61) - 1;
  REQUIRE(lis_exponent_u64(s, bit_length(s), 1) == lis_exponent(s, 1));
}

TEST_CASE("branch-free code from t equals lis_code", "[log_int_softmax]") {
  for (int bits = 2; bits <= 8; ++bits) {
    const LogIntSoftmaxConsts c{ibert_exp_consts(0.1, 30), bits};
    for (int t = 0; t <= 126; ++t) {
      const u128 s = u128(1) << t;  // e = 1: v = 2^t, exponent t
      const LisCode want = lis_code(s, 1, c);
      const LisCode got = lis_code_from_t(t, 0, c);
      REQUIRE((got.code == want.code && got.masked == want.masked));
      const LisCode zero = lis_code_from_t(t, 1, c);  // e = 0: t is whatever the exponent loop left there
      const LisCode want0 = lis_code(s, 0, c);
      REQUIRE((zero.code == want0.code && zero.masked == want0.masked));
    }
  }
}
