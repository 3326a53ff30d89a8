// I-BERT i-GELU (SPEC §3.1; Kim et al., "I-BERT", ICML 2021, Alg. 2): GELU(x) = x·(1 + erf(x/√2))/2 with erf
// replaced by a clipped second-order polynomial, in integers. Elementwise; the scale S is per tensor or per
// channel of the last dim (the fc1 accumulator's per-output-channel scale), so every constant is per channel.
//
// Host, float64, per channel (SPEC §0; the expressions are the reference's ibert_gelu_consts, operand for operand):
//   a = −0.2888, bb = −1.769, k = 1.4142, n = 14, Se = S / k
//   b = floor(bb / Se) < 0,  c = floor((1/a) / Se²) < 0,  unit = a·Se²·2^n < 0,  one = floor(1 / unit) < 0
//   S_out = S·unit / 2 < 0 (negative by construction: out·S_out is the value)
// Device, per element, with q an int32 code (the fc1 accumulator):
//   t   = min(|q|, −b) + b              # ∈ [b, 0]: |x|/√2 = |q|·Se clipped at 1.769, minus 1.769 (scale Se)
//   p   = t² + c                        # p·a·Se² = a·(t·Se)² + 1 ≈ erf(|x|/√2) ∈ [0, 1]; p ∈ [c, b² + c]
//   y   = floor(sign(q)·p / 2^n)         # erf(x/√2) on scale a·Se²·2^n = unit; |y| ≤ |c|/2^n + 1
//   out = q·(y + one)                    # x·(erf + 1) on scale S·unit, i.e. 2·GELU(x) on S·unit = GELU on S_out
// Overflow bounds (all int64): |q| ≤ 2^31, |b| < 2^23, t² ≤ b² < 2^46 and |p| ≤ max(|c|, |b² + c|) < 2^46 in the
// supported range; y + one takes its extremes at the ends of p's range, so the host computes
//   M = max |floor(±c / 2^n) + one|, |floor(±(b² + c) / 2^n) + one|
// exactly and requires M ≤ 2^32 − 1, which makes |out| ≤ 2^31·(2^32 − 1) < 2^63. Since M ≈ 2|c|/2^n ≈
// 13.85/(2^14·S²), this is S ≥ 4.43647e-7 (kIbertGeluScaleMin). At the other end the op is degenerate once −b ≤ 1:
// every nonzero |q| clips and the polynomial is never evaluated; the host requires b ≤ −2, i.e.
// S < 1.769·1.4142 = 2.5017198 (kIbertGeluScaleMax). Inside that range the integer math is exact; whether it is
// accurate is another matter: n = 14 assumes accumulator-precision input (S ≲ 1e-3); for 8-bit input
// |unit| ≈ 2366·S² is ≳ 1 and `one` keeps no precision (SPEC §3.1; tests/python/test_ibert_gelu.py measures it).
#pragma once

#include <cmath>

#include "common.h"

