// kernels/iexp.h and kernels/ibert_softmax.h: known answers, sweeps against the definition and against exp,
// the bounds the header claims (e0 → 32767, out < 2^b_out) over the whole supported scale range.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/ibert_softmax.h"

using namespace mnq::kernels;

namespace {
// SPEC §2.1 i-exp written with plain integer divisions and multiplications, independent of the fast path.
i64 ibert_exp_def(i64 x, i64 x0, i64 b, i64 c, int n) {
  x = std::max(x, n * x0);
  const i64 z = floor_div(x, x0);
  const i64 r = x - x0 * z;
  const i64 p = (r + b) * r + c;
  return std::max<i64>(p * (i64(1) << (n - z)), 0);
}

// Scales spread log-uniformly over the supported range, about (1.8029e-5, 1.67096], both ends included.
std::vector<double> supported_scales() {
  std::vector<double> s;
  for (double v = 1.81e-5; v < 1.671; v *= 1.37) s.push_back(v);
  s.push_back(1.67096);
  return s;
}
}  // namespace

TEST_CASE("i-exp constants and known answers", "[iexp]") {
  const IbertExpConsts c = ibert_exp_consts(0.1, 30);
  REQUIRE(c.x0 == -7);   // floor(−6.931)
  REQUIRE(c.b == 27);    // floor(27.07)
  REQUIRE(c.c == 279);   // floor(279.2)
  REQUIRE(ibert_exp_max(c) == 279 * (i64(1) << 30));
  REQUIRE(ibert_exp(0, c) == 279 * (i64(1) << 30));
  REQUIRE(ibert_exp(-7, c) == 279 * (i64(1) << 29));   // z = 1, r = 0
  REQUIRE(ibert_exp(-3, c) == 207 * (i64(1) << 30));   // z = 0, r = −3: 24·(−3) + 279
  REQUIRE(ibert_exp(-10, c) == 207 * (i64(1) << 29));  // z = 1, r = −3
  REQUIRE(ibert_exp(-1000000, c) == ibert_exp(-210, c));  // clamped at n·x0
  // the scale range edges: c = 1 at the top, c just below 2^33 at the bottom
  REQUIRE(ibert_exp_consts(1.67096, 30).c == 1);
  REQUIRE(ibert_exp_c(1.6710) == 0.0);
  REQUIRE(ibert_exp_c(1.8029e-5) >= std::ldexp(1.0, 33));
  REQUIRE(ibert_exp_c(1.8030e-5) < std::ldexp(1.0, 33));
}

TEST_CASE("i-exp matches the SPEC definition on a sweep", "[iexp]") {
  for (double s : supported_scales()) {
    const IbertExpConsts c = ibert_exp_consts(s, 30);
    const i64 lo = 31 * c.x0 - 5;
    const i64 step = std::max<i64>(1, -lo / 20000);
    for (i64 x = lo; x <= 0; x += step) REQUIRE(ibert_exp(x, c) == ibert_exp_def(x, c.x0, c.b, c.c, 30));
    REQUIRE(ibert_exp(-(i64(1) << 33), c) == ibert_exp_def(-(i64(1) << 33), c.x0, c.b, c.c, 30));
  }
}

TEST_CASE("i-exp is positive, monotone, at most e0 and close to exp", "[iexp]") {
  for (double s : supported_scales()) {
    const IbertExpConsts c = ibert_exp_consts(s, 30);
    const i64 e0 = ibert_exp_max(c);
    REQUIRE(e0 > 0);
    REQUIRE(ibert_exp(0, c) == e0);
    i64 prev = 0;
    const i64 step = std::max<i64>(1, -30 * c.x0 / 5000);
    for (i64 x = 30 * c.x0; x <= 0; x += step) {
      const i64 e = ibert_exp(x, c);
      REQUIRE(e > 0);  // p > 0 on (x0, 0]: the mask of Log-Int-Softmax only comes from t ≥ 2^b
      REQUIRE(e >= prev);
      REQUIRE(e <= e0);
      prev = e;
    }
  }
  // Fine scale: the quadratic fit of e^r on (−ln2, 0] is within 0.5% of e0 (I-BERT reports ~1e−3 relative).
  const double s = 1e-3;
  const IbertExpConsts c = ibert_exp_consts(s, 30);
  for (i64 x = -5000; x <= 0; ++x) {
    const double approx = static_cast<double>(ibert_exp(x, c)) / static_cast<double>(ibert_exp_max(c));
    REQUIRE(std::fabs(approx - std::exp(static_cast<double>(x) * s)) < 5e-3);
  }
}

