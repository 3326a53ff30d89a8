// Requantization's vector paths (csrc/cpu/requant_simd.cpp, requant_f64_simd.h, requant_f32_simd.h) against the
// scalar definition (kernels/quant.h requant_code), element by element, on every path this CPU has: int32 and float
// input, every shift, ties of q·m / 2^k, near-ties of x / S (float32's and float64's certification), codes past
// float32's and int32's range, NaN and ±inf, with and without the residual, codes and fake-quant outputs.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "csrc/cpu/isa.h"
#include "csrc/cpu/quant_simd.h"
#include "csrc/cpu/requant_simd.h"
#include "tests/cpp/ops/simd_test_util.h"

using namespace mnq::kernels;
using mnq::ops::cpu::Isa;
namespace cpu = mnq::ops::cpu;
using simd_test::QuantRun;
using simd_test::require_same;
using simd_test::same_bits;
using simd_test::vector_paths;

namespace {

// One requant input of `cols` columns with rows·cols codes (simd_test::SideData): int32 codes or float values
// x = fl32(q·S), q drawn to hit both ends of int32, zero, ties of q·m / 2^k (small k, a power-of-two m) and near-ties
// of x / S.
using simd_test::SideData;

// `narrow`: codes within 2^22 (2^17 for float input, the float32 step's range) but for a few at ±(2^22 + 1), so
// most 16-column blocks take the AVX-512 float64 form and some fall back to the int64 form.
SideData make_side(int64_t cols, int64_t n, bool is_float, i64 shift, std::mt19937& rng, bool narrow = false) {
  SideData d;
  std::uniform_int_distribution<int32_t> any(INT32_MIN, INT32_MAX), small(-300, 300);
  std::uniform_int_distribution<i64> mant(i64(1) << 30, (i64(1) << 31) - 1);
  for (int64_t c = 0; c < cols; ++c) {
    const i64 m = c % 3 == 0 ? (i64(1) << 30) : mant(rng);  // 2^30: exact ties for small shifts
    d.m.push_back(c % 2 == 0 ? m : -m);
    d.k.push_back(shift > 0 ? shift : 1 + (c * 7) % 62);  // shift 0: every k in [1, 62] across the columns
    d.hm1.push_back((i64(1) << (d.k.back() - 1)) - 1);
    d.md.push_back(std::ldexp(static_cast<double>(d.m.back()), static_cast<int>(-d.k.back())));
    d.s.push_back((c % 2 == 0 ? 1.0 : -1.0) * std::ldexp(6.0 / 32767, static_cast<int>(c % 5)) * (1 + 0.1 * c));
    d.r.push_back(1.0 / d.s.back());
  }
  const int32_t edges[] = {INT32_MIN, INT32_MIN + 1, -1, 0, 1, INT32_MAX - 1, INT32_MAX};
  for (int64_t i = 0; i < n; ++i) {
    const int pick = static_cast<int>(rng() % 8);
    int32_t q = pick == 0 ? edges[rng() % 7] : (pick < 4 ? small(rng) : any(rng) >> (rng() % 31));
    if (narrow) {
      const int32_t lim = is_float ? (1 << 17) : (1 << 22);
      const int32_t narrow_edges[] = {-(1 << 22) - 1, -(1 << 22), -lim, -1, 0, 1, lim, (1 << 22), (1 << 22) + 1};
      q = rng() % 64 == 0 ? narrow_edges[rng() % 9]
                          : (pick < 4 ? small(rng) : std::uniform_int_distribution<int32_t>(-lim, lim)(rng));
    }
    d.q.push_back(q);
    if (is_float) {
      const double s = d.s[i % cols];
      float x = static_cast<float>((q + (pick % 2 == 0 ? 0.5 : 0.0)) * s);
      for (int u = static_cast<int>(rng() % 5); u > 0; --u) x = std::nextafter(x, rng() % 2 ? INFINITY : -INFINITY);
      d.x.push_back(x);
    }
  }
  if (is_float && n > 4) {
    d.x[1] = std::nanf("");
    d.x[2] = std::numeric_limits<float>::infinity();
    d.x[3] = -3e38f;
  }
  return d;
}

// rows × cols through every vector path against the scalar one, codes and fake quant, 8- and 32-bit outputs.
void require_requant_paths(const cpu::RequantSimdSide& sa, const cpu::RequantSimdSide* id, int64_t cols,
                           int64_t rows) {
  const int64_t n = rows * cols;
  for (const int bits : {8, 32}) {
    const i64 lo = -(i64(1) << (bits - 1)), hi = (i64(1) << (bits - 1)) - 1;
    auto run = [&](Isa path) {
      QuantRun o{std::vector<int32_t>(n, -7), std::vector<float>(n, -7.0f), 0, 0};
      o.bad_code = !cpu::requant_rows(path, sa, id, cols, 0, rows, lo, hi, 0.05, CodeOut{o.code.data()});
      o.bad_fake = !cpu::requant_rows(path, sa, id, cols, 0, rows, lo, hi, 0.05, FakeOut{o.fake.data()});
      return o;
    };
    const QuantRun want = run(Isa::kScalar);
    for (const Isa path : vector_paths()) {
      INFO("bits " << bits << " path " << cpu::isa_name(path));
      require_same(want, run(path));
    }
  }
}

}  // namespace

