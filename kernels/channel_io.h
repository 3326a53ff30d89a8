// Element access for elementwise ops whose scale may vary along the last dim (SPEC §0: S per tensor or per
// channel). Same contract as io.h, with the channel c = index in the last dim passed alongside the flat index:
//   load(i, c, lo, hi, ok)   the integer code of element i, or round(x / S[c]) for float input, computed as io.h's
//                            FloatIn does: rint(x · (1/S[c])) in float64
//   store(i, c, v)           integer code v, or the float32 value v·S_out[c] (io.h's FloatOut rounding)
// The loads are branch-free so that elementwise CPU loops vectorize: a code outside [lo, hi] (or NaN) clears `ok`
// and loads as 0, so the math never sees an out-of-range value (no int64 overflow) and the caller, told through
// `ok`, discards the output. `ok` is an int64 flag (1 while every code was in range), not io.h's bool: GCC
// vectorizes int64 AND-reductions and selects, but gives up on the same code written with bools.
#pragma once

#include "common.h"
#include "io.h"

namespace mnq {
namespace kernels {

template <typename T>
struct IntInC {
  const T* p;
  MNQ_HOST_DEVICE i64 load(i64 i, i64 /*c*/, i64 lo, i64 hi, i64& ok) const {
    const i64 v = static_cast<i64>(p[i]);
    const i64 in_range = static_cast<i64>(v >= lo) & static_cast<i64>(v <= hi);
    ok &= in_range;
    return in_range ? v : 0;
  }
};

// Float input on per-channel scales; Code: the type the in-range code converts through. int32 (FloatInC32) where the
// caller's code range lies within it (ShiftGELU's 16-bit codes): exact, and AVX2 vectorizes that conversion (io.h
// FloatIn), ShiftGELU's QAT form 4.96 → 3.53 ms on the AVX2 path; i64 (FloatInC) for I-BERT GELU, whose CPU loop
// measured 7% slower through int32 there.
template <class Code>
struct FloatInCAs {
  const float* p;
  const double* inv_scale;  // [C]: 1 / S[c]
  MNQ_HOST_DEVICE i64 load(i64 i, i64 c, i64 lo, i64 hi, i64& ok) const {
    const double v = rint(static_cast<double>(p[i]) * inv_scale[c]);
    const i64 in_range =
        static_cast<i64>(v >= static_cast<double>(lo)) & static_cast<i64>(v <= static_cast<double>(hi));
    ok &= in_range;  // NaN compares false
    return static_cast<Code>(in_range ? v : 0.0);
  }
};
using FloatInC = FloatInCAs<i64>;
using FloatInC32 = FloatInCAs<int32_t>;

// kPropagatesNaN, store_nan: as io.h's outputs (the CUDA QAT kernel writes NaN for an element without a code).
template <typename T>
struct IntOutC {
  static constexpr bool kPropagatesNaN = false;
  T* p;
  MNQ_HOST_DEVICE void store_nan(i64, i64) const {}
  MNQ_HOST_DEVICE void store(i64 i, i64 /*c*/, i64 v) const { IntOut<T>{p}.store(i, v); }
};

struct FloatOutC {
  static constexpr bool kPropagatesNaN = true;
  float* p;
  MNQ_HOST_DEVICE void store_nan(i64 i, i64) const { p[i] = NAN; }
  const double* scale;  // [C]: S_out[c]
  MNQ_HOST_DEVICE void store(i64 i, i64 c, i64 v) const { FloatOut{p, scale[c]}.store(i, v); }
};

}  // namespace kernels
}  // namespace mnq
