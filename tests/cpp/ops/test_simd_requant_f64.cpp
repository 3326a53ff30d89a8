// Requantization's float64 form (csrc/cpu/requant_f64_simd.h, and requant_f64_avx2.h on AVX2: one FMA per lane,
// M + requant(q, m, k) = fl64(q·md + M)) against the scalar definition, element by element, on every vector path
// this CPU has: int32 codes over the whole int32 range at the form's shift bound (k = 11, m = 2^31 − 1: |q·md| just
// below 2^51) and beyond it (k = 10: the int64 form), exact ties of q·m / 2^k, residual sums that pass both ends of
// a 32-bit clamp, the int32 sum's bound, every tail length of the masked last block (cols 1 to 33) with guard
// elements after the output, codes and fake-quant outputs, and MXCSR rounding modes other than to nearest (where
// AVX2's form must not apply).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>
#if defined(__x86_64__)
#include <xmmintrin.h>
#endif
#include <vector>

#include "csrc/cpu/isa.h"
#include "csrc/cpu/requant_simd.h"

using namespace mnq::kernels;
using mnq::ops::cpu::Isa;
namespace cpu = mnq::ops::cpu;

namespace {

// One int32 side of `cols` columns: shift k[c] = shift(c), multiplier m[c] = mant(c).
struct IntSide {
  std::vector<i64> m, k, hm1;
  std::vector<double> md;
  std::vector<int32_t> q;
  cpu::RequantSimdSide side() const {
    return cpu::RequantSimdSide{q.data(), nullptr, nullptr, nullptr, m.data(), k.data(), hm1.data(), md.data()};
  }
};

template <class Shift, class Mant>
IntSide make_side(int64_t cols, int64_t n, Shift shift, Mant mant, std::mt19937& rng) {
  IntSide d;
  for (int64_t c = 0; c < cols; ++c) {
    d.m.push_back(mant(c));
    d.k.push_back(shift(c));
    d.hm1.push_back((i64(1) << (d.k.back() - 1)) - 1);
    d.md.push_back(std::ldexp(static_cast<double>(d.m.back()), static_cast<int>(-d.k.back())));
  }
  const int32_t edges[] = {INT32_MIN, INT32_MIN + 1, -(1 << 22) - 1, -1, 0, 1, (1 << 22) + 1, INT32_MAX - 1, INT32_MAX};
  std::uniform_int_distribution<int32_t> any(INT32_MIN, INT32_MAX), small(-40000, 40000);
  for (int64_t i = 0; i < n; ++i) {
    const unsigned pick = rng() % 6;
    d.q.push_back(pick == 0 ? edges[rng() % 9] : (pick < 3 ? small(rng) : any(rng) >> (rng() % 31)));
  }
  return d;
}

struct Out {
  std::vector<int32_t> code;
  std::vector<float> fake;
  bool ok_code, ok_fake;
};

constexpr int64_t kGuard = 16;  // elements after the output that no path may write

Out run(Isa path, const IntSide& a, const IntSide* b, int64_t cols, int64_t rows, i64 lo, i64 hi) {
  const int64_t n = rows * cols;
  Out o{std::vector<int32_t>(n + kGuard, -7), std::vector<float>(n + kGuard, -7.0f), false, false};
  const cpu::RequantSimdSide sa = a.side();
  cpu::RequantSimdSide sb;
  if (b != nullptr) sb = b->side();
  const cpu::RequantSimdSide* id = b != nullptr ? &sb : nullptr;
  o.ok_code = cpu::requant_rows(path, sa, id, cols, 0, rows, lo, hi, 0.05, CodeOut{o.code.data()});
  o.ok_fake = cpu::requant_rows(path, sa, id, cols, 0, rows, lo, hi, 0.05, FakeOut{o.fake.data()});
  return o;
}

void require_paths(const IntSide& a, const IntSide* b, int64_t cols, int64_t rows) {
  const int64_t n = rows * cols;
  for (const int bits : {8, 32}) {
    const i64 lo = -(i64(1) << (bits - 1)), hi = (i64(1) << (bits - 1)) - 1;
    const Out want = run(Isa::kScalar, a, b, cols, rows, lo, hi);
    REQUIRE(want.ok_code);
    REQUIRE(want.ok_fake);
    for (const Isa path : {Isa::kAvx2, Isa::kAvx512}) {
      if (cpu::supported_isa() < path) continue;
      INFO("bits " << bits << " path " << cpu::isa_name(path));
      const Out got = run(path, a, b, cols, rows, lo, hi);
      REQUIRE(got.ok_code);
      REQUIRE(got.ok_fake);
      int64_t i = 0;
      while (i < n + kGuard && want.code[i] == got.code[i] &&
             std::memcmp(&want.fake[i], &got.fake[i], sizeof(float)) == 0) {
        ++i;
      }
      if (i < n + kGuard) {
        INFO("element " << i << " of " << n << " (+ guard): q " << (i < n ? a.q[i] : 0) << ", code " << want.code[i]
                        << " vs " << got.code[i] << ", fake " << want.fake[i] << " vs " << got.fake[i]);
        REQUIRE(i == n + kGuard);
      }
    }
  }
}

}  // namespace

