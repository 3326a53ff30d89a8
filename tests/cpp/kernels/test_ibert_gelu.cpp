// kernels/ibert_gelu.h: host constants and range, the element math against an independent 128-bit definition,
// known answers, and the approximation of GELU on accumulator-precision scales.
#include <catch2/catch.hpp>

#include <cmath>

#include "kernels/ibert_gelu.h"

using namespace mnq::kernels;

namespace {

// SPEC §3.1 written out with floor_div and 128-bit products, as an independent check of the kernel.
i128 ibert_gelu_def(i64 q, const IbertGeluConsts& k) {
  const i64 clipped = std::min<i64>(q < 0 ? -q : q, -k.b);
  const i128 poly = static_cast<i128>(clipped + k.b) * (clipped + k.b) + k.c;
  const i128 y = floor_div128((q > 0 ? 1 : (q < 0 ? -1 : 0)) * poly, i128(1) << kIbertGeluN);
  return static_cast<i128>(q) * (y + k.one);
}

double gelu(double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); }

}  // namespace

TEST_CASE("ibert_gelu host constants follow SPEC §3.1 in float64", "[ibert_gelu]") {
  for (double s : {1e-3, 3.3e-4, 1e-4, 2e-5, 1e-6, 0.03, 1.0}) {
    const IbertGeluScale r = ibert_gelu_consts(s);
    REQUIRE(r.ok);
    const double se = s / 1.4142;
    REQUIRE(r.k.b == static_cast<i64>(std::floor(-1.769 / se)));
    REQUIRE(r.k.c == static_cast<i64>(std::floor((1.0 / -0.2888) / (se * se))));
    const double unit = -0.2888 * (se * se) * 16384.0;
    REQUIRE(r.k.one == static_cast<i64>(std::floor(1.0 / unit)));
    REQUIRE(r.s_out == s * unit / 2.0);
    REQUIRE(r.s_out < 0);
    REQUIRE(r.k.b < 0);
    REQUIRE(r.k.c < 0);
    REQUIRE(r.k.one < 0);
  }
  // S = 1e-3 by hand: Se = 7.0711e-4, b = floor(−2501.7) = −2502, c = floor(−6925074.93) = −6925075
  const IbertGeluScale r = ibert_gelu_consts(1e-3);
  REQUIRE(r.k.b == -2502);
  REQUIRE(r.k.c == -6925075);
  REQUIRE(r.k.one == -423);  // 1 / (a·Se²·2^14) = −422.7
}

TEST_CASE("ibert_gelu scale range: overflow bound below, degenerate polynomial above", "[ibert_gelu]") {
  // Lower end: M = max|y + one| ≤ 2^32 − 1, so |q·(y + one)| < 2^63 for every int32 q.
  REQUIRE(ibert_gelu_consts(kIbertGeluScaleMin).ok);
  REQUIRE_FALSE(ibert_gelu_consts(4.4364e-7).ok);
  REQUIRE_FALSE(ibert_gelu_consts(1e-9).ok);
  REQUIRE_FALSE(ibert_gelu_consts(1e-200).ok);  // Se² underflows: rejected, never cast
  const IbertGeluScale lo = ibert_gelu_consts(kIbertGeluScaleMin);
  REQUIRE(ibert_gelu_max_factor(lo.k) <= 4294967295LL);
  REQUIRE(ibert_gelu_max_factor(lo.k) > 4294000000LL);  // the bound is tight there
  // Upper end: b ≤ −2 (at b = −1 every nonzero |q| clips).
  REQUIRE(ibert_gelu_consts(2.5017197).ok);
  REQUIRE(ibert_gelu_consts(2.5017197).k.b == -2);
  REQUIRE_FALSE(ibert_gelu_consts(kIbertGeluScaleMax).ok);
  REQUIRE_FALSE(ibert_gelu_consts(1e300).ok);
}

TEST_CASE("ibert_gelu equals the 128-bit definition, also at the int32 extremes", "[ibert_gelu]") {
  for (double s : {kIbertGeluScaleMin, 1e-6, 1e-4, 1e-3, 0.035, 2.5}) {
    const IbertGeluConsts k = ibert_gelu_consts(s).k;
    const i64 edge = -k.b;
    for (i64 q = -3 * std::min<i64>(edge, 5000); q <= 3 * std::min<i64>(edge, 5000); ++q) {
      REQUIRE(static_cast<i128>(ibert_gelu(q, k.b, k.c, k.one)) == ibert_gelu_def(q, k));
    }
    for (i64 q : {edge - 1, edge, edge + 1, -edge - 1, -edge, -edge + 1, i64(INT32_MAX), i64(INT32_MIN),
                  i64(INT32_MAX) - 1, i64(INT32_MIN) + 1}) {
      const i128 want = ibert_gelu_def(q, k);
      REQUIRE(want < (i128(1) << 63));
      REQUIRE(want >= -(i128(1) << 63));
      REQUIRE(static_cast<i128>(ibert_gelu(q, k.b, k.c, k.one)) == want);
    }
  }
}

TEST_CASE("ibert_gelu known answers", "[ibert_gelu]") {
  const IbertGeluConsts k = ibert_gelu_consts(1e-3).k;  // b = −2502, c = −6925075, one = −423
  REQUIRE(ibert_gelu(0, k.b, k.c, k.one) == 0);
  // q = 1000 (x = 1): t = 1000 − 2502 = −1502, p = 1502² + c = −4669071, y = floor(−4669071 / 2^14) = −285
  REQUIRE(ibert_gelu(1000, k.b, k.c, k.one) == 1000 * (-285 - 423));
  // q = −1000: y = floor(4669071 / 2^14) = 284
  REQUIRE(ibert_gelu(-1000, k.b, k.c, k.one) == -1000 * (284 - 423));
  // beyond the clip point y is ±floor(c/2^14): x·(1 ± 1)
  REQUIRE(ibert_gelu(5000, k.b, k.c, k.one) == 5000 * (-423 - 423));
  REQUIRE(ibert_gelu(-5000, k.b, k.c, k.one) == -5000 * (422 - 423));
}

TEST_CASE("ibert_gelu approximates GELU on accumulator scales", "[ibert_gelu]") {
  // I-BERT's erf polynomial alone is off by up to ~1.8e-2 in GELU; the integer version adds the rounding of `one`
  // (relative 1/|one|, |one| ≥ 423 here) and of y. Measured max |error| on [−6, 6]: 0.0218 at S = 1e-3, 0.0182 at
  // 1e-4 and 1e-5 (and 11.4 at the 8-bit scale 0.035: SPEC's "badly conditioned", tested in Python).
  for (double s : {1e-3, 1e-4, 1e-5}) {
    const IbertGeluScale r = ibert_gelu_consts(s);
    double worst = 0;
    for (double x = -6.0; x <= 6.0; x += 1e-3) {
      const i64 q = static_cast<i64>(std::nearbyint(x / s));
      const double got = static_cast<double>(ibert_gelu(q, r.k.b, r.k.c, r.k.one)) * r.s_out;
      worst = std::max(worst, std::fabs(got - gelu(static_cast<double>(q) * s)));
    }
    INFO("scale " << s << " max |error| " << worst);
    REQUIRE(worst < 0.025);
  }
}
