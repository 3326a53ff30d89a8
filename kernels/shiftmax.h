// I-ViT Shiftmax (SPEC §2.2): integer softmax over the last dim with shifts and one division per row.
//
// Row of integer scores q (scale S, per tensor):
//   x   = q − max_row(q)                       # ≤ 0
//   e   = shift_exp(x, S, n)                   # shift_exp.h; 0 < e ≤ |x0|·2^n < 2^62, scale S/2^n
//   s   = min(sum_row(e), 2^31 − 1)            # summed with saturation: exact min and no overflow
//   f   = floor((2^31 − 1) / s)                # s ≥ 1: the max element has x = 0 and e > 0
//   out = floor(e·f / 2^(32 − b_out))          # e·f < 2^63 (e ≤ s unless s saturated, then f = 1)
//   S_out = 2^−(b_out − 1)
// Inputs are within int32 (|x| < 2^33, so shift_exp's x bound holds); 2 ≤ b_out ≤ 16, so 0 ≤ out < 2^15.
#pragma once

#include "common.h"
#include "shift_exp.h"

namespace mnq {
namespace kernels {

struct ShiftmaxConsts {
  ShiftExpConsts se;
  int out_shift;  // 32 − b_out
};

struct ShiftmaxParams {
  i64 rows;  // number of rows
  i64 cols;  // row length (last dim)
  ShiftmaxConsts c;
  i64 lo, hi;  // declared input range (int32)
};

inline ShiftmaxConsts shiftmax_consts(double scale, int out_bits, int n) {
  return ShiftmaxConsts{shift_exp_consts(scale, n), 32 - out_bits};
}

MNQ_HOST_DEVICE i64 shiftmax_factor(i64 sum_sat) { return kInt31Max / sum_sat; }

MNQ_HOST_DEVICE i64 shiftmax_out(i64 e, i64 f, const ShiftmaxConsts& c) { return (e * f) >> c.out_shift; }

}  // namespace kernels
}  // namespace mnq
