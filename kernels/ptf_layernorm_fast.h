// A division-free evaluation of ptf_out (ptf_layernorm.h) for the CPU, certified equal to it element by element.
//
// ptf_out needs three float64 divisions per element (A = C·γ/den, (sx·γ)/std, (β − ·)/S_next) with the
// reference's rounding; vectorized division costs ~5x a multiply, which would make the op several times slower
// than a float layer_norm. Here each division becomes a multiply by a reciprocal computed once (per row: 1/den,
// 1/std; per call: 1/S_next), and a test certifies that this cannot change N, M or B; an element that fails the
// test (a few per million on ViT-like data) is recomputed with ptf_out. So the result is exactly ptf_out's, on
// every input.
//
// Error bounds (u = 2^−53, round to nearest; every quantity normal, guaranteed by the tests below and by the
// caller's S_next ∈ [2^−500, 2^500], which keeps 1/den, 1/std and 1/S_next normal):
//   A' = fl(C·γ · fl(1/den)):  |A' − A| ≤ 3.01u·|A| ≤ 4u·|A'|.
//   q' = fl(p · fl(1/std)) for p = fl(sx·γ) (the same product on both paths): |q' − q| ≤ 3.01u·|q'| + 2^−1073,
//   d' = fl(β − q'):  |d' − d| ≤ 3.02u·|q'| + 2.01u·|d'| + 2^−1072,
//   t' = fl(d' · fl(1/S_next)):  |t' − t| ≤ 3.03u·|q'|/S_next + 5.04u·|t'| + 2^−1071/S_next,
//   w' = t'·2^N (exact):  |w' − w| ≤ 3.1u·2^N·|q'|/S_next + 5.1u·|w'| + 2^−540 (subnormal terms, ≤
//   2^31·2^500·2^−1071). And 2^N·|q'|/S_next ≤ (|sx|/C)·2^N·|A|·(1 + 5u) ≤ (|sx|/C)·z'·(1 + 10u) with
//   z' ≤ max(256, |A'|) ≤ max(256, max_c|C·γ[c]|·fl(1/den)·(1 + u)) (z' < 2^8 unless N = 0, where z' = |A'|).
//   So |w' − w| ≤ E = R + 2^−48·|w'|, with the per-row R = 2^−48·(|sx|/C)·max(256, max|C·γ|·fl(1/den)) + 2^−400.
// Certification:
//   N, M. Let z' = |A'|·2^N' (exact), N' from A'. Every breakpoint of (N, M) as a function of |A| is an integer
//   value of z: M changes where z crosses an integer; N changes where |A| crosses a power of two 2^k, which
//   maps to z = 2^(k+N') = 128 or 256 in the unclamped range, to z = 2^k ≥ 128 when N' = 0, and to z = 256 at the
//   upper end of the N' = 31 range (below it N stays 31). So if z' is farther than 2^−20 + 2^−48·z' (> 4u·z')
//   from every integer, A and A' give the same N and M. sign(A) = sign(A') = sign(γ).
//   B = rint(w). If |w' − rint(w')| ≤ 0.5 − 2^−20 − E, then |w − rint(w')| < 0.5 and rint(w) = rint(w'). (The
//   2^−20 slack absorbs the rounding of the test's own arithmetic; it costs a fallback rate of ~2^−19.)
// |A'| < 2^−1000 (so A' = 0 for γ = 0 and subnormal A), z' ≥ 2^62, |w'| > 2^51 and NaN also fail the test, and the
// uncertified value is computed from clamped operands, so no float→int conversion is ever out of range.
#pragma once

#include <cstring>

#include "ptf_layernorm.h"

namespace mnq {
namespace kernels {

// Per-call validity of the fast path: 1/S_next (and so 1/den, 1/std) is normal, and the subnormal error terms
// stay far below 2^−400.
inline bool ptf_fast_ok(double scale_next) { return scale_next >= 0x1p-500 && scale_next <= 0x1p500; }

struct PtfRowFast {
  double inv_den;  // fl(1 / (std·S_next))
  double inv_std;  // fl(1 / std)
  double inv_sn;   // fl(1 / S_next)
  double b_lim;  // 0.5 − 2^−20 − R: the largest certified |w' − rint(w')| before the per-element 2^−48·|w'|
};

// max_cgamma = max_c |C·γ[c]|.
inline PtfRowFast ptf_row_fast(const PtfRow& row, i64 cols, double inv_scale_next, double max_cgamma) {
  const double inv_den = 1.0 / row.den;
  const double z_max = std::fmax(256.0, max_cgamma * inv_den);
  const double r = 0x1p-48 * (std::fabs(row.sx) / static_cast<double>(cols)) * z_max + 0x1p-400;
  return PtfRowFast{inv_den, 1.0 / row.stdv, inv_scale_next, 0.5 - 0x1p-20 - r};
}

inline u64 bits_of(double v) {
  u64 b;
  std::memcpy(&b, &v, sizeof b);
  return b;
}

inline double double_of(u64 b) {
  double v;
  std::memcpy(&v, &b, sizeof v);
  return v;
}

// ptf_out(x, c, row, p) when `exact` stays 0; otherwise sets `exact` to 1 and returns an unspecified value.
// Branch-free, so a loop over a row vectorizes. Certified elements are finished in float64, exactly: M = floor(z)
// is rint(z − 0.5) (z is ≥ 2^−20 from every integer, and z − 0.5 is exact); sign(A)·M is copysign(M, A')
// (A' ≠ 0 when certified); |B| ≤ 2^51 and |M·x| < 2^26, so
// num = sign(A)·M·x + B is an exactly represented integer, num·2^−N is exact, and rint of it is the half-to-even
// rounding of num / 2^N, i.e. round_shr64(num, N).
inline i64 ptf_out_fast(int32_t x, i64 c, const PtfRowFast& rf, double sx, const PtfParams& p, int& exact) {
  const double a = p.cgamma[c] * rf.inv_den;
  const double abs_a = std::fabs(a);
  const i64 e = static_cast<i64>(bits_of(abs_a) >> 52) - 1023;  // floor(log2|A'|) for a normal A'
  const i64 n = 7 - e < 0 ? 0 : (7 - e > 31 ? 31 : 7 - e);
  const double pw = double_of(static_cast<u64>(n + 1023) << 52);      // 2^N
  const double inv_pw = double_of(static_cast<u64>(1023 - n) << 52);  // 2^−N
  const double z = abs_a * pw;
  const bool bad_a = !(abs_a >= 0x1p-1000) | !(z < 0x1p62) | !(std::fabs(z - std::rint(z)) >= 0x1p-20 + 0x1p-48 * z);
  const double fz = std::rint(z - 0.5);
  const double m = fz < 255.0 ? fz : 255.0;  // in [0, 255] for every z, NaN included
  const double q = (sx * p.gamma[c]) * rf.inv_std;
  const double w = ((p.beta[c] - q) * rf.inv_sn) * pw;
  const double wr = std::rint(w);
  const bool small_w = std::fabs(w) <= 0x1p51;  // false for NaN
  const bool bad_b = !(std::fabs(w - wr) <= rf.b_lim - 0x1p-48 * std::fabs(w)) | !small_w;
  const double b = small_w ? wr : 0.0;
  // |m·x| < 2^26 and |b| ≤ 2^51 whatever the tests say, so the conversion below is always defined.
  const double num = std::copysign(m, a) * static_cast<double>(x) + b;
  exact |= static_cast<int>(bad_a | bad_b);
  return static_cast<i64>(std::rint(num * inv_pw));
}

}  // namespace kernels
}  // namespace mnq
