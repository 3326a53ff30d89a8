// The AVX-512 row passes shared by I-LayerNorm and I-BERT LayerNorm (kernels/layernorm_common.h), equal to the
// scalar loops of csrc/cpu/ilayernorm.cpp and ibert_layernorm.cpp element by element. GCC vectorizes those loops
// with VPMULLQ (three instructions) for the 32-bit squares and 64-bit lanes for the range test; here the squares
// are VPMULDQ (signed 32×32 → 64 bits, one instruction) and the codes stay in 32-bit lanes.
//   ln_load_row    q = the row's codes (int32 checked against [lo, hi] in place, and read there by the next
//                  passes: LnRowIn::codes; or float32 rounded as
//                  LnFloatIn does, rint(x·(1/S)) in float64, by row_codes_simd.h) into an int32 row buffer, with Σq
//                  and Σq² (|q| ≤ 2^21, so Σq² ≤ 2^58 per row, in int64 lanes; Σq in int32 lanes for rows up to
//                  8192 columns, in int64 lanes beyond)
//   ln_shift_sums  (V(s − 1), V(s)) of I-BERT's shift search, V(s) = Σ floor((q − mean) / 2^s)²; ln_shift_sum
//                  V(s) alone
//   ln_out_row     ln_affine_out(q − mean, f, bias_int[c]) as int64 codes, or float32 float(double(v)·S_out[c])
#pragma once

#include <cstdint>

#include "kernels/layernorm_common.h"

namespace mnq {
namespace ops {
namespace cpu {

struct LnRowIn {
  const int32_t* q = nullptr;  // int32 codes, or
  const float* x = nullptr;    // float32 values with
  double inv_scale = 0.0;      // 1/S
  // The row's codes for the passes after ln_load_row: int32 input in place, float input in the buffer it filled.
  const int32_t* codes(const int32_t* buf) const { return q != nullptr ? q : buf; }
  LnRowIn at(int64_t i) const {  // the same at element i (a row's start)
    LnRowIn r = *this;
    if (r.q != nullptr) r.q += i;
    if (r.x != nullptr) r.x += i;
    return r;
  }
};

struct LnRowOut {
  int64_t* code = nullptr;       // int64 codes, or
  float* value = nullptr;        // float32 values with
  const double* s_out = nullptr;  // [cols] S_out[c]
  LnRowOut at(int64_t i) const {  // the same at element i (a row's start)
    LnRowOut r = *this;
    if (r.code != nullptr) r.code += i;
    if (r.value != nullptr) r.value += i;
    return r;
  }
};


// False when a code lies outside [lo, hi] ([lo, hi] within ±2^21) or a float input has no code. q is written for
// float input only (see LnRowIn::codes).
bool ln_load_row(const LnRowIn& in, int64_t cols, kernels::i64 lo, kernels::i64 hi, int32_t* q, kernels::i64& sum,
                 kernels::i64& sumsq);

void ln_shift_sums(const int32_t* q, int32_t mean, int64_t cols, int s, kernels::i64& below, kernels::i64& at);
kernels::i64 ln_shift_sum(const int32_t* q, int32_t mean, int64_t cols, int s);

// k[i] = ilayernorm_std(var[i]) (kernels/ilayernorm.h) for 8 rows at once, 0 ≤ var[i] ≤ 2^48: the fixed 10 Newton
// steps k ← floor((k + floor(var/k)) / 2) in float64 lanes, exact: var and k (64 ≤ k ≤ 2^31 + 2^15) are exact
// doubles; floor(var/k) = trunc(fl(var/k)) because var < 2^53 (a non-integer var/k lies at least 1/k from every
// integer, farther than the quotient's rounding error (var/k)·2^−53 < 1/k); k + floor(var/k) is an integer below
// 2^53, so halving it is exact and trunc is the floor. One vector division per step instead of eight scalar ones.
// With f: also f[i] = floor((2^31 − 1) / k[i]) (ilayernorm_factor's), one more vector division: for k ≥ 1 the
// quotient Q ≤ 2^31 is rounded by at most Q·2^−53 < 1/k, less than the distance from a non-integer Q to the next
// integer, so trunc(fl(Q)) = floor(Q) (an integer Q is exact); this replaces a 64-bit integer division per row.
void ilayernorm_std8(const kernels::i64* var, kernels::i64* k, kernels::i64* f = nullptr);

void ln_out_row(const int32_t* q, int32_t mean, int64_t cols, kernels::LnFactor f, const kernels::i64* bias_int,
                const LnRowOut& out);

// The affine constants of every channel (ln_affine in csrc/ops/layernorm_common.cpp): bias_int[c] and s_out[c] of
// kernels::ln_affine_channel(γ[c], β[c], sy) for c < cols, γ and β host arrays of float32 (g32, b32) or float64
// (g64, b64; exactly one of each pair set). False when a channel is rejected (its values are then unspecified):
// the caller reports it. A plain loop, here so that it is compiled with csrc/cpu/'s -march, which vectorizes its
// two divisions, floor and int64 conversion (the host front end's baseline x86-64 made floor a libm call: ~1.7 µs
// of a 384-channel call, half of a float layer_norm call).
bool ln_affine_consts(const float* g32, const double* g64, const float* b32, const double* b64, int64_t cols,
                      double sy, kernels::i64* bias_int, double* s_out);

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