TEST_CASE("requant float64 form: int32 codes at the shift bound, ties, tails", "[simd][quant]") {
  std::mt19937 rng(11);
  std::uniform_int_distribution<i64> mant(i64(1) << 30, (i64(1) << 31) - 1);
  const i64 m_max = (i64(1) << 31) - 1;
  // (shift of column c, multiplier of column c) for side a; side b takes the next entry.
  struct Case {
    const char* what;
    i64 (*shift)(int64_t);
    int mant_kind;  // 0: 2^31 − 1 (the largest |md|), 1: 2^30 (exact ties for k ≥ 31), 2: random, sign alternating
  };
  const Case cases[] = {
      {"k = 11, largest m", [](int64_t) { return i64(11); }, 0},
      {"k = 10: int64 form", [](int64_t) { return i64(10); }, 0},
      {"k = 31, ties", [](int64_t) { return i64(31); }, 1},
      {"k = 33, ties", [](int64_t) { return i64(33); }, 1},
      {"k = 62", [](int64_t) { return i64(62); }, 2},
      {"k in [11, 62] per column", [](int64_t c) { return 11 + (c * 5) % 52; }, 2},
      {"k in [10, 62] per column", [](int64_t c) { return 10 + (c * 5) % 53; }, 2},
  };
  for (const int64_t cols : {1, 2, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 384}) {
    const int64_t rows = cols == 384 ? 3 : std::max<int64_t>(3, 300 / cols), n = rows * cols;
    for (size_t ia = 0; ia < std::size(cases); ++ia) {
      const Case& ca = cases[ia];
      const Case& cb = cases[(ia + 1) % std::size(cases)];
      auto mant_of = [&](int kind) {
        return [&, kind](int64_t c) -> i64 {
          const i64 m = kind == 0 ? m_max : (kind == 1 ? (i64(1) << 30) : mant(rng));
          return c % 2 == 0 ? m : -m;
        };
      };
      const IntSide a = make_side(cols, n, ca.shift, mant_of(ca.mant_kind), rng);
      const IntSide b = make_side(cols, n, cb.shift, mant_of(cb.mant_kind), rng);
      INFO("cols " << cols << ", " << ca.what << " + " << cb.what);
      require_paths(a, nullptr, cols, rows);
      require_paths(a, &b, cols, rows);
    }
  }
}

