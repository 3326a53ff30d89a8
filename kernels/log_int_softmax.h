// FQ-ViT Log-Int-Softmax (SPEC §2.3; Lin et al., FQ-ViT, IJCAI 2022): the softmax probability as a power of two
// 2^−code, found from I-BERT's i-exp without dividing per element.
//
// Row of integer scores q (scale S, per tensor), n = 30:
//   x    = q − max_row(q)                 # ≤ 0, |x| < 2^33 (inputs are within int32)
//   e    = ibert_exp(x)                   # iexp.h, no 16-bit requant; 0 ≤ e ≤ e0 = c·2^30 < 2^63
//   s    = sum_row(e)                     # < cols·2^63 ≤ 2^126 (cols < 2^63): unsigned 128-bit
//   v    = round(s / e)                   # half to even; v ≥ 1 since s ≥ e
//   t    = floor(log2 v) + [v − 2^floor(log2 v) ≥ 2^(floor(log2 v) − 1)]     # nearest power of two, linearly
//   code = min(t, 2^b − 1) ; masked = (e == 0) or (t ≥ 2^b)
// v is never formed. t counts the thresholds K_j that v reaches, j ≥ 1: K_1 = 2 and K_j = 3·2^(j−2) (the
// midpoints 1.5·2^(j−1), rounded up to an integer). Because v = round(s/e) half to even, v ≥ K is decided
// exactly on the rational s/e (lis_reaches):
//   j = 1: v ≥ 2 ⟺ s/e ≥ 3/2 (the tie 1.5 rounds to 2)         ⟺ 2s ≥ 3e
//   j = 2: v ≥ 3 ⟺ s/e > 5/2 (the tie 2.5 rounds to 2)         ⟺ 2s > 5e
//   j ≥ 3: K even, v ≥ K ⟺ s/e ≥ K − 1/2                       ⟺ 2s + e ≥ 3e·2^(j−1) ⟺ (2s + e) >> (j−1) ≥ 3e
// 2s + e < 2^127 + 2^63 and 5e < 2^66 fit unsigned 128-bit (the shifted form never overflows); for s < 2^61 they fit
// 64 bits, which is the case of most rows (e0 < 2^51.5 for S ≥ 1e-3, so rows of up to 770 tokens).
// The window: let y = s/e and f = floor(log2 y). Then 2^f ≤ floor(y) ≤ v ≤ ceil(y) ≤ 2^(f+1), so t ∈ [f, f + 2];
// and t0 = floor(log2 s) − floor(log2 e) ∈ {f, f + 1}, so t ∈ [t0 − 1, t0 + 2]: every threshold below t0 is
// reached and t = t0 − 1 + [v ≥ K_t0] + [v ≥ K_(t0+1)] + [v ≥ K_(t0+2)]. Three exact tests, no loop, no division.
#pragma once

#include <cstring>

#include "common.h"
#include "iexp.h"