TEST_CASE("round_shr_u64 rounds half to even like common.h round_shr", "[ibert_softmax]") {
  u64 state = 0x243F6A8885A308D3ull;
  for (int i = 0; i < 200000; ++i) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    const u64 v = state >> (i % 64);
    const int k = 1 + i % 70;
    REQUIRE(static_cast<i128>(round_shr_u64(v, k)) == round_shr(static_cast<i128>(v), k));
  }
  REQUIRE(round_shr_u64(u64(1) << 63, 64) == 0);  // exactly 1/2: the even 0
  REQUIRE(round_shr_u64((u64(1) << 63) + 1, 64) == 1);
  REQUIRE(round_shr_u64(~u64(0), 65) == 0);
  REQUIRE(round_shr_u64(6, 2) == 2);  // 1.5 → 2
  REQUIRE(round_shr_u64(10, 2) == 2); // 2.5 → 2
}

TEST_CASE("the 16-bit requant equals SPEC's requant of the 2^63-sized exponential", "[ibert_softmax]") {
  // ibert_softmax_exp folds 2^(30 − z) into the rounding shift; SPEC computes requant(e, 32767/e0) on e itself.
  for (double s : supported_scales()) {
    const IbertSoftmaxConsts c = ibert_softmax_consts(s, 16);
    const i64 step = std::max<i64>(1, -31 * c.ex.x0 / 20000);
    for (i64 x = 31 * c.ex.x0; x <= 0; x += step) {
      const i64 want = std::min(requant128(ibert_exp(x, c.ex), c.to16), kIbertExpBits);
      REQUIRE(ibert_softmax_exp(x, c) == want);
    }
  }
}

TEST_CASE("the 16-bit requant maps e0 to 32767 and is monotone", "[ibert_softmax]") {
  for (double s : supported_scales()) {
    const IbertSoftmaxConsts c = ibert_softmax_consts(s, 16);
    REQUIRE(c.to16.k >= 46);  // 32767 / e0 < 2^−15: a right shift, as the header assumes
    REQUIRE(ibert_softmax_exp(0, c) == kIbertExpBits);
    i64 prev = 0;
    const i64 step = std::max<i64>(1, -30 * c.ex.x0 / 3000);
    for (i64 x = 31 * c.ex.x0; x <= 0; x += step) {
      const i64 e = ibert_softmax_exp(x, c);
      REQUIRE(e >= prev);
      // within one unit of the exact ratio 32767·e/e0
      const double want = 32767.0 * static_cast<double>(ibert_exp(x, c.ex)) / static_cast<double>(ibert_exp_max(c.ex));
      REQUIRE(std::fabs(static_cast<double>(e) - want) <= 1.0);
      prev = e;
    }
  }
}

TEST_CASE("ibert softmax output stays below 2^b_out", "[ibert_softmax]") {
  for (int b : {2, 8, 16}) {
    const IbertSoftmaxConsts c = ibert_softmax_consts(0.05, b);
    REQUIRE(c.out_shift == 32 - b);
    // a one-element row (s = e = 32767) is the largest output: e·f = 32767·floor(2^32/32767) < 2^32
    const i64 f = ibert_softmax_factor(kIbertExpBits);
    REQUIRE(ibert_softmax_out(kIbertExpBits, f, c) == (i64(1) << b) - 1);
    // a uniform row of 4 gives a quarter (floor)
    const i64 f4 = ibert_softmax_factor(4 * kIbertExpBits);
    REQUIRE(ibert_softmax_out(kIbertExpBits, f4, c) == (((i64(1) << 32) / (4 * kIbertExpBits)) * kIbertExpBits >> (32 - b)));
    REQUIRE(ibert_softmax_out(kIbertExpBits, f4, c) < (i64(1) << (b - 2)));
  }
}
