// I-ViT I-LayerNorm (SPEC §4.1; I-ViT, Li & Gu, ICCV 2023): integer LayerNorm over the last dim, with a fixed
// 10-step integer Newton square root and one integer division per row.
//
// Row of 16-bit codes q (per-tensor scale S, which LayerNorm does not depend on), |q| ≤ 2^15, C ≤ 2^16:
//   Σq, Σq²                                    # |Σq| ≤ 2^31, Σq² ≤ 2^46
//   mean = round(Σq / C)                       # half to even, |mean| ≤ 2^15
//   y    = q − mean                            # |y| ≤ 2^16
//   var  = Σy² = Σq² − 2·mean·Σq + C·mean²     # a sum, not a mean; ≤ C·2^32 ≤ 2^48 (each term ≤ 2^47)
//   k    = 2^16; 10 × k = floor((k + floor(var/k)) / 2)
//                                              # k ≥ floor(k/2) each step, so k ≥ 2^16/2^10 = 64; and by AM-GM
//                                              # k ≥ isqrt(var) after the first step; k ≤ 2^31 + 2^15
//   f    = floor((2^31 − 1) / k)               # ≤ 2^25
//   yn   = floor(y·f / 2)                      # |y| ≤ isqrt(var) ≤ k, so |y·f| ≤ 2^31 − 1 and |yn| ≤ 2^30:
//                                              # yn ≈ (y/√var)·2^30 on scale Sy = √C/2^30
//   out  = yn + bias_int[c]                    # layernorm_common.h; int64, S_out[c] = Sy·γ[c]
#pragma once

#include "layernorm_common.h"

namespace mnq {
namespace kernels {

constexpr i64 kIlnLo = -(i64(1) << 15);  // declared input range: 16-bit codes
constexpr i64 kIlnHi = (i64(1) << 15) - 1;
static_assert(kIlnLo <= kLnInt16Lo && kIlnHi >= kLnInt16Hi, "LnIntIn skips the check for 16-bit codes");

// The fixed 10-step Newton iteration of I-ViT from 2^16 (var ≥ 0; k stays ≥ 64, so it never divides by 0).
MNQ_HOST_DEVICE i64 ilayernorm_std(i64 var) {
  i64 k = i64(1) << 16;
  for (int i = 0; i < 10; ++i) k = (k + var / k) >> 1;  // non-negative operands: '/' and '>>' are floors
  return k;
}

// f = floor((2^31 − 1) / std) for a row with moments Σq, Σq²; `mean` receives round(Σq / C).
MNQ_HOST_DEVICE LnFactor ilayernorm_factor(i64 sum, i64 sumsq, i64 cols, i64& mean) {
  mean = ln_mean(sum, cols);
  return ln_factor(kInt31Max / ilayernorm_std(ln_centered_sumsq(sum, sumsq, mean, cols)));
}

}  // namespace kernels
}  // namespace mnq
