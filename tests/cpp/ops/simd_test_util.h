// Helpers of the CPU vector-path tests (test_simd.cpp: quantize; test_simd_requant.cpp: requant): the paths this
// CPU has, bitwise float equality, and the element-by-element comparison of codes and fake-quant values.
#pragma once

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "csrc/cpu/isa.h"

namespace simd_test {

using mnq::ops::cpu::Isa;

// The vector paths this CPU has (the scalar path is the reference).
inline std::vector<Isa> vector_paths() {
  std::vector<Isa> v;
  if (mnq::ops::cpu::supported_isa() >= Isa::kAvx2) v.push_back(Isa::kAvx2);
  if (mnq::ops::cpu::supported_isa() >= Isa::kAvx512) v.push_back(Isa::kAvx512);
  return v;
}

inline bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

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

}  // namespace simd_test
