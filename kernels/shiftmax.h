// I-ViT Shiftmax (SPEC §2.2): integer softmax over the last dim with shifts and one division per row.
//
// Row of integer scores q (scale S, per tensor; declared range int32):
//   x   = q − max_row(q)                       # ≤ 0
//   e   = shift_exp(x, S, n)                   # shift_exp.h; 0 < e ≤ |x0|·2^n, scale S/2^n
//   s   = min(sum_row(e), 2^31 − 1)
//   f   = floor((2^31 − 1) / s)                # s ≥ 1: the max element has x = 0 and e > 0
//   out = floor(e·f / 2^(32 − b_out))          # S_out = 2^−(b_out − 1)
// Documented range (checked on the host): |x0|·2^n < 2^31 − 1, i.e. the row maximum alone does not saturate the
// sum. Then everything fits 32 bits: e < 2^31 (shift_exp32), and e·f ≤ 2^31 − 1 because either e ≤ s (so
// e·f ≤ s·floor((2^31−1)/s)) or s saturated and f = 1. The row sum is formed in 64 bits (< L·2^31).
// 2 ≤ b_out ≤ 16, so 0 ≤ out < 2^15.
#pragma once

#include "common.h"
#include "shift_exp.h"

namespace mnq {
namespace kernels {

struct ShiftmaxConsts {
  ShiftExp32 se;
  int out_shift;  // 32 − b_out
};

// dev_scale: the CUDA QAT launch's scale S in device memory (0-d float64); the kernel then computes c and 1/S from
// it (shiftmax_device_consts) and ignores the host's. nullptr: c and the loader's 1/S are the host's.
struct ShiftmaxParams {
  i64 rows;  // number of rows
  i64 cols;  // row length (last dim)
  ShiftmaxConsts c;
  i64 lo, hi;  // declared input range (int32)
  const double* dev_scale = nullptr;
  int out_bits = 0, n = 0;  // for dev_scale
};

// The documented range of S (header): finite, positive, |floor(−1/S)|·2^n < 2^31 − 1. The CPU raises outside it
// (csrc/ops/shiftmax.cpp), the CUDA QAT kernel writes NaN.
MNQ_HOST_DEVICE bool shiftmax_scale_ok(double scale, int n) {
  if (!valid_scale(scale)) return false;
  const double x0 = floor(-1.0 / scale);
  return -x0 * ldexp(1.0, n) < 2147483647.0;
}

MNQ_HOST_DEVICE ShiftmaxConsts shiftmax_consts(double scale, int out_bits, int n) {
  return ShiftmaxConsts{shift_exp32_consts(shift_exp_consts(scale, n)), 32 - out_bits};
}

// The constants of a dev_scale launch, from the same functions as the host's; false outside the range.
template <class In>
MNQ_HOST_DEVICE bool shiftmax_device_consts(ShiftmaxParams& p, In& in) {
  const double s = *p.dev_scale;
  if (!shiftmax_scale_ok(s, p.n)) return false;
  p.c = shiftmax_consts(s, p.out_bits, p.n);
  in.set_inv_scale(1.0 / s);
  return true;
}

// e of one element given the row maximum m.
MNQ_HOST_DEVICE int32_t shiftmax_exp(int32_t q, int32_t m, const ShiftmaxConsts& c) {
  return shift_exp32(shift_exp32_input(q, m, c.se), c.se);
}

MNQ_HOST_DEVICE int32_t shiftmax_factor(i64 sum) { return static_cast<int32_t>(kInt31Max / (sum < kInt31Max ? sum : kInt31Max)); }

MNQ_HOST_DEVICE int32_t shiftmax_out(int32_t e, int32_t f, const ShiftmaxConsts& c) {
  return static_cast<int32_t>((static_cast<uint32_t>(e) * static_cast<uint32_t>(f)) >> c.out_shift);
}

}  // namespace kernels
}  // namespace mnq
