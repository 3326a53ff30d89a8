// I-BERT i-GELU's AVX-512 rows (kernels/ibert_gelu.h), equal to the scalar definition element by element.
//
// 8 int64 lanes per step, with the products in VPMULDQ (signed 32×32 → 64 bits, one instruction; AVX-512's full
// 64-bit multiply is three): t = min(|q|, −b) + b ∈ [b, 0] with |b| < 2^23 fits int32, so t² is one VPMULDQ; the
// final q·(y + one) is one too when every channel's factor bound M = ibert_gelu_max_factor (≤ 2^32 − 1, the host
// check) is below 2^31, which holds for any accumulator scale above ~6.3e-7, and VPMULLQ otherwise. The sign of q
// selects p, −p or 0 through masks. Float (QAT) input is rounded to codes as channel_io.h's FloatInC does
// (rint(x·(1/S[c])) in float64, the range and NaN test by ordered compares) and written as its FloatOutC does
// (float(double(v)·S_out[c])). With a per-tensor scale the constants are broadcast instead of loaded per column
// (three 64-bit loads per 8 lanes, 36 KB of them per 1536-wide row).
//
// The narrow form (b ≥ −32769 in every channel, i.e. S ≳ 7.6e-5): 16 int32 lanes up to the factor f = y + one
// (the bounds are at narrow16 in the .cpp), then q·f as int64 in two VPMULDQ (the even and the odd lanes), put back
// in order by one permute per 8 outputs (int64 codes) or per 16 (float32 values after the float64 rounding); its QAT
// codes come from row_codes_simd.h's float32-certified rounding, 16 lanes at a time (float64 where it cannot
// certify). The QAT form of any other per-tensor scale runs in float64 lanes throughout (ibert_gelu_f64_simd.h).
#pragma once

#include <cstdint>

#include "kernels/ibert_gelu.h"

namespace mnq {
namespace ops {
namespace cpu {

// The input rows: int32 codes q, or float32 values x with inv_scale [cols] = 1/S[c] (exactly one of q, x set).
struct IbertGeluIn {
  const int32_t* q = nullptr;
  const float* x = nullptr;
  const double* inv_scale = nullptr;
};

// The output: int64 codes, or float32 values v·s_out[c] (exactly one of code, value set).
struct IbertGeluOut {
  int64_t* code = nullptr;
  float* value = nullptr;
  const double* s_out = nullptr;
};


// Computed once per call: factor32, whether every channel's factor bound is below 2^31 (the one-instruction final
// multiply); uniform, whether every channel's constants (and 1/S, S_out) are equal, i.e. a per-tensor scale: they
// are then broadcast instead of loaded, and float input takes the float64 lanes of ibert_gelu_f64_simd.h; narrow,
// b ≥ −32769 in every channel (the 16-lane int32 form; per tensor, its float input the float32-certified codes).
// Per-channel scales take the same forms with the constants loaded per column, once per 4 rows: int input the
// narrow form when every channel allows it (else the int64 lanes), float input the float64 lanes.
struct IbertGeluPlan {
  bool factor32;
  bool uniform;
  bool narrow = false;
};
IbertGeluPlan ibert_gelu_plan(const IbertGeluIn& in, const IbertGeluOut& out, const kernels::IbertGeluParams& p);

// Rows [r0, r1) of p.cols elements; false if a code was outside [p.lo, p.hi] (its output is then unspecified).
bool ibert_gelu_rows(const IbertGeluIn& in, const IbertGeluOut& out, const kernels::IbertGeluParams& p,
                     const IbertGeluPlan& plan, int64_t r0, int64_t r1);

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
