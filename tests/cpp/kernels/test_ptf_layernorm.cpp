// kernels/ptf_layernorm.h and ptf_layernorm_fast.h: the row statistics, the per-element float64 formula of
// FQ-ViT's PTF LayerNorm (SPEC §4.3), the host bound on B, and the certified division-free CPU path.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "kernels/ptf_layernorm_fast.h"

using namespace mnq::kernels;

namespace {
// One channel's parameters as a 1-column PtfParams (c = 0).
struct Channel {
  double cg, g, b;
  int32_t sh = 0;
  PtfParams params(i64 cols, double scale_next) const {
    return PtfParams{1, cols, kPtfLo, kPtfHi, &sh, &cg, &g, &b, scale_next};
  }
};

// SPEC §4.3 for one element, written with frexp/ldexp/floor/nearbyint and 128-bit rounding (independent of
// ptf_out's bit tricks).
i64 ptf_def(i64 x, i64 sx, double stdv, i64 cols, double g, double b, double sn) {
  const double a = (static_cast<double>(cols) * g) / (stdv * sn);
  int ex = 0;
  std::frexp(std::fabs(a), &ex);
  const int n = a == 0 ? 31 : std::min(31, std::max(0, 7 - (ex - 1)));
  const i64 m = static_cast<i64>(std::min(std::floor(std::ldexp(std::fabs(a), n)), 255.0));
  const i64 bb = static_cast<i64>(std::nearbyint(std::ldexp((b - (static_cast<double>(sx) * g) / stdv) / sn, n)));
  const i64 sg = a > 0 ? 1 : (a < 0 ? -1 : 0);
  return static_cast<i64>(round_shr(static_cast<i128>(sg * m * x + bb), n));
}
}  // namespace

TEST_CASE("floor_log2 is the frexp exponent minus one, subnormals included", "[ptf_layernorm]") {
  std::mt19937_64 rng(2);
  std::vector<double> vs = {1.0,
                            2.0,
                            0.5,
                            3.0,
                            255.99,
                            256.0,
                            std::nextafter(1.0, 0.0),
                            0x1p-1022,
                            std::nextafter(0x1p-1022, 0.0),
                            std::numeric_limits<double>::denorm_min(),
                            0x1.8p-1070,
                            std::numeric_limits<double>::max()};
  for (int t = 0; t < 100000; ++t) {
    u64 bits = rng() & ~(u64(1) << 63);
    double v;
    std::memcpy(&v, &bits, sizeof v);
    if (std::isfinite(v) && v > 0) vs.push_back(v);
  }
  for (const double v : vs) {
    int ex = 0;
    std::frexp(v, &ex);
    REQUIRE(floor_log2(v) == ex - 1);
  }
}

TEST_CASE("ptf_row: exact variance, std guard on a constant row", "[ptf_layernorm]") {
  // x = {2^18, −2^18} over C = 2^16: sx = 0, sxx = 2^52, var = 2^68, std = 2^34.
  const PtfRow r = ptf_row(0, i64(1) << 52, kLnMaxCols, 0.5);
  REQUIRE(r.stdv == 0x1p34);
  REQUIRE(r.den == 0x1p33);
  const PtfRow c = ptf_row(7 * 5, 7 * 25, 7, 0.1);  // constant row of 5s
  REQUIRE(c.stdv == 1.0);
  REQUIRE(c.sx == 35.0);
  const PtfRow s = ptf_row(1, 1, 2, 1.0);  // {1, 0}: var = 2·1 − 1 = 1
  REQUIRE(s.stdv == 1.0);
  const PtfRow t = ptf_row(3, 5, 2, 1.0);  // {1, 2}: var = 10 − 9 = 1
  REQUIRE(t.stdv == 1.0);
  const PtfRow u = ptf_row(0, 8, 2, 1.0);  // {2, −2}: var = 16, std = 4
  REQUIRE(u.stdv == 4.0);
}

