// Exact integer helpers shared by every mnq kernel (SPEC §0).
//
// Everything here is plain C++ usable on the host and, compiled by nvcc, on the device. It never includes
// torch, ATen or c10. Conventions (SPEC §0):
//   floor_div(a, b)   floor(a / b) for integers, also for negatives (C++ '/' truncates toward zero instead)
//   shr(a, k)         floor(a / 2^k) (arithmetic shift; k ≥ 64 gives 0 or −1)
//   round_shr(a, k)   round-half-to-even of the exact rational a / 2^k
//   dyadic(r)         r ≈ m / 2^k with a 31-bit mantissa m, the authors' batch_frexp rounding
//   requant(q, d)     round-half-to-even of q·m / 2^k computed exactly with 128-bit intermediates
//   isqrt(v)          floor(√v) exactly, for 64- and 128-bit unsigned v
//   bit_length(v)     the number of significant bits of v
//   Divider64         floor(n / d) for a fixed d by a multiply-high, without a 64-bit division (CUDA index math)
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define MNQ_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define MNQ_HOST_DEVICE inline
#endif

namespace mnq {
namespace kernels {

using i64 = int64_t;
using u64 = uint64_t;
using i128 = __int128;
using u128 = unsigned __int128;

constexpr i64 kInt31Max = 2147483647;  // 2^31 − 1
constexpr i64 kInt64Max = INT64_MAX;
constexpr i64 kInt64Min = INT64_MIN;

// floor(a / b), b ≠ 0.
MNQ_HOST_DEVICE i64 floor_div(i64 a, i64 b) {
  i64 q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

MNQ_HOST_DEVICE i128 floor_div128(i128 a, i128 b) {
  i128 q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

// floor(a / 2^k) for k ≥ 0.
MNQ_HOST_DEVICE i64 shr(i64 a, int k) { return k >= 64 ? (a < 0 ? -1 : 0) : (a >> k); }

// Round-half-to-even of a / 2^k, k ≥ 0, exact. |a| < 2^126.
MNQ_HOST_DEVICE i128 round_shr(i128 a, int k) {
  if (k == 0) return a;
  if (k >= 127) return 0;  // |a| < 2^126 < 2^(k−1): rounds to 0, never a tie
  const i128 fl = a >> k;  // arithmetic: floor
  const i128 rem = a - (fl << k);  // in [0, 2^k)
  const i128 half = static_cast<i128>(1) << (k - 1);
  if (rem > half || (rem == half && (fl & 1))) return fl + 1;
  return fl;
}

// Round-half-to-even of the exact rational a / b, b > 0.
MNQ_HOST_DEVICE i128 round_div(i128 a, i128 b) {
  const i128 fl = floor_div128(a, b);
  const i128 rem2 = 2 * (a - fl * b);  // twice the remainder, in [0, 2b)
  if (rem2 > b || (rem2 == b && (fl & 1))) return fl + 1;
  return fl;
}

MNQ_HOST_DEVICE i64 clamp64(i64 v, i64 lo, i64 hi) { return v < lo ? lo : (v > hi ? hi : v); }

MNQ_HOST_DEVICE i64 saturate64(i128 v) {
  return v > static_cast<i128>(kInt64Max) ? kInt64Max : (v < static_cast<i128>(kInt64Min) ? kInt64Min : static_cast<i64>(v));
}

// A dyadic multiplier m / 2^k (SPEC §0). m carries the sign of r; |m| ∈ [2^30, 2^31).
struct Dyadic {
  i64 m;
  int k;
};

// dyadic(r), r ≠ 0 finite: (mant, exp) = frexp(|r|), m = floor(mant·2^31 + 1/2), k = 31 − exp; m = 2^31 → 2^30, k−1.
// Host and device: frexp, fabs and floor are exact and mant·2^31 + 1/2 is exact (mant has 53 bits, the sum < 2^31
// needs 53), so the result does not depend on the compiler (the CUDA requant computes it on the device from
// device scales, kernels/quant.cuh).
MNQ_HOST_DEVICE Dyadic dyadic(double r) {
  int exp = 0;
  const double mant = frexp(fabs(r), &exp);
  i64 m = static_cast<i64>(floor(mant * 2147483648.0 + 0.5));
  int k = 31 - exp;
  if (m == (static_cast<i64>(1) << 31)) {
    m = static_cast<i64>(1) << 30;
    k -= 1;
  }
  return Dyadic{r < 0 ? -m : m, k};
}

// A scale the CUDA fake-quant path uses without a host check (reading it would synchronize): finite and positive,
// or finite and nonzero where negative scales are allowed (requant's input scales). s − s is 0 exactly for a
// finite s and NaN for ±inf and NaN. An invalid scale gives NaN outputs (codes: reported) instead of an error.
MNQ_HOST_DEVICE bool valid_scale(double s, bool allow_negative = false) {
  return s - s == 0.0 && (allow_negative ? s != 0.0 : s > 0.0);
}

// round(q · m / 2^k), exact; saturates to int64 when the exact result does not fit (only possible for k < 0,
// i.e. multipliers ≥ 2^31; callers clamp to a bit range afterwards, so saturation keeps the clamp exact).
MNQ_HOST_DEVICE i64 requant(i64 q, Dyadic d) {
  i128 p = static_cast<i128>(q) * d.m;  // |p| < 2^94
  if (d.k >= 0) return saturate64(round_shr(p, d.k));
  if (p == 0) return 0;
  if (-d.k > 32) return p > 0 ? kInt64Max : kInt64Min;
  return saturate64(p << (-d.k));  // |p·2^32| < 2^126
}

// Same, for a 128-bit value (I-BERT's 2^62-sized exponentials times a 31-bit mantissa), |v| < 2^94.
MNQ_HOST_DEVICE i64 requant128(i128 v, Dyadic d) {
  const i128 p = v * d.m;  // |p| < 2^125
  if (d.k >= 0) return saturate64(round_shr(p, d.k));
  if (p == 0) return 0;
  return p > 0 ? kInt64Max : kInt64Min;  // only reachable for |v| ≥ 1 and k < 0: callers never need it
}

// floor(√v), exact. sqrt in double is correctly rounded on host and device; the loops fix the last unit.
MNQ_HOST_DEVICE u64 isqrt64(u64 v) {
  if (v == 0) return 0;
  u64 r = static_cast<u64>(sqrt(static_cast<double>(v)));
  while (r > 0 && static_cast<u128>(r) * r > v) --r;
  while (static_cast<u128>(r + 1) * (r + 1) <= v) ++r;
  return r;
}

// floor(√v) for v < 2^126 (so the root is < 2^63).
MNQ_HOST_DEVICE u64 isqrt128(u128 v) {
  if (v == 0) return 0;
  const double approx = static_cast<double>(static_cast<u64>(v >> 64)) * 18446744073709551616.0 +
                        static_cast<double>(static_cast<u64>(v));
  u64 r = static_cast<u64>(sqrt(approx));
  while (r > 0 && static_cast<u128>(r) * r > v) --r;
  while (static_cast<u128>(r + 1) * (r + 1) <= v) ++r;
  return r;
}

// Number of significant bits of v (0 for v = 0): v < 2^bit_length(v).
MNQ_HOST_DEVICE int bit_length(u64 v) {
#if defined(__CUDA_ARCH__)
  return 64 - __clzll(static_cast<long long>(v));
#else
  return v == 0 ? 0 : 64 - __builtin_clzll(v);
#endif
}

// The high 64 bits of the 128-bit product a·b.
MNQ_HOST_DEVICE u64 mulhi64(u64 a, u64 b) {
#if defined(__CUDA_ARCH__)
  return __umul64hi(a, b);
#else
  return static_cast<u64>((static_cast<u128>(a) * b) >> 64);
#endif
}

// Division by a divisor fixed for a whole kernel, 1 ≤ d < 2^63, exact for every n < 2^64 (Granlund & Montgomery,
// "Division by invariant integers using multiplication", PLDI 1994, Fig. 4.1). GPUs have no 64-bit divide: `/` and
// `%` on 64-bit operands call a ~70-instruction routine, which an elementwise kernel would pay per element. Host:
//   l = ceil(log2 d), m = floor(2^64·(2^l − d) / d) + 1   (m < 2^64 when d is not a power of two; 1 when it is)
// device: t = mulhi(m, n), floor(n / d) = (t + ((n − t) >> min(l, 1))) >> max(l − 1, 0)   (t ≤ n: no overflow).
struct Divider64 {
  u64 d;
  u64 m;
  int s1;  // min(l, 1)
  int s2;  // max(l − 1, 0)
};

inline Divider64 divider64(u64 d) {  // host
  const int l = bit_length(d - 1);  // ceil(log2 d); 0 for d = 1
  const u128 m = ((((static_cast<u128>(1) << l) - d) << 64) / d) + 1;
  return Divider64{d, static_cast<u64>(m), l < 1 ? l : 1, l > 1 ? l - 1 : 0};
}

MNQ_HOST_DEVICE u64 divide(u64 n, const Divider64& v) {
  const u64 t = mulhi64(v.m, n);
  return (t + ((n - t) >> v.s1)) >> v.s2;
}

MNQ_HOST_DEVICE u64 modulo(u64 n, const Divider64& v) { return n - divide(n, v) * v.d; }

// Saturating add of non-negative values at cap: min(a + b, cap) for 0 ≤ a, b ≤ cap < 2^62.
MNQ_HOST_DEVICE i64 sat_add(i64 a, i64 b, i64 cap) {
  const i64 s = a + b;
  return s > cap ? cap : s;
}

}  // namespace kernels
}  // namespace mnq
