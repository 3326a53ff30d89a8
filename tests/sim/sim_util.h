// Helpers of the CUDA simulator suite: random inputs of every loader dtype, shapes, bit-exact comparison.
#pragma once

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "cuda_sim.h"
#include "kernels/common.h"

namespace mnq {
namespace simtest {

using kernels::i64;

// Row lengths every row-wise kernel is run with (a warp is 32 lanes: below, at and past it, odd, ViT-sized) and
// row counts that leave the last block of 8 rows partial.
inline const std::vector<i64> kCols = {1, 17, 31, 32, 33, 197, 769};
inline i64 rows_for(i64 cols) { return cols >= 512 ? 3 : 13; }

// A 4-byte "device" flag for a checked launch, filled with garbage the launcher must clear.
struct Flag {
  int mem = 0x5a5a5a5a;
  int* get() { return &mem; }
};

// The codes of dtype T: uniform in [lo, hi] ∩ T's range.
template <class T>
std::vector<T> random_codes(std::mt19937_64& rng, size_t n, i64 lo, i64 hi) {
  const i64 tlo = static_cast<i64>(std::numeric_limits<T>::lowest());
  const i64 thi = static_cast<i64>(std::numeric_limits<T>::max());
  std::uniform_int_distribution<i64> d(std::max(lo, tlo), std::min(hi, thi));
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(d(rng));
  return v;
}

// Per-row magnitudes: each row drawn in [−2^b, 2^b] with b uniform in [0, max_bits], so rows of tiny and of
// full-range codes both occur (row statistics then take every branch).
template <class T>
std::vector<T> random_rows(std::mt19937_64& rng, i64 rows, i64 cols, int max_bits, i64 lo, i64 hi) {
  std::vector<T> v(static_cast<size_t>(rows * cols));
  std::uniform_int_distribution<int> bits(0, max_bits);
  for (i64 r = 0; r < rows; ++r) {
    const i64 m = i64(1) << bits(rng);
    const auto row = random_codes<T>(rng, static_cast<size_t>(cols), std::max(lo, -m), std::min(hi, m));
    std::copy(row.begin(), row.end(), v.begin() + r * cols);
  }
  return v;
}

// Float values x = q·S (+ a little noise below half a step) for codes q in [lo, hi].
inline std::vector<float> random_values(std::mt19937_64& rng, size_t n, i64 lo, i64 hi, double scale) {
  std::uniform_int_distribution<i64> d(lo, hi);
  std::uniform_real_distribution<double> noise(-0.45, 0.45);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>((static_cast<double>(d(rng)) + noise(rng)) * scale);
  return v;
}

// Bit-exact equality of two buffers (floats compared by their bits, so NaN == NaN and 0 ≠ −0), naming the first
// differing element.
template <class T>
void require_same(const std::vector<T>& got, const std::vector<T>& want, const std::string& what) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::memcmp(&got[i], &want[i], sizeof(T)) != 0) {
      INFO(what << ": element " << i << " of " << got.size() << ": kernel " << +got[i] << ", reference " << +want[i]);
      REQUIRE(false);
    }
  }
}

// Number of kernels the simulator ran so far.
inline int64_t launches() { return sim::stats().launches; }

}  // namespace simtest
}  // namespace mnq
