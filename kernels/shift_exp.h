// I-ViT's ShiftExp: e^(x·S) with shifts and one integer division (SPEC §2.2; I-ViT, Li & Gu, ICCV 2023).
//
// Input x is an integer on scale S. With log2(e) ≈ 1.4375 = 1 + 1/2 − 1/16:
//   x  ← x + floor(x/2) − floor(x/16)      # now on the log2 scale
//   x0 = floor(−1/S)                        # −1.0 on that scale (host, float64)
//   x  ← max(x, n·x0)
//   k  = floor(x / x0)                      # integer part of −x, 0 ≤ k ≤ n when x ≤ 0
//   r  = x − x0·k                           # fractional part, in (x0, 0]
//   e  = max(floor((r − 2·x0) · 2^(n−k) / 2), 0)    # (r/2 − x0)·2^(n−k) ≈ 2^(r')·2^(n−k), scale S / 2^n
// Bounds: r − 2·x0 ∈ (|x0|, 2|x0|], so 0 < e ≤ |x0|·2^n. The host rejects |x0|·2^n ≥ 2^62.
// For x > 0 (ShiftGELU's e^(−1.702·max) when the row maximum is negative) k < 0 and e grows as 2^(n−k);
// shift_exp_capped returns min(e, cap) exactly without forming e when it would overflow.
#pragma once

#include "common.h"

namespace mnq {
namespace kernels {

struct ShiftExpConsts {
  i64 x0;      // floor(−1/S) < 0
  double inv;  // 1 / |x0| (a hint for the division; the result is corrected to be exact)
  int n;
};

// Host: constants of shift_exp for scale S (already multiplied by 1.702 for ShiftGELU).
inline ShiftExpConsts shift_exp_consts(double scale, int n) {
  const i64 x0 = static_cast<i64>(std::floor(-1.0 / scale));
  return ShiftExpConsts{x0, 1.0 / static_cast<double>(-x0), n};
}

// floor(a / b) for 0 ≤ a < 2^52, b > 0, via a float64 reciprocal and an exact correction (no integer division).
MNQ_HOST_DEVICE i64 div_floor_nonneg(i64 a, i64 b, double inv_b) {
  i64 k = static_cast<i64>(static_cast<double>(a) * inv_b);
  if (k * b > a) --k;
  if ((k + 1) * b <= a) ++k;
  return k;
}

// x + floor(x/2) − floor(x/16): x·log2(e) with shifts. |x| < 2^62.
MNQ_HOST_DEVICE i64 log2e_shift(i64 x) { return x + (x >> 1) - (x >> 4); }

// e of the header for x ≤ 0 (|x| < 2^40); 0 < e ≤ |x0|·2^n.
MNQ_HOST_DEVICE i64 shift_exp(i64 x, const ShiftExpConsts& c) {
  x = log2e_shift(x);
  const i64 lo = c.n * c.x0;
  if (x < lo) x = lo;
  const i64 k = div_floor_nonneg(-x, -c.x0, c.inv);  // floor(x/x0) for x ≤ 0, x0 < 0
  const i64 r = x - c.x0 * k;
  const i64 e = ((r - 2 * c.x0) << (c.n - k)) >> 1;
  return e > 0 ? e : 0;
}

// min(e, cap) for any x with |x| < 2^40 (also x > 0), cap < 2^62.
MNQ_HOST_DEVICE i64 shift_exp_capped(i64 x, const ShiftExpConsts& c, i64 cap) {
  if (x <= 0) {
    const i64 e = shift_exp(x, c);
    return e < cap ? e : cap;
  }
  x = log2e_shift(x);                                // > 0
  const i64 m = div_floor_nonneg(x, -c.x0, c.inv);   // floor(x / |x0|)
  const i64 k = (m * (-c.x0) == x) ? -m : -m - 1;    // floor(x / x0) < 0 ... = −ceil(x / |x0|)
  const i64 r = x - c.x0 * k;                        // in (x0, 0]
  const i64 shift = c.n - k;                         // > n
  if (shift >= 62) return cap;                       // (r − 2·x0) ≥ 1, so e ≥ 2^61 > cap
  const i128 e = (static_cast<i128>(r - 2 * c.x0) << shift) >> 1;
  return e < cap ? static_cast<i64>(e) : cap;
}

}  // namespace kernels
}  // namespace mnq
