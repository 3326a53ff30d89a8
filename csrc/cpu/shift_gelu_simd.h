// ShiftGELU's AVX-512 lookup (kernels/shift_gelu.h): the output pass of a row whose sig values are tabulated
// (csrc/cpu/shift_gelu.cpp: tab[t] = shift_gelu_sig(−t, e2, c) for t ∈ [0, m − min_row(q)]), 16 or 32 lanes a step,
// which GCC does not vectorize (it stays one scalar load, multiply and store per element). Each output is q·tab[m −
// q] in int32 (|out| < 2^30), exactly as the scalar loop; the float32 value float(double(q·sig)·S_out) (kernels/
// io.h's FloatOut) depends on q alone as well within the row, so the QAT form looks it up in the caller's table of
// those values (vtab[t], the value of the code m − t), built by the same operations as the scalar store. A row of
// at most 256 codes reads 16-bit tables from registers (VPERMI2W: the int16 sig, or the float32 values' two
// halves), a wider row gathers from the 32-bit tables. The lookups only move table entries, so each output is the
// entry the scalar loop reads.
#pragma once

#include <cstdint>

namespace mnq {
namespace ops {
namespace cpu {


// The row's max and min of int32 codes read in place (the first pass, 16 lanes); false if a code lies outside
// [lo, hi].
bool shift_gelu_max_min(const int32_t* q, int64_t cols, int32_t lo, int32_t hi, int32_t& mx, int32_t& mn);

// The same for float32 values: q[j] = rint(x[j]·inv_scale) (float64, kernels/io.h's FloatIn) into q.
bool shift_gelu_codes(const float* x, int64_t cols, double inv_scale, int32_t lo, int32_t hi, int32_t* q, int32_t& mx,
                      int32_t& mn);

// out[j] = q[j]·tab[m − q[j]] for j < cols (every m − q[j] indexes tab).
void shift_gelu_lookup(const int32_t* q, int64_t cols, int32_t m, const int32_t* tab, int32_t* out);
// out[j] = vtab[m − q[j]] (the caller's table of float32 output values).
void shift_gelu_lookup(const int32_t* q, int64_t cols, int32_t m, const float* vtab, float* out);

// The row's table entries t ∈ [t0, t1), 16 lanes: tab[t] = shift_gelu_sig(−t, e2, c) from e1[t] = shift_exp(−t, c.se)
// (the caller's per-call table: e1 does not depend on the row), with e2 the row's capped e2 (0 ≤ e2 ≤ 2^31 − 1) and
// out_shift = c.out_shift; and, when vtab is not null, vtab[t] = float(double((m − t)·tab[t])·s_out) (kernels/io.h's
// FloatOut). The kernel's bounds make every step 32-bit or exact: 1 ≤ e1 ≤ 2^31 − 1, so e1 + e2 < 2^32 (unsigned),
// s = min(e1 + e2, 2^31 − 1) converts exactly to float64, f = trunc(fl((2^31 − 1)/s)) is the definition's quotient
// (8 lanes of vdivpd), e1·f ≤ 2^31 − 1 is exact in a 32-bit multiply, |(m − t)·sig| < 2^30 exact in float64.
void shift_gelu_tables(const int32_t* e1, int64_t t0, int64_t t1, int64_t e2, int out_shift, int32_t m, double s_out,
                       int32_t* tab, float* vtab);

// The narrow form of a row spanning at most 256 codes (every row of 8-bit codes): the same entries t ∈ [t0, t1) ⊂
// [0, 256) in 16-bit halves, so that the output pass looks them up in registers (VPERMI2W: 64 entries a step, 4
// steps and 3 blends for 256) instead of a gather, which takes ~5× as long on Zen 5. sig16 (not null: the int
// output): sig16[t] = sig (0 ≤ sig < 2^15: b_out ≤ 16); vlo, vhi (not null: the float output): the low and high 16
// bits of vtab[t]'s float32 encoding (shift_gelu_tables).
void shift_gelu_tables16(const int32_t* e1, int64_t t0, int64_t t1, int64_t e2, int out_shift, int32_t m,
                         double s_out, uint16_t* sig16, uint16_t* vlo, uint16_t* vhi);

// The lookups of a narrow table (0 ≤ m − q[j] < 256 for j < cols; the entries past the row's span are loaded into
// the registers but never selected): out[j] = q[j]·sig16[m − q[j]] (int32), and out[j] = the float32 with bits
// vhi[t]·2^16 + vlo[t], t = m − q[j].
void shift_gelu_lookup16(const int32_t* q, int64_t cols, int32_t m, const uint16_t* sig16, int32_t* out);
void shift_gelu_lookup16(const int32_t* q, int64_t cols, int32_t m, const uint16_t* vlo, const uint16_t* vhi,
                         float* out);

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
