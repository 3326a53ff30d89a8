// Vector paths of requantization with the fused residual add (kernels/quant.h requant_code), equal to it element
// by element.
//
// Narrow case only: every shift k in [1, 62] and |q| ≤ 2^31 (int32 codes, or float values whose code
// round(x / S) is certified below 2^31 − 1). Then |q·m| < 2^62 (|m| < 2^31), computed by one signed 32×32→64-bit
// multiply per lane, and the half-to-even rounding of q·m / 2^k is, with p = q·m,
//   (p + 2^(k−1) − 1 + (⌊p / 2^k⌋ mod 2)) >> k         (|p + 2^(k−1)| < 2^63)
// because adding 2^(k−1) − 1 carries into the quotient exactly when the remainder exceeds 2^(k−1), and adding the
// quotient's parity turns the tie rem = 2^(k−1) into a carry exactly when the quotient is odd. Each requant is then
// below 2^62 in magnitude, so the residual sum and the clamp are exact in int64: requant_code's value.
//
// Float inputs (the fake-quant form) recover q = rint(x / S) (RequantFloatIn, one float64 division) as
// p = fl64(x · fl64(1/S)), which is within E = 2^−51·|p| + 2^−1000 of fl64(x / S) (3 roundings of 2^−53 each, S
// and 1/S in [2^−1000, 2^1000]); a lane is certified when |p| < 2^31 − 1 and the computed distance to the nearest
// half-integer, fl(1/2 − |p − rint(p)|), is at least fl(2^−50·|p| + 2^−100) (exact or > 1/4 > E, as in
// quant_simd.h), so rint(p) = rint(fl64(x / S)). On AVX-512, lanes that fail (large or near-tie values) are redone
// in vector form with the loader's own division (vdivpd) and, for codes at or above 2^31 (I-BERT's GELU output),
// requant64_wide's int64 pieces when k ≥ 31 (requant_simd.cpp Avx512::redo8); what remains (NaN, codes of 2^62 and
// more, codes beyond int32 with k < 31) and the AVX2 path's failed lanes and tails go through requant_one, the
// scalar definition.
#pragma once

#include <cstdint>

#include "csrc/cpu/isa.h"
#include "kernels/quant.h"

namespace mnq {
namespace ops {
namespace cpu {

// One input of a requantization, per column of the last dim (per-tensor values spread over the C columns).
struct RequantSimdSide {
  const int32_t* q = nullptr;  // int32 codes, or
  const float* x = nullptr;    // float values on scale s
  const double* s = nullptr;   // [C] input scale (float input)
  const double* r = nullptr;   // [C] fl64(1 / s) (float input)
  const kernels::i64* m;       // [C] dyadic multiplier, |m| < 2^31
  const kernels::i64* k;       // [C] its shift, 1 ≤ k ≤ 62
  const kernels::i64* hm1;     // [C] 2^(k−1) − 1
  const double* md;            // [C] m·2^−k, exact in float64 (the AVX-512 float64 form, requant_f64_simd.h)
  bool uniform = false;        // every column holds the same values (a per-tensor side spread): checks read one
  // The columns whose values a per-column check or conversion must read: 1 for a uniform side, else all.
  int64_t distinct(int64_t cols) const { return uniform && cols > 1 ? 1 : cols; }
};

// Rows [r0, r1) of cols elements; `id` is null without a residual. Returns false if an input had no code
// (reported for codes; NaN stored for fake quant, which returns true).
bool requant_rows(Isa path, const RequantSimdSide& in, const RequantSimdSide* id, int64_t cols, int64_t r0, int64_t r1,
                  kernels::i64 lo, kernels::i64 hi, double out_scale, const kernels::CodeOut& out);
bool requant_rows(Isa path, const RequantSimdSide& in, const RequantSimdSide* id, int64_t cols, int64_t r0, int64_t r1,
                  kernels::i64 lo, kernels::i64 hi, double out_scale, const kernels::FakeOut& out);

// The AVX2 path of requant_rows (requant_avx2.cpp, x86 builds), which calls it for Isa::kAvx2.
bool requant_rows_avx2(const RequantSimdSide& in, const RequantSimdSide* id, int64_t cols, int64_t r0, int64_t r1,
                       kernels::i64 lo, kernels::i64 hi, double out_scale, const kernels::CodeOut& out);
bool requant_rows_avx2(const RequantSimdSide& in, const RequantSimdSide* id, int64_t cols, int64_t r0, int64_t r1,
                       kernels::i64 lo, kernels::i64 hi, double out_scale, const kernels::FakeOut& out);

// Rows [r0, r1) of `cols` columns by blocks of 16: block(base, c) does one, false when it could not certify it and
// other(base, c) redoes it; tail(base, c) does the row's columns from c on. Returns false when `other` or `tail`
// reported an input without a code. The row loop of the float32 forms (requant_f32_simd.h, requant_fused_simd.h).
template <class Block, class Other, class Tail>
inline bool block16_rows(int64_t cols, int64_t r0, int64_t r1, const Block& block, const Other& other,
                         const Tail& tail) {
  bool ok = true;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t base = r * cols;
    int64_t c = 0;
    for (; c + 16 <= cols; c += 16) {
      if (!block(base, c)) ok = other(base, c) && ok;  // inline: an out-of-line call measured slower here
    }
    if (c < cols) ok = tail(base, c) && ok;
  }
  return ok;
}

// Whether a float input's scales allow the certified float path: every S and 1/S in [2^−1000, 2^1000].
bool requant_simd_scales_ok(const double* s, int64_t count);

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
