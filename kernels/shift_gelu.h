// I-ViT ShiftGELU (SPEC §3.2; Li & Gu, "I-ViT", ICCV 2023): GELU(x) ≈ x·sigmoid(1.702·x), with the sigmoid
// e^(1.702(x − m)) / (e^(1.702(x − m)) + e^(−1.702·m)) built from ShiftExp (shift_exp.h) and one division.
//
// Row of codes q over the last dim (scale S per tensor, declared range |q| ≤ 2^15), n = 23, b_out = 8 by default:
//   Ss  = 1.702·S, x0 = floor(−1/Ss)          # host, float64
//   m   = max_row(q)                          # only to keep e1's argument ≤ 0
//   e1  = shift_exp(q − m, Ss, n)              # q − m ∈ [−2^16, 0]; 1 ≤ e1 ≤ |x0|·2^n ≤ 2^31 − 1 (host bound)
//   e2  = shift_exp(−m, Ss, n)                 # −m > 0 when the row is all negative: e2 grows past 2^n and is
//                                             # taken capped, min(e2, 2^31 − 1) (shift_exp_capped, |−m| ≤ 2^15)
//   s   = min(e1 + e2, 2^31 − 1)              # = min(e1 + min(e2, 2^31 − 1), 2^31 − 1) because e1 ≥ 0: exact;
//                                             # e1 + capped e2 < 2^32
//   f   = floor((2^31 − 1) / s)               # per element; 1 ≤ s < 2^31, computed as a float64 quotient (below)
//   sig = floor(e1·f / 2^(32 − b_out))        # sigmoid(1.702x) on scale 2^−(b_out−1); e1·f ≤ 2^31 − 1 (e1 ≤ s,
//                                             # or s saturated and f = 1 with e1 ≤ 2^31 − 1), so 0 ≤ sig < 2^(b_out−1)
//   out = q·sig                               # |out| < 2^15·2^15 = 2^30: int32
//   S_out = S·2^−(b_out − 1)
// f is trunc(fl((2^31 − 1) / s)) with fl the correctly rounded float64 quotient (vectorizable, unlike an integer
// division), and that is exact: if Q = (2^31 − 1)/s is an integer, fl(Q) = Q; otherwise Q lies at least 1/s from
// either neighbouring integer while |fl(Q) − Q| ≤ Q·2^−53 < 2^31/(s·2^53) < 1/s, and rounding is monotone, so
// fl(Q) stays strictly between floor(Q) and floor(Q) + 1 — or equals floor(Q) — and truncates to floor(Q).
// Supported parameters (host-checked): 2 ≤ b_out ≤ 16; 1 ≤ n ≤ 30 (n = 0 clamps every x to 0, a constant 1/2;
// n ≤ 30 because |x0| ≥ 1); a scale with |x0|·2^n = ceil(1/Ss)·2^n ≤ 2^31 − 1 — the bound on e1 above, without
// which a saturated s no longer normalises e1 and sig leaves its b_out bits (e1 = |x0|·2^n at every row maximum).
// n = 23: S ≥ 1/(255·1.702) ≈ 2.3041e-3, fine for 8-bit activations (S = max|x|/127); 16-bit inputs on a finer
// scale need a smaller n. And 1.702·S finite, so that x0 ≤ −1.
// Accuracy (SPEC as in the authors' code): f carries only log2((2^31 − 1)/s) bits — at 8-bit scales |x0| ≈ 19 and
// s ≈ 2^27..2^28, i.e. 3–4 bits — so sig runs up to ~8% of full scale low (tests/cpp/kernels/test_shift_gelu.cpp).
#pragma once

#include <cmath>

#include "common.h"
#include "shift_exp.h"

namespace mnq {
namespace kernels {

constexpr double kShiftGeluAlpha = 1.702;  // GELU(x) ≈ x·sigmoid(1.702·x)

struct ShiftGeluConsts {
  ShiftExpConsts se;  // of Ss = 1.702·S
  int out_shift;      // 32 − b_out
};

// dev_scale: the CUDA QAT launch's scale in device memory (see ShiftmaxParams; the kernel also sets S_out);
// nullptr: host constants.
struct ShiftGeluParams {
  i64 rows;  // number of rows
  i64 cols;  // row length (last dim)
  ShiftGeluConsts c;
  i64 lo, hi;  // declared input range (16-bit)
  const double* dev_scale = nullptr;
  int out_bits = 0, n = 0;  // for dev_scale
};

// Whether scale and n satisfy the bounds of the header (call before shift_gelu_consts). Host and device.
MNQ_HOST_DEVICE bool shift_gelu_scale_ok(double scale, int n) {
  const double x0 = floor(-1.0 / (scale * kShiftGeluAlpha));
  return x0 <= -1.0 && -x0 * ldexp(1.0, n) <= 2147483647.0;
}

MNQ_HOST_DEVICE ShiftGeluConsts shift_gelu_consts(double scale, int out_bits, int n) {
  return ShiftGeluConsts{shift_exp_consts(scale * kShiftGeluAlpha, n), 32 - out_bits};
}

// S_out = S·2^−(b_out − 1) (csrc/ops/shift_gelu.cpp out_scale_of: the same IEEE product).
MNQ_HOST_DEVICE double shift_gelu_out_scale(double scale, int out_bits) { return scale * ldexp(1.0, -(out_bits - 1)); }

// The constants of a dev_scale launch (c, 1/S, S_out), from the host's functions; false outside the range (the
// host also requires a finite positive S: check_scale).
template <class In, class Out>
MNQ_HOST_DEVICE bool shift_gelu_device_consts(ShiftGeluParams& p, In& in, Out& out) {
  const double s = *p.dev_scale;
  if (!valid_scale(s) || !shift_gelu_scale_ok(s, p.n)) return false;
  p.c = shift_gelu_consts(s, p.out_bits, p.n);
  in.set_inv_scale(1.0 / s);
  out.set_scale(shift_gelu_out_scale(s, p.out_bits));
  return true;
}

// min(e2, 2^31 − 1) of the row, m = max_row(q) with |m| ≤ 2^15.
MNQ_HOST_DEVICE i64 shift_gelu_e2(i64 m, const ShiftGeluConsts& c) { return shift_exp_capped(-m, c.se, kInt31Max); }

// sig of an element with d = q − max_row(q) ≤ 0 (|d| ≤ 2^16), given its row's capped e2. Within a row it depends on
// d alone, so a CPU row of few distinct codes can tabulate it (csrc/cpu/shift_gelu.cpp).
MNQ_HOST_DEVICE i64 shift_gelu_sig(i64 d, i64 e2, const ShiftGeluConsts& c) {
  const i64 e1 = shift_exp(d, c.se);
  const i64 s = sat_add(e1, e2, kInt31Max);
  const i64 f = static_cast<i64>(static_cast<double>(kInt31Max) / static_cast<double>(s));  // exact, see header
  return (e1 * f) >> c.out_shift;
}

// out = q·sig for one element, given its row's max m and capped e2.
MNQ_HOST_DEVICE i64 shift_gelu_out(i64 q, i64 m, i64 e2, const ShiftGeluConsts& c) {
  return q * shift_gelu_sig(q - m, e2, c);
}

}  // namespace kernels
}  // namespace mnq
