// Log-Int-Softmax's AVX-512 row path (kernels/log_int_softmax.h), equal to the scalar definition element by element.
//
// Three passes over a row, 16 or 8 lanes each: (1) the row max of the codes (int32 codes are read in place; float
// values are rounded to the codes of kernels/io.h's FloatIn by row_codes_simd.h, into a row buffer), (2) the
// exponentials e = ibert_exp(max(q − m, n·x0)) gathered from the caller's exact table of i-exp (iexp_table.h) with
// the 128-bit row sum kept as two 64-bit sums of the 32-bit halves, (3) the codes, 16 per step: one shifted
// compare per element gives t = floor(log2((2s + e) / 3e)) + 1 (VPLZCNTQ for the bit lengths, a per-lane variable
// shift), which is lis_exponent's count of reached thresholds wherever t ≥ 3 (the derivation is at codes() in the
// .cpp); lanes with t < 3 (v < 6: the row's few largest probabilities, where the thresholds K_1, K_2 differ from the
// general one) take the first two tests instead, in the same vectors. Rows whose sum reaches 2^61 take
// kernels/log_int_softmax.h's functions.
#pragma once

#include <cstdint>

#include "kernels/log_int_softmax.h"

namespace mnq {
namespace ops {
namespace cpu {

// One row's input: int32 codes q, or float32 values x with 1/S (exactly one of q, x set).
struct LisRowIn {
  const int32_t* q = nullptr;
  const float* x = nullptr;
  double inv_scale = 0.0;
  LisRowIn at(int64_t i) const {  // the same at element i (a row's start)
    LisRowIn r = *this;
    if (r.q != nullptr) r.q += i;
    if (r.x != nullptr) r.x += i;
    return r;
  }
};

// One row's output: the uint8 code and bool mask bytes, or the float32 values 2^−code (0 where masked).
struct LisRowOut {
  uint8_t* code = nullptr;
  uint8_t* mask = nullptr;
  float* value = nullptr;
  LisRowOut at(int64_t i) const {  // the same at element i (a row's start)
    LisRowOut r = *this;
    if (r.code != nullptr) r.code += i;
    if (r.value != nullptr) r.value += i;
    if (r.mask != nullptr) r.mask += i;
    return r;
  }
};

// Whether this build and CPU have the path (AVX-512 F/DQ/BW/VL and CD; the caller also checks isa()).
bool lis_simd_available();

// Facts about the table that select the row path's variants, computed once per call: zeros, whether an entry is 0
// (the codes then test e = 0 lanes); wide, whether cols·max(tab) ≥ 2^63 (the row sum is then kept in two halves);
// reg, whether pass 2 may compute e from the 64 int32 values in p instead of gathering it (i-exp's own form, e =
// p[r] << (n − z) with z = floor(d/|x0|), r = d − |x0|·z, |x0| ≤ 64 (S ≥ ~0.011: 8-bit attention scores): the .cpp's exps_reg, checked against every
// entry of the table). The defaults are the general variants, right for any table.
struct LisTableFacts {
  bool zeros = true;
  bool wide = true;
  bool reg = false;
  int32_t x0 = 0;     // reg: |x0|, the period of i-exp's polynomial
  int32_t magic = 0;  // reg: floor(d/|x0|) = (d·magic) >> 16 for d ∈ [0, lim]
  int32_t n = 0;      // reg: i-exp's n
  int32_t p[64] = {};  // reg: i-exp's polynomial p at x = −r, r < |x0| (0 beyond)
};
// n: i-exp's n (the table's entries are ibert_exp(i − lim) with lim = n·|x0|).
LisTableFacts lis_table_facts(const kernels::i64* tab, uint32_t lim, int64_t cols, int n = kernels::kIbertExpN);

// One row of p.cols elements. tab[i] = ibert_exp(i − lim, p.c.ex) for i ∈ [0, lim], lim = −n·x0 (< 2^31);
// qbuf [p.cols + 16] int32 and ebuf [p.cols + 16] uint64 are scratch (whole 16-lane steps past the row's end); facts: lis_table_facts(tab, lim, p.cols) or the
// defaults. False when a code lies outside [p.lo, p.hi] (or a float has no code); the row's output is then
// unspecified.
bool lis_row(const LisRowIn& in, const kernels::LogIntSoftmaxParams& p, const kernels::i64* tab, uint32_t lim,
             int32_t* qbuf, kernels::u64* ebuf, const LisRowOut& out, const LisTableFacts& facts = {});

// Rows [r0, r1) as lis_row does each (in and out at row 0), in one function (its constants stay in registers);
// prefetch: request the next row's lines first (prefetch.h). False at the first row with a code outside [p.lo, p.hi]
// (the rows before it are written).
bool lis_rows(const LisRowIn& in, const kernels::LogIntSoftmaxParams& p, const kernels::i64* tab, uint32_t lim,
              int32_t* qbuf, kernels::u64* ebuf, const LisRowOut& out, const LisTableFacts& facts, int64_t r0,
              int64_t r1, bool prefetch);

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
