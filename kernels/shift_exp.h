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

// Constants of shift_exp for scale S (already multiplied by 1.702 for ShiftGELU). Host, and device for the CUDA
// QAT path (plain IEEE division and floor: the same bits).
MNQ_HOST_DEVICE ShiftExpConsts shift_exp_consts(double scale, int n) {
  const i64 x0 = static_cast<i64>(floor(-1.0 / scale));
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

// ---- 32-bit form, for callers that guarantee |x0|·2^n < 2^31 (Shiftmax validates it) ----
// Every intermediate then fits 32 bits, so CPU loops vectorize and GPUs use 32-bit ALUs; the result equals
// shift_exp exactly. The input must be pre-clamped to x ≥ x_lo, where x_lo is chosen so that
// log2e_shift(x_lo) ≤ n·x0: since log2e_shift is non-decreasing, clamping there first does not change the result,
// and it bounds |x| below 2^31/1.43 whatever the input range was.
//   t = max(log2e_shift(x), n·x0) ∈ [n·x0, 0]       (|n·x0| ≤ |x0|·2^n/2 < 2^30)
//   k = floor(−t / |x0|) ∈ [0, n]: a float32 estimate corrected by one step each way ((k+1)·|x0| ≤ 2^n·|x0|)
//   v = r − 2·x0 ∈ (|x0|, 2|x0|], e = (v·2^(n−k)) / 2 with v·2^(n−k) ≤ 2|x0|·2^n < 2^32 in uint32
struct ShiftExp32 {
  int32_t ax0;   // |x0|
  int32_t nx0;   // n·x0
  int32_t x_lo;  // pre-clamp bound (see above)
  float inv;     // 1 / |x0| (estimate only)
  int n;
};

MNQ_HOST_DEVICE ShiftExp32 shift_exp32_consts(const ShiftExpConsts& c) {
  i64 x_lo = static_cast<i64>(floor(static_cast<double>(c.n * c.x0 - 1) / 1.4375)) - 2;
  while (log2e_shift(x_lo) > c.n * c.x0) --x_lo;
  return ShiftExp32{static_cast<int32_t>(-c.x0), static_cast<int32_t>(c.n * c.x0), static_cast<int32_t>(x_lo),
                    1.0f / static_cast<float>(-c.x0), c.n};
}

// Clamp of x = q − m (m ≥ q, both int32) to [x_lo, 0] without forming the possibly 33-bit difference.
MNQ_HOST_DEVICE int32_t shift_exp32_input(int32_t q, int32_t m, const ShiftExp32& c) {
  const uint32_t d = static_cast<uint32_t>(m) - static_cast<uint32_t>(q);  // = m − q exactly (in [0, 2^32))
  const uint32_t lim = static_cast<uint32_t>(-c.x_lo);
  return -static_cast<int32_t>(d < lim ? d : lim);
}

MNQ_HOST_DEVICE int32_t shift_exp32(int32_t x, const ShiftExp32& c) {
  int32_t t = x + (x >> 1) - (x >> 4);
  t = t < c.nx0 ? c.nx0 : t;
  const int32_t a = -t;
  int32_t k = static_cast<int32_t>(static_cast<float>(a) * c.inv);
  k -= (k * c.ax0 > a) ? 1 : 0;
  k += ((k + 1) * c.ax0 <= a) ? 1 : 0;
  const uint32_t v = static_cast<uint32_t>(a - c.ax0 * k);  // −r ∈ [0, |x0|)
  const uint32_t w = 2u * static_cast<uint32_t>(c.ax0) - v;      // r − 2·x0
  return static_cast<int32_t>((w << (c.n - k)) >> 1);
}

}  // namespace kernels
}  // namespace mnq