TEST_CASE("requant vector paths equal the scalar definition", "[simd][quant]") {
  std::mt19937 rng(3);
  for (const int64_t cols : {1, 3, 4, 5, 8, 9, 16, 17, 197}) {
    const int64_t rows = std::max<int64_t>(2, 1200 / cols), n = rows * cols;
    for (const i64 shift : {i64(1), i64(2), i64(5), i64(31), i64(39), i64(62), i64(0)}) {
      for (const int residual : {0, 1, 2}) {  // none, int32 identity, float identity
        for (const bool is_float : {false, true}) {
          const SideData a = make_side(cols, n, is_float, shift, rng);
          const SideData b = make_side(cols, n, residual == 2, shift == 0 ? 0 : 1 + shift / 2, rng);
          const cpu::RequantSimdSide sa = a.side(), sb = b.side();
          const cpu::RequantSimdSide* id = residual == 0 ? nullptr : &sb;
          INFO("cols " << cols << " shift " << shift << " residual " << residual << " float " << is_float);
          require_requant_paths(sa, id, cols, rows);
        }
      }
    }
  }
}

// One row of `cols` float inputs x[c % 4] (negated in the upper half of each 8 columns) on scales s[c % 4], with
// m = 2^30 and shift k (so the requantized code shows the recovered code), through every path against the scalar
// one; with the residual (the same side again) when `residual`.
void require_near_ties(const double (&sv)[4], const float (&xv)[4], int64_t cols, i64 k, bool residual) {
  SideData d;
  for (int64_t c = 0; c < cols; ++c) {
    d.s.push_back(sv[c % 4]);
    d.r.push_back(1.0 / sv[c % 4]);
    d.m.push_back(i64(1) << 30);
    d.k.push_back(k);
    d.hm1.push_back((i64(1) << (k - 1)) - 1);
    d.md.push_back(std::ldexp(static_cast<double>(d.m.back()), static_cast<int>(-k)));
    d.x.push_back(c % 8 < 4 ? xv[c % 4] : -xv[c % 4]);
  }
  const cpu::RequantSimdSide side = d.side();
  const cpu::RequantSimdSide* id = residual ? &side : nullptr;
  auto run = [&](Isa path) {
    QuantRun o{std::vector<int32_t>(cols, -7), std::vector<float>(cols, -7.0f), 0, 0};
    o.bad_code = !cpu::requant_rows(path, side, id, cols, 0, 1, INT32_MIN, INT32_MAX, 1.0, CodeOut{o.code.data()});
    o.bad_fake = !cpu::requant_rows(path, side, id, cols, 0, 1, INT32_MIN, INT32_MAX, 1.0, FakeOut{o.fake.data()});
    return o;
  };
  const QuantRun want = run(Isa::kScalar);
  for (const Isa path : vector_paths()) {
    INFO("path " << cpu::isa_name(path));
    require_same(want, run(path));
  }
}

TEST_CASE("requant's float64 form (codes within 2^22) equals the scalar definition", "[simd][quant]") {
  // Rows of 16-column blocks mostly within 2^22 (some with a ±(2^22 + 1) code: the int64 form), every shift, ties
  // (m = 2^30), products rounding to −0 (fake quant must store +0), with and without a residual.
  std::mt19937 rng(5);
  for (const int64_t cols : {16, 33, 384}) {
    const int64_t rows = std::max<int64_t>(2, 4000 / cols), n = rows * cols;
    for (const i64 shift : {i64(1), i64(31), i64(39), i64(62), i64(0)}) {
      for (const int residual : {0, 1, 2}) {
        for (const bool is_float : {false, true}) {
          const SideData a = make_side(cols, n, is_float, shift, rng, true);
          const SideData b = make_side(cols, n, residual == 2, shift == 0 ? 0 : 1 + shift / 2, rng, true);
          const cpu::RequantSimdSide sa = a.side(), sb = b.side();
          const cpu::RequantSimdSide* id = residual == 0 ? nullptr : &sb;
          INFO("cols " << cols << " shift " << shift << " residual " << residual << " float " << is_float);
          require_requant_paths(sa, id, cols, rows);
        }
      }
    }
  }
}

