// The AVX-512 row passes shared by I-LayerNorm and I-BERT LayerNorm (kernels/layernorm_common.h), equal to the
// scalar loops of csrc/cpu/ilayernorm.cpp and ibert_layernorm.cpp element by element. GCC vectorizes those loops
// with VPMULLQ (three instructions) for the 32-bit squares and 64-bit lanes for the range test; here the squares
// are VPMULDQ (signed 32×32 → 64 bits, one instruction) and the codes stay in 32-bit lanes.
//   ln_load_row    q = the row's codes (int32 checked against [lo, hi] in place, and read there by the next
//                  passes: LnRowIn::codes; or float32 rounded as
//                  LnFloatIn does, rint(x·(1/S)) in float64, by row_codes_simd.h, or for I-BERT's 22-bit codes in
//                  rows over 8192 columns by one embedded-rounding conversion per 8; shorter I-BERT rows take
//                  ibert_layernorm.cpp's offset codes) into an int32 row buffer, with Σq
//                  and Σq² (|q| ≤ 2^21, so Σq² ≤ 2^58 per row, in int64 lanes; Σq in int32 lanes for rows up to
//                  8192 columns, in int64 lanes beyond)
//   ln_shift_sums  (V(s − 1), V(s)) of I-BERT's shift search, V(s) = Σ floor((q − mean) / 2^s)²; ln_shift_sum
//                  V(s) alone
//   ln_out_row     ln_affine_out(q − mean, f, bias_int[c]) as int64 codes, or float32 float(double(v)·S_out[c])
//                  (v made in float64 lanes when ln_bias_magic allows)
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
  const double* s_out = nullptr;  // [cols] S_out[c], and optionally
  const double* bias_m = nullptr;  // [cols] bias_int[c] + 1.5·2^52 (ln_bias_magic): the float64 form of ln_out_row
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
// 2^53, so halving it is exact and trunc is the floor. One vector division per step instead of eight scalar ones,
// and fewer steps once every lane repeats with period 1 or 2 (the 10th value is then known; layernorm_simd.cpp).
// With f: also f[i] = floor((2^31 − 1) / k[i]) (ilayernorm_factor's), one more vector division: for k ≥ 1 the
// quotient Q ≤ 2^31 is rounded by at most Q·2^−53 < 1/k, less than the distance from a non-integer Q to the next
// integer, so trunc(fl(Q)) = floor(Q) (an integer Q is exact); this replaces a 64-bit integer division per row.
void ilayernorm_std8(const kernels::i64* var, kernels::i64* k, kernels::i64* f = nullptr);

void ln_out_row(const int32_t* q, int32_t mean, int64_t cols, kernels::LnFactor f, const kernels::i64* bias_int,
                const LnRowOut& out);

// The float output's shorter form (out.bias_m set): v = yn + bias_int[c] made in float64 lanes, without int64
// products, shifts or conversions. With K = 1.5·2^52, r = fma(y, f/2, bias_int[c] + K) rounded toward −∞ is
// K + bias_int[c] + floor(y·f/2) exactly when |bias_int[c] + y·f/2| < 2^51 (the exact sum lies in (2^52, 2^53),
// where the doubles are the integers, and K + bias_int[c] is an integer); then r − K = v exactly (|v| < 2^53), so
// fl32(fl64(v)·S_out[c]) is the definition's value. The bound holds for every row when |bias_int| ≤ 2^50, because
// |yn| < 2^32 on every row of both LayerNorms: I-LayerNorm's f ≤ 2^31/64 and |y| ≤ 2^16 give |yn| ≤ 2^40; I-BERT's
// std = max(isqrt(V(s)), 1)·2^s bounds |y|: s = 0: |y| ≤ √V(0) < isqrt + 1 ≤ std + 1 (y = 0 when V(0) = 0);
// s ≥ 1: V(s) ≥ 2^30 (V(s − 1) ≥ 2^32), |y| < 2^s·(|floor(y/2^s)| + 1) ≤ 2^s·(isqrt(V(s)) + 2) ≤ 3·std; with
// f ≤ 2^31/std, |yn| ≤ 3·2^30 + 2^30. Fills bias_m [cols] and returns true when every |bias_int[c]| ≤ 2^50.
bool ln_bias_magic(const kernels::i64* bias_int, int64_t cols, double* bias_m);

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
