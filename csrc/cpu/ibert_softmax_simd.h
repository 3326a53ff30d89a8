// I-BERT softmax's AVX-512 row path (kernels/ibert_softmax.h), equal to the scalar definition element by element.
//
// Three passes over a row, 16 int32 lanes each: the row max (int32 codes read in place, float32 values rounded to
// codes rint(x·(1/S)) in float64 into a row buffer, as kernels/io.h's FloatIn does), the requantized
// exponentials from the caller's exact table of ibert_softmax_exp (iexp_table.h) with their sum — looked up in
// registers (SoftmaxTable16, row_codes_simd.h's row_table16_exps) in rows whose codes span at most 255 (8-bit
// scores: every row), gathered otherwise — and the
// output (e·f) >> (32 − b_out) with f = floor(2^32 / s) (ibert_softmax_factor): e ≤ 32767 and f < 2^32 (the row
// max has e = 32767 or close to it, so s ≥ 1 gives f ≤ 2^32 only when s = 1: that row takes the scalar loop), so
// the product is VPMULUDQ, unsigned 32×32 → 64 bits, on the even and odd lanes. The QAT values float(double(v)·S)
// are float(v)·float(S) in 16 float32 lanes where that is exact (S = 2^−b_out and v ≤ 2^b_out: write's test).
#pragma once

#include <cstdint>

#include "kernels/ibert_softmax.h"

namespace mnq {
namespace ops {
namespace cpu {

// One row's input: int32 codes q, or float32 values x with 1/S (exactly one of q, x set).
struct IbertSoftmaxRowIn {
  const int32_t* q = nullptr;
  const float* x = nullptr;
  double inv_scale = 0.0;
  IbertSoftmaxRowIn at(int64_t i) const {  // the same at element i (a row's start)
    IbertSoftmaxRowIn r = *this;
    if (r.q != nullptr) r.q += i;
    if (r.x != nullptr) r.x += i;
    return r;
  }
};

// One row's output: int32 codes, or float32 values v·scale (exactly one of code, value set).
struct IbertSoftmaxRowOut {
  int32_t* code = nullptr;
  float* value = nullptr;
  double scale = 0.0;
  IbertSoftmaxRowOut at(int64_t i) const {  // the same at element i (a row's start)
    IbertSoftmaxRowOut r = *this;
    if (r.code != nullptr) r.code += i;
    if (r.value != nullptr) r.value += i;
    return r;
  }
};

// A table softmax's exponentials for d = m − q ≤ 255 (I-BERT softmax, Shiftmax; row_codes_simd.h's
// row_table16_exps looks them up in registers): lo[i] and hi[i] are the low and high 16 bits of tab[lim − min(i,
// lim)], the entry the gathers read for that d. Built once per call from the call's table (entries in [0, 2^31)).
struct SoftmaxTable16 {
  alignas(64) uint16_t lo[256];
  alignas(64) uint16_t hi[256];
  bool wide = false;   // an entry ≥ 2^16: hi is needed
  bool sum32 = false;  // cols·max(entry) < 2^32: a row's sum and its partial sums fit uint32 lanes
  SoftmaxTable16(const int32_t* tab, uint32_t lim, int64_t cols);
};

// Rows [r0, r1) of p.cols elements; in and out at row 0. tab[i] = ibert_softmax_exp(i − lim, p.c) for i ∈ [0, lim],
// lim = −n·x0; t16: SoftmaxTable16(tab, lim, p.cols), or nullptr (the gathers alone); buf [p.cols + 32] int32
// scratch (whole vector steps past the row's end); prefetch: request the next row's lines first (prefetch.h). False
// when a code lies outside [p.lo, p.hi] (or a float has no code): the rows before it are written. (One call for a
// range of rows: the row loop in one function keeps the tables and constants in registers.)
bool ibert_softmax_rows(const IbertSoftmaxRowIn& in, const kernels::IbertSoftmaxParams& p, const int32_t* tab,
                        uint32_t lim, const SoftmaxTable16* t16, int32_t* buf, const IbertSoftmaxRowOut& out,
                        int64_t r0, int64_t r1, bool prefetch);

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