namespace mnq {
namespace kernels {

constexpr double kIbertGeluA = -0.2888;
constexpr double kIbertGeluB = -1.769;
constexpr double kIbertGeluK = 1.4142;
constexpr int kIbertGeluN = 14;
constexpr double kIbertGeluScaleMin = 4.43647e-7;  // for messages; the exact test is M ≤ 2^32 − 1
constexpr double kIbertGeluScaleMax = 2.5017198;   // for messages; the exact test is b ≤ −2

// The integer constants of one channel.
struct IbertGeluConsts {
  i64 b;
  i64 c;
  i64 one;
};

// Host: the constants and S_out of one scale; ok = false when S is outside the supported range (see header).
struct IbertGeluScale {
  IbertGeluConsts k;
  double s_out;
  bool ok;
};

// max |y + one| over every int32 q (the M of the header), for valid constants.
MNQ_HOST_DEVICE i64 ibert_gelu_max_factor(const IbertGeluConsts& k) {
  const i64 p_hi = k.b * k.b + k.c;  // the other end of p's range [c, b² + c]
  const i64 ends[4] = {k.c, -k.c, p_hi, -p_hi};
  i64 m = 0;
  for (const i64 p : ends) {
    const i64 v = (p >> kIbertGeluN) + k.one;
    m = v < 0 ? (-v > m ? -v : m) : (v > m ? v : m);
  }
  return m;
}

// Host and device (the CUDA QAT path computes them from the device scale: the same IEEE steps, no contraction).
MNQ_HOST_DEVICE IbertGeluScale ibert_gelu_consts(double scale) {
  const double se = scale / kIbertGeluK;
  const double b = floor(kIbertGeluB / se);
  const double c = floor((1.0 / kIbertGeluA) / (se * se));
  const double unit = kIbertGeluA * (se * se) * 16384.0;  // a·Se²·2^14
  const double one = floor(1.0 / unit);
  IbertGeluScale r{{0, 0, 0}, scale * unit / 2.0, false};
  // The float pre-check keeps the casts defined (|c| ≥ 2^50 is far outside the range: M would be ≈ 2^37). A NaN,
  // infinite, zero or negative scale fails it too (b is then NaN, −0 or positive).
  if (!(b <= -2.0) || !(c > -1125899906842624.0)) return r;
  r.k = IbertGeluConsts{static_cast<i64>(b), static_cast<i64>(c), static_cast<i64>(one)};
  r.ok = ibert_gelu_max_factor(r.k) <= 4294967295LL;  // 2^32 − 1
  return r;
}

// The constants of channel j (< cols) from the scale in `scale` (n_scale = 1: per tensor, repeated over the
// channels; n_scale = cols: per channel), written to the layout of IbertGeluParams and the QAT loaders: k [3, cols]
// (b, c, one), sc [2, cols] (1/S, S_out), s_out [n_scale]. A scale outside the supported range gets constants 0
// and 1/S = NaN, so every element of its channel fails its load and is written NaN (csrc/ops/qat.h's policy), and
// S_out = NaN. Used by the CUDA QAT path (ibert_gelu_consts_kernel), which reads nothing back.
MNQ_HOST_DEVICE void ibert_gelu_channel_consts(const double* scale, i64 n_scale, i64 cols, i64 j, i64* k, double* sc,
                                               double* s_out) {
  const double s = scale[n_scale == 1 ? 0 : j];
  const IbertGeluScale r = ibert_gelu_consts(s);
  k[j] = r.ok ? r.k.b : 0;
  k[cols + j] = r.ok ? r.k.c : 0;
  k[2 * cols + j] = r.ok ? r.k.one : 0;
  sc[j] = r.ok ? 1.0 / s : NAN;
  sc[cols + j] = r.ok ? r.s_out : NAN;
  if (j < n_scale) s_out[j] = r.ok ? r.s_out : NAN;
}

// The element math of the header, for one channel's b, c, one. Requires |q| ≤ 2^31 and constants from a valid
// ibert_gelu_consts. Branch-free (the sign of q is data, not control flow), so CPU loops vectorize.
MNQ_HOST_DEVICE i64 ibert_gelu(i64 q, i64 b, i64 c, i64 one) {
  const i64 a = q < 0 ? -q : q;
  const i64 t = (a < -b ? a : -b) + b;
  const i64 p = t * t + c;
  const i64 sign = static_cast<i64>(q > 0) - static_cast<i64>(q < 0);
  return q * (((sign * p) >> kIbertGeluN) + one);
}

struct IbertGeluParams {
  i64 numel;       // elements
  i64 cols;        // channels: the size of the last dim (1 for a 0-d input)
  const i64* b;    // [cols] per-channel constants (a per-tensor scale is repeated), as separate arrays so CPU
  const i64* c;    // [cols] loops load them with vector loads
  const i64* one;  // [cols]
  i64 lo, hi;      // declared input range (int32)
};

}  // namespace kernels
}  // namespace mnq