TEST_CASE("requant's float64 form stops at codes of 2^22", "[simd][quant]") {
  // q = ±(2^22 + 1), m = 2^31 − 1, k = 23: q·m = ±(2^53 + 2^31 − 2^22 − 1) is odd above 2^53, so fl64(q·m/2^k)
  // is off by one unit of q·m, turning the fraction 1/2 − 2^−23 into an exact tie that rounds the other way. A
  // block holding such a code must take the int64 form; the same block with ±2^22 (exact) may take float64.
  for (const int32_t q : {(1 << 22) + 1, -(1 << 22) - 1, 1 << 22, -(1 << 22)}) {
    SideData d;
    for (int64_t c = 0; c < 16; ++c) {
      d.m.push_back((i64(1) << 31) - 1);
      d.k.push_back(23);
      d.hm1.push_back((i64(1) << 22) - 1);
      d.md.push_back(std::ldexp(static_cast<double>(d.m.back()), -23));
      d.q.push_back(c == 0 ? q : 5);
    }
    const cpu::RequantSimdSide side = d.side();
    INFO("q " << q);
    require_requant_paths(side, nullptr, 16, 1);
  }
}

TEST_CASE("requant float near-ties take the scalar definition", "[simd][quant]") {
  // x / S within a few float64 ulps of a half-integer, where fl64(x · fl64(1/S)) and fl64(x / S) round to different
  // codes (found by search): only the certification's relative margin sends them to the scalar definition.
  const double sv[] = {4.333735533774998e-07, 3.028084159024569e-07, 3.47705275737064e-06, 1.1052897560800748e-06};
  const float xv[] = {268.6676940917969f, 544.6553344726562f, 816.1744995117188f, 708.49609375f};
  require_near_ties(sv, xv, 8, 31, false);
}

TEST_CASE("requant float32 near-ties take the float64 form", "[simd][quant]") {
  // |p| < 2^18 where fl32(x · fl32(1/S)) and fl64(x / S) round to different codes (found by search): the AVX-512
  // path's float32 step must not certify them. 16 columns, so one 16-lane vector holds only such lanes.
  const double sv[] = {1.3753574442057561e-05, 0.0008044140991507267, 0.0008408767678346887, 0.00014628282563367524};
  const float xv[] = {3.4496233463287354f, 204.45350646972656f, 216.64895629882812f, 19.119384765625f};
  require_near_ties(sv, xv, 16, 30, true);
}