TEST_CASE("ptf_out known answer", "[ptf_layernorm]") {
  // C = 2, row x = {3, −1}: sx = 2, sxx = 10, var = 2·10 − 4 = 16, std = 4. γ = 1, β = 0.25, S_next = 0.5.
  // A = 2/(4·0.5) = 1: N = 7, M = 128. B = round((0.25 − 2·1/4)/0.5·128) = −64.
  // out(3) = round((128·3 − 64)/128) = round(2.5) = 2; out(−1) = round(−192/128) = round(−1.5) = −2.
  const Channel ch{2.0, 1.0, 0.25};
  const PtfParams p = ch.params(2, 0.5);
  const PtfRow r = ptf_row(2, 10, 2, 0.5);
  REQUIRE(ptf_out(3, 0, r, p) == 2);
  REQUIRE(ptf_out(-1, 0, r, p) == -2);
  // Real value: γ·(x − μ)/σ + β with μ = 1, σ = 2: 1.25 → 2.5 codes and −0.75 → −1.5 codes (both ties).
}

TEST_CASE("ptf_out matches an independent frexp/ldexp formulation", "[ptf_layernorm]") {
  std::mt19937_64 rng(9);
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  for (int t = 0; t < 200000; ++t) {
    const i64 cols = 1 + static_cast<i64>(rng() % 1024);
    const double g = (u01(rng) < 0.5 ? -1 : 1) * std::ldexp(0.5 + u01(rng), static_cast<int>(rng() % 40) - 20);
    const double b = (u01(rng) - 0.5) * std::ldexp(1.0, static_cast<int>(rng() % 20) - 10);
    const double sn = std::ldexp(0.5 + u01(rng), static_cast<int>(rng() % 20) - 15);
    if (ptf_b_bound(std::fabs(b), std::fabs(g), cols, sn) > kPtfMaxB) continue;
    const i64 x = static_cast<i64>(rng() % (u64(1) << 19)) - (i64(1) << 18);
    const i64 sx = static_cast<i64>(rng() % static_cast<u64>(cols << 19)) - (cols << 18);  // |sx| ≤ C·2^18
    const double stdv = std::floor(std::ldexp(1.0 + u01(rng), static_cast<int>(rng() % 34)));
    const Channel ch{static_cast<double>(cols) * g, g, b};
    const PtfParams p = ch.params(cols, sn);
    const PtfRow r{static_cast<double>(sx), stdv, stdv * sn};
    REQUIRE(ptf_out(x, 0, r, p) == ptf_def(x, sx, stdv, cols, g, b, sn));
  }
}

TEST_CASE("B stays within the host bound on rows with a large mean and a tiny spread", "[ptf_layernorm]") {
  std::mt19937_64 rng(4);
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  for (int t = 0; t < 20000; ++t) {
    const i64 cols = 1 + static_cast<i64>(rng() % 4096);
    const i64 level = static_cast<i64>(rng() % (u64(1) << 19)) - (i64(1) << 18);  // every x at `level`, one off
    const i64 sx = level * cols + 1, sxx = level * level * cols + 2 * level + 1;
    const double g = (u01(rng) - 0.5) * std::ldexp(1.0, static_cast<int>(rng() % 12) - 6);
    const double b = (u01(rng) - 0.5) * 8.0;
    const double sn = std::ldexp(1.0, -static_cast<int>(rng() % 20));
    const double bound = ptf_b_bound(std::fabs(b), std::fabs(g), cols, sn);
    if (bound > kPtfMaxB) continue;
    const PtfRow r = ptf_row(sx, sxx, cols, sn);
    const double a = static_cast<double>(cols) * g / r.den;
    const int n = a == 0 ? 31 : std::min(31, std::max(0, 7 - floor_log2(std::fabs(a))));
    const double bb = std::nearbyint(std::ldexp((b - (r.sx * g) / r.stdv) / sn, n));
    REQUIRE(std::fabs(bb) <= bound);
  }
}

