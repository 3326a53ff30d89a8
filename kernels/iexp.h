// I-BERT's polynomial integer exponential i-exp (SPEC §2.1; Kim et al., I-BERT, ICML 2021), shared by I-BERT's
// softmax (§2.1) and FQ-ViT's Log-Int-Softmax (§2.3).
//
// Input x ≤ 0 is an integer on scale S (x = q − max_row(q)). With ln2 = 0.6931, A = 0.35815147,
// B = 0.96963238 / A, C = 1 / A (host, float64, exactly as reference.ibert_exp_consts):
//   x0 = floor(−ln2 / S)          # −ln 2 on scale S, < 0
//   b  = floor(B / S)             # the polynomial's linear coefficient on scale S
//   c  = floor(C / S²)            # its constant on scale S²
//   x  ← max(x, n·x0)
//   z  = floor(x / x0)            # 0 ≤ z ≤ n: e^x = 2^−z · e^r
//   r  = x − x0·z                 # (x0, 0]
//   p  = (r + b)·r + c            # p·A·S² = A·(rS)² + 0.96963238·rS + 1 ≈ e^(rS), a quadratic fit on (−ln2, 0]
//   e  = max(p · 2^(n − z), 0)    # e^x on scale A·S² / 2^n
// Bounds (for the scales the host accepts, 1 ≤ c < 2^33, and |x| < 2^52):
//   |x0| ≤ 0.6931/S + 1 < 2^16 (S > 1.8e-5), b < 2^18, so |(r + b)·r| < 2^34 and p ≤ c < 2^33 (r + b > 0 because
//   b ≥ |x0| − 1, hence (r + b)·r ≤ 0); e ≤ c·2^n = e0 < 2^63 for n = 30, the value at x = 0.
// The division by the row-constant x0 uses the float64 reciprocal with an exact correction (shift_exp.h).
#pragma once

#include "common.h"
#include "shift_exp.h"

namespace mnq {
namespace kernels {

constexpr double kIbertLn2 = 0.6931;
constexpr double kIbertA = 0.35815147;
constexpr double kIbertB = 0.96963238 / kIbertA;
constexpr double kIbertC = 1.0 / kIbertA;
constexpr int kIbertExpN = 30;

struct IbertExpConsts {
  i64 x0;      // floor(−ln2 / S) < 0
  i64 b;       // floor(B / S)
  i64 c;       // floor(C / S²)
  double inv;  // 1 / |x0| (a hint for the division; the result is corrected to be exact)
  int n;
};

// c = floor(C / S²) in float64, before conversion, so the caller can check its range (1 ≤ c < 2^33). Host and
// device (the CUDA QAT path computes the constants from the device scale: plain IEEE ops, the same bits).
MNQ_HOST_DEVICE double ibert_exp_c(double scale) { return floor(kIbertC / (scale * scale)); }

// The supported scales of i-exp: finite, positive, 1 ≤ ibert_exp_c(S) < 2^33 (the CPU raises outside, the CUDA QAT
// kernels write NaN).
MNQ_HOST_DEVICE bool ibert_exp_scale_ok(double scale) {
  if (!valid_scale(scale)) return false;
  const double c = ibert_exp_c(scale);
  return c >= 1.0 && c < ldexp(1.0, 33);
}

// The constants of i-exp for scale S (the caller has checked ibert_exp_scale_ok).
MNQ_HOST_DEVICE IbertExpConsts ibert_exp_consts(double scale, int n) {
  const i64 x0 = static_cast<i64>(floor(-kIbertLn2 / scale));
  return IbertExpConsts{x0, static_cast<i64>(floor(kIbertB / scale)), static_cast<i64>(ibert_exp_c(scale)),
                        1.0 / static_cast<double>(-x0), n};
}

// e0 = c·2^n, the value of i-exp at x = 0 and its maximum.
MNQ_HOST_DEVICE i64 ibert_exp_max(const IbertExpConsts& c) { return c.c << c.n; }

// p and z of the header (p clamped at 0), for callers that fold 2^(n − z) into a later shift.
struct IbertExpParts {
  i64 p;  // 0 ≤ p ≤ c < 2^33
  int z;  // 0 ≤ z ≤ n
};

// x ≤ 0 with |x| < 2^52.
MNQ_HOST_DEVICE IbertExpParts ibert_exp_parts(i64 x, const IbertExpConsts& c) {
  const i64 lo = c.n * c.x0;
  if (x < lo) x = lo;
  const i64 z = div_floor_nonneg(-x, -c.x0, c.inv);  // floor(x / x0) for x ≤ 0, x0 < 0
  const i64 r = x - c.x0 * z;
  const i64 p = (r + c.b) * r + c.c;
  return IbertExpParts{p > 0 ? p : 0, static_cast<int>(z)};
}

// e of the header for x ≤ 0 with |x| < 2^52; 0 ≤ e ≤ c·2^n.
MNQ_HOST_DEVICE i64 ibert_exp(i64 x, const IbertExpConsts& c) {
  const IbertExpParts e = ibert_exp_parts(x, c);
  return e.p << (c.n - e.z);
}

}  // namespace kernels
}  // namespace mnq
