// I-BERT integer LayerNorm (SPEC §4.2; I-BERT, Kim et al., ICML 2021) with a per-row shift and an exact
// integer square root.
//
// Row of 22-bit codes q (I-BERT's QuantAct(22) residual, per-tensor scale S), |q| ≤ 2^21, C ≤ 2^16:
//   Σq, Σq²                                    # |Σq| ≤ 2^37, Σq² ≤ 2^58
//   mean  = round(Σq / C)                      # half to even, |mean| ≤ 2^21
//   y     = q − mean                           # |y| ≤ 2^22
//   V(s)  = Σ floor(y / 2^s)²                  # V(0) = Σq² − 2·mean·Σq + C·mean² ≤ 2^60 (terms ≤ 2^59)
//   shift = the smallest s ≥ 0 with V(s) < 2^32 # s ≤ 15: |floor(y/2^15)| ≤ 2^7, so V(15) ≤ 2^16·2^14 < 2^32
//   var   = V(shift) < 2^32
//   std   = max(isqrt(var), 1) · 2^shift       # < 2^16·2^15 = 2^31
//   f     = floor(2^31 / std)                  # ≤ 2^31
//   yn    = floor(y·f / 2)                     # |y| < (isqrt(var) + 1)·2^shift ≤ 2·std, so |y·f| < 2^32 and
//                                              # |yn| < 2^31; yn ≈ (y/√Σy²)·2^30 on scale Sy = √C/2^30
//   out   = yn + bias_int[c]                   # layernorm_common.h; int64, S_out[c] = Sy·γ[c]
//
// The shift search. |floor(z/2)| ≤ |z| for every integer z, so V(s) is non-increasing in s and the smallest s
// with V(s) < 2^32 can be found from any starting point: step up while V(s) ≥ 2^32, step down while
// V(s − 1) < 2^32. Starting from the estimate s_e = ceil((bit_length(V(0)) − 32) / 2), where V(0)/4^s_e < 2^32
// ≤ V(0)/4^(s_e − 1) up to the floors' rounding (|V(s) − V(0)/4^s| ≤ 2^−s·√(C·V(0)) + C, a 2^−7 relative
// change near 2^32), one pass computing V(s_e − 1) and V(s_e) together almost always decides; the loop
// (ibert_find_shift, ibert_shift_step) makes the result exact whatever the estimate.
#pragma once

#include "layernorm_common.h"

namespace mnq {
namespace kernels {

constexpr i64 kIbertLnLo = -(i64(1) << 21);  // declared input range: 22-bit codes
constexpr i64 kIbertLnHi = (i64(1) << 21) - 1;
static_assert(kIbertLnLo <= kLnInt16Lo && kIbertLnHi >= kLnInt16Hi, "LnIntIn skips the check for 16-bit codes");
constexpr i64 kIbertVarLimit = i64(1) << 32;
constexpr int kIbertMaxShift = 15;

// floor(y / 2^s)²: one term of V(s). |y| ≤ 2^22 fits int32, and the 32×32→64-bit product vectorizes.
MNQ_HOST_DEVICE i64 ibert_term(int32_t y, int s) {
  const int32_t z = y >> s;
  return static_cast<i64>(z) * z;
}

// The first shift to try, from V(0) ≥ 2^32 (so the estimate is ≥ 1): ceil((bit_length(V(0)) − 32) / 2).
MNQ_HOST_DEVICE int ibert_shift_estimate(i64 v0) {
  const int e = (bit_length(static_cast<u64>(v0)) - 31) / 2;
  return e < 1 ? 1 : (e > kIbertMaxShift ? kIbertMaxShift : e);
}

// One step of the search at shift s ≥ 1, given V(s − 1) and V(s) from one pass: returns the next s to try, or
// s itself when it is the answer (V(s) < 2^32 ≤ V(s − 1)). Moving up, the next pass's V(s − 1) is this pass's
// V(s) ≥ 2^32; moving down, V(s) < 2^32 is already known: so the search never turns back and ends within 15
// steps. s = 0 never reaches here (V(0) < 2^32 is decided from the moments).
MNQ_HOST_DEVICE int ibert_shift_step(int s, i64 v_below, i64 v_at) {
  if (v_at >= kIbertVarLimit) return s + 1;
  if (v_below < kIbertVarLimit) return s - 1;
  return s;
}

// The shift search: returns the smallest s ≥ 0 with V(s) < 2^32 and sets var = V(s), given var = V(0) on entry.
// sums(s, below, at) sets below = V(s − 1) and at = V(s) from one pass over the row (the backends' loops).
#if defined(__CUDACC__)
#pragma nv_exec_check_disable
#endif
template <class Sums>
MNQ_HOST_DEVICE int ibert_find_shift(i64& var, const Sums& sums) {
  if (var < kIbertVarLimit) return 0;
  int shift = ibert_shift_estimate(var);
  for (;;) {
    i64 below = 0, at = 0;
    sums(shift, below, at);
    const int next = ibert_shift_step(shift, below, at);
    if (next == shift) {
      var = at;
      return shift;
    }
    shift = next;
  }
}

// f = floor(2^31 / std), std = max(isqrt(var), 1)·2^shift.
MNQ_HOST_DEVICE LnFactor ibert_factor(i64 var, int shift) {
  const i64 r = static_cast<i64>(isqrt64(static_cast<u64>(var)));
  return ln_factor((i64(1) << 31) / ((r < 1 ? 1 : r) << shift));
}

}  // namespace kernels
}  // namespace mnq
