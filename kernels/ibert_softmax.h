// I-BERT integer softmax (SPEC §2.1; Kim et al., I-BERT, ICML 2021): polynomial i-exp, a 16-bit requantization
// of the exponentials, one division per row.
//
// Row of integer scores q (scale S, per tensor), n = 30:
//   x   = q − max_row(q)                      # ≤ 0, |x| < 2^33 (inputs are within int32)
//   e   = ibert_exp(x)                        # iexp.h; 0 ≤ e ≤ e0 = c·2^30 < 2^63, scale A·S²/2^30
//   e   = min(requant(e, 32767 / e0), 32767)  # (m, k) = dyadic(32767 / e0): 2^30 ≤ m < 2^31, 46 ≤ k ≤ 79
//                                             # (2^−49 < 32767/e0 < 2^−15). e·m < 2^94 needs 128 bits, but with
//                                             # e = p·2^(30 − z) it is round(p·m / 2^(k − 30 + z)): p·m < 2^64
//                                             # unsigned and the shift is in [16, 109] (ibert_softmax_exp)
//   s   = sum_row(e)                          # ≤ 32767·cols: int64; s ≥ 32767 (the max element gives e0 → 32767)
//   f   = floor(2^32 / s)                     # ≤ 2^32 / 32767 < 2^18
//   out = floor(e·f / 2^(32 − b_out))         # e·f ≤ s·f ≤ 2^32 (int64)
//   S_out = 2^−b_out
// out < 2^b_out: e·f = 2^32 would need e = s (all other e zero) with s | 2^32, but then s = e ≤ 32767 is not a
// power of two. So 2 ≤ b_out ≤ 16 gives out < 2^16 (int32 codes).
// Scale range: c = floor(C/S²) ≥ 1 (S ≤ √C ≈ 1.671) and e0 = c·2^30 < 2^63 (S > √(C/2^33) ≈ 1.80e−5); the host
// rejects scales outside it.
#pragma once

#include "common.h"
#include "iexp.h"

namespace mnq {
namespace kernels {

constexpr i64 kIbertExpBits = 32767;  // the 16-bit range of the requantized exponentials

struct IbertSoftmaxConsts {
  IbertExpConsts ex;
  Dyadic to16;    // dyadic(32767 / e0)
  int out_shift;  // 32 − b_out
};

// dev_scale: the CUDA QAT launch's scale in device memory (see ShiftmaxParams); nullptr: host constants.
struct IbertSoftmaxParams {
  i64 rows;  // number of rows
  i64 cols;  // row length (last dim)
  IbertSoftmaxConsts c;
  i64 lo, hi;  // declared input range (int32)
  const double* dev_scale = nullptr;
  int out_bits = 0;  // for dev_scale
};

// Constants for scale S (checked by the caller: ibert_exp_scale_ok) and 2 ≤ b_out ≤ 16. Host and device.
MNQ_HOST_DEVICE IbertSoftmaxConsts ibert_softmax_consts(double scale, int out_bits) {
  const IbertExpConsts ex = ibert_exp_consts(scale, kIbertExpN);
  // e0 < 2^63 is exact in float64 (c < 2^33 times a power of two): the quotient is the correctly rounded one.
  const double r = static_cast<double>(kIbertExpBits) / static_cast<double>(ibert_exp_max(ex));
  return IbertSoftmaxConsts{ex, dyadic(r), 32 - out_bits};
}

// The constants of a dev_scale launch, from the host's functions; false outside the supported range.
template <class In>
MNQ_HOST_DEVICE bool ibert_softmax_device_consts(IbertSoftmaxParams& p, In& in) {
  const double s = *p.dev_scale;
  if (!ibert_exp_scale_ok(s)) return false;
  p.c = ibert_softmax_consts(s, p.out_bits);
  in.set_inv_scale(1.0 / s);
  return true;
}

// Round-half-to-even of v / 2^k for k ≥ 1, exact, unsigned 64-bit. Branch-free on the remainder (a coin flip
// per element): rounding up ⟺ rem > half, or rem = half with fl odd ⟺ rem + (fl & 1) > half.
MNQ_HOST_DEVICE u64 round_shr_u64(u64 v, int k) {
  if (k > 64) return 0;                                 // v / 2^k < 1/2
  if (k == 64) return v > (static_cast<u64>(1) << 63);  // 1/2 exactly is a tie: rounds to the even 0
  const u64 fl = v >> k;
  const u64 rem = v & ((static_cast<u64>(1) << k) - 1);
  return fl + static_cast<u64>(rem + (fl & 1) > (static_cast<u64>(1) << (k - 1)));
}

// The requantized exponential of x ≤ 0, in [0, 32767]: min(requant(ibert_exp(x), 32767 / e0), 32767).
MNQ_HOST_DEVICE i64 ibert_softmax_exp(i64 x, const IbertSoftmaxConsts& c) {
  const IbertExpParts e = ibert_exp_parts(x, c.ex);
  const u64 pm = static_cast<u64>(e.p) * static_cast<u64>(c.to16.m);  // < 2^33 · 2^31
  const u64 v = round_shr_u64(pm, c.to16.k - c.ex.n + e.z);
  return v < static_cast<u64>(kIbertExpBits) ? static_cast<i64>(v) : kIbertExpBits;
}

// f = floor(2^32 / s), s ≥ 1.
MNQ_HOST_DEVICE i64 ibert_softmax_factor(i64 sum) { return (static_cast<i64>(1) << 32) / sum; }

MNQ_HOST_DEVICE i64 ibert_softmax_out(i64 e, i64 f, const IbertSoftmaxConsts& c) { return (e * f) >> c.out_shift; }

}  // namespace kernels
}  // namespace mnq