namespace mnq {
namespace kernels {

struct LogIntSoftmaxConsts {
  IbertExpConsts ex;
  int bits;  // code bits b, 2 ≤ b ≤ 8
};

// dev_scale: the CUDA QAT launch's scale in device memory (see ShiftmaxParams); nullptr: host constants.
struct LogIntSoftmaxParams {
  i64 rows;  // number of rows
  i64 cols;  // row length (last dim)
  LogIntSoftmaxConsts c;
  i64 lo, hi;  // declared input range (int32)
  const double* dev_scale = nullptr;
  int bits = 0;  // for dev_scale
};

struct LisCode {
  int code;     // min(t, 2^b − 1)
  bool masked;  // probability set to 0
};

MNQ_HOST_DEVICE LogIntSoftmaxConsts log_int_softmax_consts(double scale, int bits) {
  return LogIntSoftmaxConsts{ibert_exp_consts(scale, kIbertExpN), bits};
}

// The constants of a dev_scale launch, from the host's functions; false outside i-exp's scale range.
template <class In>
MNQ_HOST_DEVICE bool log_int_softmax_device_consts(LogIntSoftmaxParams& p, In& in) {
  const double s = *p.dev_scale;
  if (!ibert_exp_scale_ok(s)) return false;
  p.c = log_int_softmax_consts(s, p.bits);
  in.set_inv_scale(1.0 / s);
  return true;
}

// Number of significant bits of v (0 for v = 0); the 64-bit form is common.h's.
MNQ_HOST_DEVICE int bit_length(u128 v) {
  const u64 hi = static_cast<u64>(v >> 64);
  return hi != 0 ? 64 + bit_length(hi) : bit_length(static_cast<u64>(v));
}

// round(s / e) ≥ K_j (the table of the header; true for j ≤ 0) in the unsigned word U (u64 or u128), exact when
// 2s + e and 5e fit U: for 1 ≤ e ≤ s, s < 2^61 with u64 and s < 2^126 with u128. j ≤ bit_length(s) + 1 < bits of U.
template <class U>
MNQ_HOST_DEVICE bool lis_reaches(U s, U e, int j) {
  if (j <= 0) return true;
  if (j == 1) return 2 * s >= 3 * e;
  if (j == 2) return 2 * s > 5 * e;
  return ((2 * s + e) >> (j - 1)) >= 3 * e;
}

// t of the header (the window argument above), in the word U under lis_reaches' bounds. t0 ≤ bit_length(s) − 1,
// so the shifts stay below bit_length(s) + 1 ≤ 127. The common case t0 ≥ 3 (v ≥ 4) needs only the general test.
template <class U>
MNQ_HOST_DEVICE int lis_exponent_word(U s, U e) {
  const int t0 = bit_length(s) - bit_length(e);
  if (t0 >= 3) {
    const U a = 2 * s + e;
    const U e3 = 3 * e;
    return t0 - 1 + static_cast<int>((a >> (t0 - 1)) >= e3) + static_cast<int>((a >> t0) >= e3) +
           static_cast<int>((a >> (t0 + 1)) >= e3);
  }
  return t0 - 1 + static_cast<int>(lis_reaches(s, e, t0)) + static_cast<int>(lis_reaches(s, e, t0 + 1)) +
         static_cast<int>(lis_reaches(s, e, t0 + 2));
}

// t for 1 ≤ e ≤ s < 2^126: 64-bit arithmetic when the row sum allows it (s < 2^61, see the header), 128-bit
// otherwise. Both give the same t; the branch goes the same way for a whole row.
MNQ_HOST_DEVICE int lis_exponent(u128 s, i64 e) {
  constexpr u128 kSmall = static_cast<u128>(1) << 61;
  if (s < kSmall) return lis_exponent_word<u64>(static_cast<u64>(s), static_cast<u64>(e));
  return lis_exponent_word<u128>(s, static_cast<u128>(e));
}

// code and mask of an element with exponential e in a row summing to s.
MNQ_HOST_DEVICE LisCode lis_code(u128 s, i64 e, const LogIntSoftmaxConsts& c) {
  const int top = (1 << c.bits) - 1;
  if (e == 0) return LisCode{top, true};
  const int t = lis_exponent(s, e);
  return LisCode{t < top ? t : top, t > top};
}

// Integer output: uint8 code [rows, cols] and bool mask [rows, cols].
// Vector-loop form for rows with s < 2^61 (most rows, see above): the same three threshold tests written
// branch-free, with bit_length(s) hoisted per row. Requires 1 ≤ e ≤ s < 2^61, so 2s + e, 3e and 5e fit 64 bits;
// shifts past 63 bits are clamped (a >> 63 ≤ 1 < 3e, which is the right answer there).
MNQ_HOST_DEVICE int lis_reaches_u64(u64 s, u64 e, int j) {
  const u64 a = 2 * s + e;
  const int sh = j > 1 ? (j - 1 < 63 ? j - 1 : 63) : 0;
  const int general = static_cast<int>((a >> sh) >= 3 * e);
  const int j1 = static_cast<int>(2 * s >= 3 * e);
  const int j2 = static_cast<int>(2 * s > 5 * e);
  return static_cast<int>(j <= 0) | (static_cast<int>(j == 1) & j1) | (static_cast<int>(j == 2) & j2) |
         (static_cast<int>(j >= 3) & general);
}

MNQ_HOST_DEVICE int lis_exponent_u64(u64 s, int bit_length_s, u64 e) {
#if defined(__CUDA_ARCH__)
  const int t0 = bit_length_s - (64 - __clzll(static_cast<long long>(e)));
#else
  const int t0 = bit_length_s - (64 - __builtin_clzll(e));  // e ≥ 1: no zero test, so vector loops stay branch-free
#endif
  return t0 - 1 + lis_reaches_u64(s, e, t0) + lis_reaches_u64(s, e, t0 + 1) + lis_reaches_u64(s, e, t0 + 2);
}

// The code of an element from its exponent t (e > 0) or of e = 0. Written with int masks and min, no branch, so
// the CPU code loop vectorizes: top = 2^b − 1 has all of its b low bits set and 0 ≤ min(t, top) ≤ top, so OR-ing
// top in (when zero) gives top.
MNQ_HOST_DEVICE LisCode lis_code_from_t(int t, int zero, const LogIntSoftmaxConsts& c) {
  const int top = (1 << c.bits) - 1;
  const int clipped = t < top ? t : top;  // t ≥ 0: v ≥ 1
  return LisCode{clipped | (-zero & top), static_cast<bool>(zero | static_cast<int>(t > top))};
}

struct LisCodeOut {
  static constexpr bool kPropagatesNaN = false;  // codes report a bad input through the flag (kernels/io.h)
  uint8_t* code;
  uint8_t* mask;  // the bool mask tensor's bytes (0 / 1): a byte store, which CPU loops vectorize
  MNQ_HOST_DEVICE void store_nan(i64) const {}
  MNQ_HOST_DEVICE void store(i64 i, LisCode v) const {
    code[i] = static_cast<uint8_t>(v.code);
    mask[i] = static_cast<uint8_t>(v.masked);
  }
};

// 2^−k as float32 for 0 ≤ k ≤ 255, exact, built from its bits without a branch (so CPU loops vectorize): a normal
// float for k ≤ 126 (biased exponent 127 − k, mantissa 0), the subnormal with the single mantissa bit 149 − k for
// 127 ≤ k ≤ 149, and 0 below the smallest subnormal 2^−149 (the float32 rounding of 2^−150 is a tie, to the even 0).
MNQ_HOST_DEVICE float pow2_neg_f32(int k) {
  const uint32_t normal = static_cast<uint32_t>(127 - (k & 127)) << 23;  // k & 127 = k where it is selected
  const uint32_t sub = (k <= 149 ? 1u : 0u) << ((149 - k) & 31);
  const uint32_t bits = k <= 126 ? normal : sub;
#if defined(__CUDA_ARCH__)
  return __uint_as_float(bits);
#else
  float v;
  std::memcpy(&v, &bits, sizeof v);
  return v;
#endif
}

// QAT output: the value 2^−code (0 where masked), as float32.
struct LisValueOut {
  static constexpr bool kPropagatesNaN = true;
  float* p;
  MNQ_HOST_DEVICE void store_nan(i64 i) const { p[i] = NAN; }
  MNQ_HOST_DEVICE void store(i64 i, LisCode v) const { p[i] = v.masked ? 0.0f : pow2_neg_f32(v.code); }
};

}  // namespace kernels
}  // namespace mnq