namespace {

// A QAT requant input: x = fl32(q·S) for codes q mostly within 2^12 (the float32 form's range), per-column scales
// and multipliers m·2^−k with k in [11, 62]. Special columns: m = 2^31 − 1, k = 32 (md = 1/2 − 2^−32, whose float32
// is 1/2: odd codes give an exact float32 tie while the exact product lies just below it), and k = 11 with the
// largest m (md just below 2^20: requants beyond 2^20 for codes above 1), and md = 1. Rare lanes hold NaN, ±inf, a
// code of 2^19, a code near int32's ends or a near-tie of x / S, sending their block to the float64 / int64 forms.
SideData make_qat_side(int64_t cols, int64_t n, bool per_tensor, std::mt19937& rng) {
  SideData d;
  std::uniform_int_distribution<i64> mant(i64(1) << 20, (i64(1) << 31) - 1);
  std::uniform_int_distribution<int> shift(24, 40);
  const i64 m0 = mant(rng), k0 = shift(rng);
  for (int64_t c = 0; c < cols; ++c) {
    i64 m = per_tensor ? m0 : mant(rng), k = per_tensor ? k0 : shift(rng);
    if (!per_tensor && c % 16 == 5) m = (i64(1) << 31) - 1, k = 32;
    if (!per_tensor && c % 64 == 9) m = (i64(1) << 31) - 1, k = 11;
    if (!per_tensor && c % 16 == 7) m = i64(1) << 30, k = 30;  // md = 1: a code off by one shows in the output
    d.m.push_back(m);
    d.k.push_back(k);
    d.hm1.push_back((i64(1) << (k - 1)) - 1);
    d.md.push_back(std::ldexp(static_cast<double>(m), static_cast<int>(-k)));
    d.s.push_back(std::ldexp(6.0 / 32767, static_cast<int>(c % 5)) * (1 + 0.01 * (per_tensor ? 0 : c)));
    d.r.push_back(1.0 / d.s.back());
  }
  std::normal_distribution<double> g(0.0, 900.0);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t c = i % cols;
    const double q = std::round(g(rng));
    d.q.push_back(static_cast<int32_t>(q));
    d.x.push_back(static_cast<float>(q * d.s[c]));
    const unsigned pick = rng() % 512;
    if (pick == 0) d.x.back() = std::nanf("");
    if (pick == 1) d.x.back() = (rng() % 2 ? 1 : -1) * std::numeric_limits<float>::infinity();
    if (pick == 2) d.x.back() = static_cast<float>((1 << 19) * d.s[c]);
    if (pick == 3) d.x.back() = static_cast<float>(-2147483000.0 * d.s[c]);
    if (pick >= 4 && pick < 24) {  // near-ties of small codes: (q + 1/2)·S, then 0..2 ulps either way
      float x = static_cast<float>((static_cast<double>(static_cast<int>(rng() % 201) - 100) + 0.5) * d.s[c]);
      for (int u = static_cast<int>(rng() % 5) - 2; u != 0; u += u > 0 ? -1 : 1) {
        x = std::nextafter(x, u > 0 ? INFINITY : -INFINITY);
      }
      d.x.back() = x;
    }
  }
  return d;
}

}  // namespace

TEST_CASE("requant's float32 fake-quant form equals the scalar definition", "[simd][quant]") {
  // 8-bit outputs on scales fake_store32 certifies (the form applies) and on one it rejects (float64 stores).
  std::mt19937 rng(17);
  for (const int64_t cols : {16, 33, 197, 384}) {
    const int64_t rows = std::max<int64_t>(2, 6000 / cols), n = rows * cols;
    for (const bool per_tensor : {true, false}) {
      for (const bool residual : {false, true}) {
        const SideData a = make_qat_side(cols, n, per_tensor, rng), b = make_qat_side(cols, n, per_tensor, rng);
        const cpu::RequantSimdSide sa = a.side(), sb = b.side();
        for (const double out_scale : {0.05, 6.0 / 127, 0.064913024504979336}) {
          for (const int bits : {4, 8}) {
            const i64 lo = -(i64(1) << (bits - 1)), hi = (i64(1) << (bits - 1)) - 1;
            INFO("cols " << cols << " per_tensor " << per_tensor << " residual " << residual << " S_out "
                         << out_scale << " bits " << bits);
            simd_test::require_same_fake(sa, residual ? &sb : nullptr, cols, rows, lo, hi, out_scale);
          }
        }
      }
    }
  }
}

TEST_CASE("requant float64 codes: near-ties of x / S beyond float32's range", "[simd][quant]") {
  // Codes past float32_codes' 2^19 (float64_codes certifies them) where p = fl64(x·fl64(1/S)) and the definition's
  // fl64(x / S) round to different codes: S = fl64(x / (q + 1/2)) puts x / S within a few ulps of the half-integer,
  // and a search finds such (x, S) pairs; only the float64 margin sends them to the division. 16 columns (whole
  // blocks of such lanes), with and without the residual (md = 1: the code shows).
  std::mt19937 rng(23);
  std::uniform_int_distribution<int32_t> code((1 << 19) + 1, (1 << 21));
  std::uniform_real_distribution<float> val(1.0f, 2.0f);
  double sv[4];
  float xv[4];
  for (int c = 0; c < 4; ++c) {
    bool found = false;
    for (int t = 0; t < 100000 && !found; ++t) {
      const int32_t q = code(rng);
      const float x = val(rng);
      const double s = static_cast<double>(x) / (q + 0.5);
      if (std::rint(static_cast<double>(x) / s) != std::rint(static_cast<double>(x) * (1.0 / s))) {
        sv[c] = s;
        xv[c] = x;
        found = true;
      }
    }
    REQUIRE(found);
  }
  require_near_ties(sv, xv, 16, 30, false);
  require_near_ties(sv, xv, 16, 30, true);
}
