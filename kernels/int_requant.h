// The deploy engine's fused requantization epilogue (csrc/deploy/int_fused.cpp): the QuantAct after an integer
// matmul applied while its int32 accumulators are still in cache, instead of separate passes for the bias add,
// the requant op and the int8 conversion of the next matmul's operand.
//
//   out[r][j] = clamp(round((acc[r][j] + bias[j]) · m_j / 2^k_j), lo, hi)        (SPEC §0 dyadic requant)
//
// round is half to even, as kernels/common.h requant(q, d). The 64-bit form here is exact under the preconditions
// the caller checks once per layer (fast_requant_ok): |acc + bias| < 2^31 (the layer's int32 accumulator bound),
// |m| < 2^31 (every dyadic mantissa) and 1 ≤ k ≤ 62, so |p| = |v·m| < 2^62 and
//   round_half_even(p / 2^k) = floor((p + 2^(k−1) − 1 + ((p >> k) & 1)) / 2^k)
// without overflow (p + 2^(k−1) < 2^63). Proof of the identity, with p = f·2^k + r, 0 ≤ r < 2^k, h = 2^(k−1):
// r < h gives r + h − 1 + odd < 2^k → f; r = h gives 2^k − 1 + odd → f + odd (ties to even); r > h gives ≥ 2^k → f + 1.
// The loops are branch-free over the row so the compiler vectorizes them (vpmullq, vpsravq with -march=native).
#pragma once

#include <cstdint>

#include "common.h"

namespace mnq {
namespace kernels {

// The dyadic pairs of one requant: per channel (the last dimension, length n) or one for the tensor.
struct RequantPairs {
  const int64_t* m;
  const int64_t* k;
  bool per_channel;
  int64_t lo, hi;  // clamp range of the output codes
};

// True when every pair satisfies the preconditions above (|m| < 2^31, 1 ≤ k ≤ 62).
inline bool fast_requant_ok(const int64_t* m, const int64_t* k, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    if (m[i] <= -(int64_t(1) << 31) || m[i] >= (int64_t(1) << 31) || k[i] < 1 || k[i] > 62) return false;
  }
  return true;
}

inline int64_t round_shr_fast(int64_t p, int64_t k) {
  return (p + (int64_t(1) << (k - 1)) - 1 + ((p >> k) & 1)) >> k;
}

// One row of n accumulators (+ bias, may be null) → n output codes.
template <typename TO>
inline void requant_row(const int32_t* __restrict acc, const int32_t* __restrict bias, const RequantPairs& r,
                        int64_t n, TO* __restrict out) {
  if (r.per_channel) {
    for (int64_t j = 0; j < n; ++j) {
      const int64_t v = int64_t(acc[j]) + (bias ? int64_t(bias[j]) : 0);
      const int64_t q = round_shr_fast(v * r.m[j], r.k[j]);
      out[j] = static_cast<TO>(q < r.lo ? r.lo : (q > r.hi ? r.hi : q));
    }
  } else {
    const int64_t m = r.m[0], k = r.k[0];
    for (int64_t j = 0; j < n; ++j) {
      const int64_t v = int64_t(acc[j]) + (bias ? int64_t(bias[j]) : 0);
      const int64_t q = round_shr_fast(v * m, k);
      out[j] = static_cast<TO>(q < r.lo ? r.lo : (q > r.hi ? r.hi : q));
    }
  }
}

// The same with a second, separately requantized term (a fused residual add, Swin's relative-position bias):
// clamp(round(acc·m/2^k) + round(id·m_id/2^k_id)), both per tensor, id read as int32 codes (|id| < 2^31).
template <typename TO>
inline void requant_add_row(const int32_t* __restrict acc, const int32_t* __restrict id, const RequantPairs& r,
                            int64_t m_id, int64_t k_id, int64_t n, TO* __restrict out) {
  const int64_t m = r.m[0], k = r.k[0];
  for (int64_t j = 0; j < n; ++j) {
    const int64_t q = round_shr_fast(int64_t(acc[j]) * m, k) + round_shr_fast(int64_t(id[j]) * m_id, k_id);
    out[j] = static_cast<TO>(q < r.lo ? r.lo : (q > r.hi ? r.hi : q));
  }
}

}  // namespace kernels
}  // namespace mnq