TEST_CASE("requant float64 form: per-tensor multipliers and a residual sum beyond int32", "[simd][quant]") {
  // q·md up to ±2^51 on both sides (k = 11): the sum leaves int32 before the clamp (both ends, 8- and 32-bit) and
  // beyond 2^51 (inexact, and clamped), and equal codes with opposite multipliers cancel to exactly 0 (fake quant
  // stores +0.0). At k = 10 (the int64 form) |q·md| reaches 2^52, where M + q·md would round to halves: the
  // cancelling pairs would not sum to their exact (in-range) value.
  std::mt19937 rng(12);
  const int64_t cols = 40, rows = 4, n = rows * cols;
  const i64 m_max = (i64(1) << 31) - 1;
  for (const i64 k : {i64(11), i64(10)}) {
    auto shift = [k](int64_t) { return k; };
    IntSide a = make_side(cols, n, shift, [&](int64_t) { return m_max; }, rng);
    IntSide b = make_side(cols, n, shift, [&](int64_t c) { return c < 20 ? m_max : -m_max; }, rng);
    std::uniform_int_distribution<int32_t> big(1 << 30, INT32_MAX);
    for (int64_t i = 0; i < n; ++i) {
      if (i % 3 == 0) b.q[i] = a.q[i] = rng() % 2 ? big(rng) : -big(rng);
      if (i % 7 == 0) a.q[i] = b.q[i] = INT32_MIN;
      if (i % 11 == 0) a.q[i] = b.q[i] = INT32_MAX;
    }
    INFO("k " << k);
    require_paths(a, &b, cols, rows);
  }
}

TEST_CASE("requant float64 form: int32 sums of small multipliers, at the packed bound", "[simd][quant]") {
  // The codes' int32 sum (requant_f64_simd.h int_rows) applies while the two sides' largest |md| sum to at most 1/2:
  // md = 1/4 + 1/4 (k = 32, m = 2^30) and just below (m = 2^31 − 1, k = 33) with every code at an end of int32 on
  // both sides (sums of ±2^30), and md = 1/2 + 1/2 (k = 31), where the sums reach ±2^31 and must take the float64
  // clamp; ties of q·m / 2^k throughout, 8- and 32-bit outputs.
  std::mt19937 rng(13);
  const int64_t cols = 21, rows = 5, n = rows * cols;
  struct Case {
    i64 k, m;
  };
  for (const Case cs : {Case{32, i64(1) << 30}, Case{33, (i64(1) << 31) - 1}, Case{31, i64(1) << 30}}) {
    auto shift = [&](int64_t) { return cs.k; };
    auto mant = [&](int64_t c) { return c % 4 == 3 ? -cs.m : cs.m; };
    IntSide a = make_side(cols, n, shift, mant, rng);
    IntSide b = make_side(cols, n, shift, mant, rng);
    for (int64_t i = 0; i < n; i += 2) {
      const int32_t q = (i / 2) % 3 == 0 ? INT32_MIN : ((i / 2) % 3 == 1 ? INT32_MAX : INT32_MIN + 1);
      a.q[i] = b.q[i] = q;
    }
    INFO("k " << cs.k << " m " << cs.m);
    require_paths(a, &b, cols, rows);
    require_paths(a, nullptr, cols, rows);
  }
}

#if defined(__x86_64__)
TEST_CASE("requant float64 form: rounding to nearest whatever MXCSR says", "[simd][quant]") {
  // AVX-512 rounds its FMA to nearest by the instruction's own rounding; AVX2's FMA rounds as MXCSR says, so under
  // another rounding mode that path must take the int64 form. Ties (k = 31, m = 2^30) and large products (k = 11).
  std::mt19937 rng(14);
  const unsigned csr = _mm_getcsr();
  for (const unsigned mode : {0x2000u, 0x4000u, 0x6000u}) {  // down, up, toward zero
    for (const i64 k : {i64(31), i64(11)}) {
      auto shift = [k](int64_t) { return k; };
      auto mant = [k](int64_t c) {
        return k == 31 ? (c % 2 ? -(i64(1) << 30) : i64(1) << 30) : (i64(1) << 31) - 1 - c;
      };
      const IntSide a = make_side(19, 57, shift, mant, rng);
      const IntSide b = make_side(19, 57, shift, mant, rng);
      _mm_setcsr((csr & ~0x6000u) | mode);
      const Out want = run(Isa::kScalar, a, &b, 19, 3, INT32_MIN, INT32_MAX);
      std::vector<Out> got;
      for (const Isa path : {Isa::kAvx2, Isa::kAvx512}) {
        if (cpu::supported_isa() >= path) got.push_back(run(path, a, &b, 19, 3, INT32_MIN, INT32_MAX));
      }
      _mm_setcsr(csr);
      INFO("mode " << mode << " k " << k);
      for (const Out& g : got) REQUIRE(g.code == want.code);
    }
  }
}
#endif