TEST_CASE("ptf_out_fast equals ptf_out whenever it certifies, and certifies almost always", "[ptf_layernorm]") {
  std::mt19937_64 rng(8);
  std::uniform_real_distribution<double> u01(0.0, 1.0);
  long certified = 0, total = 0, realistic_certified = 0, realistic_total = 0;
  for (int t = 0; t < 400000; ++t) {
    const i64 cols = 1 + static_cast<i64>(rng() % 1024);
    const bool realistic = t % 2 == 0;
    const double sign = u01(rng) < 0.5 ? -1 : 1;
    const double g =
        realistic ? 0.2 + 2 * u01(rng) : sign * std::ldexp(0.5 + u01(rng), static_cast<int>(rng() % 60) - 30);
    const double b = realistic ? u01(rng) - 0.5 : (u01(rng) - 0.5) * std::ldexp(1.0, static_cast<int>(rng() % 30) - 15);
    const double sn = realistic ? 0.01 + 0.1 * u01(rng) : std::ldexp(0.5 + u01(rng), static_cast<int>(rng() % 40) - 30);
    if (!ptf_fast_ok(sn) || ptf_b_bound(std::fabs(b), std::fabs(g), cols, sn) > kPtfMaxB) continue;
    const i64 x = static_cast<i64>(rng() % (u64(1) << 19)) - (i64(1) << 18);
    const i64 sx = static_cast<i64>(rng() % static_cast<u64>(cols << 19)) - (cols << 18);  // |sx| ≤ C·2^18
    const double stdv = std::floor(std::ldexp(1.0 + u01(rng), static_cast<int>(rng() % 34)));
    const Channel ch{static_cast<double>(cols) * g, g, b};
    const PtfParams p = ch.params(cols, sn);
    const PtfRow r{static_cast<double>(sx), stdv, stdv * sn};
    const PtfRowFast rf = ptf_row_fast(r, cols, 1.0 / sn, std::fabs(ch.cg));
    int exact = 0;
    const i64 fast = ptf_out_fast(static_cast<int32_t>(x), 0, rf, r.sx, p, exact);
    ++total;
    realistic_total += realistic;
    if (!exact) {
      ++certified;
      realistic_certified += realistic;
      REQUIRE(fast == ptf_out(x, 0, r, p));
    }
  }
  // ViT-like parameters certify (nearly) always; wide-range ones (|B| near 2^51, huge multipliers) fall back more.
  REQUIRE(realistic_certified > realistic_total - realistic_total / 10000);
  REQUIRE(certified > total / 2);
}

TEST_CASE("ptf_out_fast refuses exact ties and power-of-two multipliers", "[ptf_layernorm]") {
  // A = 1 exactly (z = 128, an integer): N and M sit on a breakpoint, so the fast path must not certify.
  const Channel ch{2.0, 1.0, 0.25};
  const PtfParams p = ch.params(2, 0.5);
  const PtfRow r = ptf_row(2, 10, 2, 0.5);
  const PtfRowFast rf = ptf_row_fast(r, 2, 2.0, 2.0);
  int exact = 0;
  ptf_out_fast(3, 0, rf, r.sx, p, exact);
  REQUIRE(exact == 1);
  // w = B exactly at a half-integer: A = 1.5 (z = 192), β chosen so w = 100.5.
  // A = C·γ/(std·S) = 2·0.75/(4·0.25) = 1.5 → N = 7; w = (β − sx·γ/std)/S·128 = (β − 0.375)·512 = 100.5.
  const Channel half{1.5, 0.75, 0.375 + 100.5 / 512.0};
  const PtfParams ph = half.params(2, 0.25);
  const PtfRow rh = ptf_row(2, 10, 2, 0.25);
  const PtfRowFast rfh = ptf_row_fast(rh, 2, 4.0, 1.5);
  exact = 0;
  ptf_out_fast(3, 0, rfh, rh.sx, ph, exact);
  REQUIRE(exact == 1);
  // A zero multiplier (γ = 0) and a NaN-free huge one are left to ptf_out too.
  const Channel zero{0.0, 0.0, 0.25};
  exact = 0;
  ptf_out_fast(3, 0, rf, r.sx, zero.params(2, 0.5), exact);
  REQUIRE(exact == 1);
}
