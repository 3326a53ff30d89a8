// Helpers of the CPU vector-path tests (test_simd.cpp: quantize; test_simd_requant*.cpp: requant): the paths this
// CPU has, a requant input's arrays, bitwise float equality, and the element-by-element comparison of codes and
// fake-quant values.
#pragma once

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "csrc/cpu/isa.h"
#include "csrc/cpu/requant_simd.h"

namespace simd_test {

using mnq::ops::cpu::Isa;

// The vector paths this CPU has (the scalar path is the reference).
inline std::vector<Isa> vector_paths() {
  std::vector<Isa> v;
  if (mnq::ops::cpu::supported_isa() >= Isa::kAvx2) v.push_back(Isa::kAvx2);
  if (mnq::ops::cpu::supported_isa() >= Isa::kAvx512) v.push_back(Isa::kAvx512);
  return v;
}

// The arrays of one requant input (int32 codes q, or float values x on scales s with r = 1/s) and its vector side.
struct SideData {
  std::vector<int64_t> m, k, hm1;
  std::vector<double> md, s, r;
  std::vector<int32_t> q;
  std::vector<float> x;
  bool uniform = false;  // every column the same (a per-tensor side)
  // Appends a float side's column: multiplier m·2^−k and scale s (1/s and the rounding constant 2^(k−1) − 1 with it).
  void push_column(int64_t m_c, int64_t k_c, double s_c) {
    m.push_back(m_c);
    k.push_back(k_c);
    hm1.push_back((int64_t(1) << (k_c - 1)) - 1);
    md.push_back(std::ldexp(static_cast<double>(m_c), static_cast<int>(-k_c)));
    s.push_back(s_c);
    r.push_back(1.0 / s_c);
  }
  mnq::ops::cpu::RequantSimdSide side() const {
    mnq::ops::cpu::RequantSimdSide v;
    v.m = m.data();
    v.k = k.data();
    v.hm1 = hm1.data();
    v.md = md.data();
    v.uniform = uniform;
    if (x.empty()) {
      v.q = q.data();
    } else {
      v.x = x.data();
      v.s = s.data();
      v.r = r.data();
    }
    return v;
  }
};

inline bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

// A float requant input x on scale s, replaced about once in `period` draws by a value the float forms must send
// elsewhere or handle exactly: NaN, ±inf, ±0, a value without a code (beyond 2^62 after division by s), a subnormal.
template <class Rng>
float with_special_values(float x, double s, unsigned period, Rng& rng) {
  const unsigned special = rng() % period;
  if (special == 0) return std::nanf("");
  if (special == 1) return (rng() % 2 ? 1 : -1) * std::numeric_limits<float>::infinity();
  if (special == 2) return -0.0f;
  if (special == 3) return 0.0f;
  if (special == 4) return static_cast<float>((rng() % 2 ? 1 : -1) * 0x1.1p62 * s);  // no code
  if (special == 5) return static_cast<float>(1e-40);                                 // a subnormal
  return x;
}

// One run's integer codes and fake-quant values, and whether an input had no code.
struct QuantRun {
  std::vector<int32_t> code;
  std::vector<float> fake;
  int bad_code, bad_fake;
};

// Element by element (a plain loop finds the first difference; Catch reports it with both values). An input
// without a code (NaN fake value) has no specified integer output: the integer op reports it and discards the
// tensor.
inline void require_same(const QuantRun& want, const QuantRun& got) {
  REQUIRE(want.bad_code == got.bad_code);
  REQUIRE(want.bad_fake == got.bad_fake);
  auto same = [&](size_t i) {
    return same_bits(want.fake[i], got.fake[i]) && (want.code[i] == got.code[i] || std::isnan(want.fake[i]));
  };
  size_t i = 0;
  while (i < want.code.size() && same(i)) ++i;
  if (i < want.code.size()) {
    INFO("element " << i << ": code " << want.code[i] << " vs " << got.code[i] << ", fake " << want.fake[i] << " vs "
                    << got.fake[i]);
    REQUIRE(i == want.code.size());
  }
}

// Fake-quant requantization of rows × cols through every vector path against the scalar one, bit for bit (NaN
// included); every input must have a value (NaN for one without a code).
inline void require_same_fake(const mnq::ops::cpu::RequantSimdSide& in, const mnq::ops::cpu::RequantSimdSide* id,
                              int64_t cols, int64_t rows, int64_t lo, int64_t hi, double out_scale) {
  const int64_t n = rows * cols;
  auto run = [&](Isa path) {
    std::vector<float> o(n, -7.0f);
    REQUIRE(mnq::ops::cpu::requant_rows(path, in, id, cols, 0, rows, lo, hi, out_scale,
                                        mnq::kernels::FakeOut{o.data()}));
    return o;
  };
  const std::vector<float> want = run(Isa::kScalar);
  for (const Isa path : vector_paths()) {
    const std::vector<float> got = run(path);
    int64_t i = 0;
    while (i < n && same_bits(want[i], got[i])) ++i;
    INFO("path " << mnq::ops::cpu::isa_name(path) << " element " << i << ": " << (i < n ? want[i] : 0.0f) << " vs "
                 << (i < n ? got[i] : 0.0f));
    REQUIRE(i == n);
  }
}

}  // namespace simd_test
