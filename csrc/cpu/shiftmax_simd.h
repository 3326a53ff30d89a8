// Shiftmax's AVX-512 row path (kernels/shiftmax.h), equal to the scalar definition element by element.
//
// Three passes over a row, 16 int32 lanes each: the row max (row_codes_simd.h: int32 codes read in place, float32
// values rounded to codes into a row buffer), the exponentials e from the caller's exact table of shift_exp32 with
// their 64-bit sum (in registers, SoftmaxTable16, when lim ≤ 255 or the row's codes span at most 255; gathered
// otherwise), and the output (e·f) >> (32 − b_out) with f = floor((2^31 − 1) / s)
// (shiftmax_factor): e·f ≤ 2^31 − 1 (kernels/shiftmax.h), so the product is one VPMULLD. Within a row e depends on
// d = m − q alone, clamped at −x_lo (shift_exp32_input), hence the table tab[lim − min(d, lim)] = shift_exp32(−min(d,
// lim)), lim = −x_lo: the scalar function at the same points. The QAT form writes float(double(out)·S_out) (kernels/
// io.h's FloatOut); with S_out = 2^−(b_out − 1), a power of two, that is float32(out)·float32(S_out) exactly (out <
// 2^15 is exact in float32 and the product only moves the exponent), so 16 float32 lanes do it.
#pragma once

#include <cstdint>

#include "csrc/cpu/ibert_softmax_simd.h"  // the row input/output views (IbertSoftmaxRowIn / Out: any softmax's)
#include "kernels/shiftmax.h"

namespace mnq {
namespace ops {
namespace cpu {

// Rows [r0, r1) of p.cols elements; in and out at row 0. tab[i] = shift_exp32(i − lim, p.c.se) for i ∈ [0, lim],
// lim = −p.c.se.x_lo; t16: SoftmaxTable16(tab, lim, p.cols) or nullptr (the gathers alone); buf [p.cols + 32]
// int32 scratch (whole vector steps past the row's end). False when a code lies outside [p.lo, p.hi] (or a float has no code): the rows before it are written.
// (One call for a range of rows: the row loop in one function keeps the tables and constants in registers.)
bool shiftmax_rows(const IbertSoftmaxRowIn& in, const kernels::ShiftmaxParams& p, const int32_t* tab, uint32_t lim,
                   const SoftmaxTable16* t16, int32_t* buf, const IbertSoftmaxRowOut& out, int64_t r0, int64_t r1);

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
