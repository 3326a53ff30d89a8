// Quantizers (SPEC §1): the symmetric quantizer, PtfAct's power-of-two-factor quantizer and its calibration
// statistic, and dyadic requantization with the fused residual add.
//
//   quantize:  q = clamp(round(x / S_c), lo, hi), lo = −2^(b−1), hi = 2^(b−1) − 1, b ≤ 32.
//              x / S_c is one IEEE float64 division (x float32 is exact in float64), round is rint (half to
//              even), so host and device agree. NaN is reported (never cast); ±inf clamps to lo/hi.
//              S_c is one scale per channel c = (i / inner) % C (C = 1: per tensor). PtfAct is the same with
//              S_c = s_base·2^α_c.
//   requant:   q = clamp(requant(q_in, S_in,c/S) + requant(q_id, S_id,c/S), lo, hi) (common.h requant: exact,
//              saturating at int64; the sum is formed in 128 bits, so the clamp is exact for any inputs).
//   alpha err: err[c][a] = Σ_rows (x − q_a·S_a)², S_a = s_base·2^a, a = 0..3, summed in row order in float64
//              (same order on CPU and GPU, so the statistic and the α it selects agree bit for bit).
#pragma once

#include "common.h"

namespace mnq {
namespace kernels {

// Element layout of a per-channel quantity along one axis: channel of flat index i is (i / inner) % C.
struct ChannelLayout {
  i64 C;      // channels (1: per tensor)
  i64 inner;  // product of the dims after the axis
  MNQ_HOST_DEVICE i64 channel(i64 i) const { return C == 1 ? 0 : (i / inner) % C; }
};

struct QuantizeParams {
  i64 numel;
  ChannelLayout layout;
  i64 lo, hi;  // clamp range of the codes
};

struct RequantParams {
  i64 numel;
  ChannelLayout in_layout;  // channels of scale_in (last dim)
  ChannelLayout id_layout;  // channels of identity_scale (last dim); unused without a residual
  i64 lo, hi;
  bool has_identity;
};

// The requant multiplier of one channel computed on the device: dyadic(s / s_out) when both scales are valid and
// the ratio is finite, else the marker k = kNoDyadic (the kernel then has no code for that channel). The host path
// (csrc/ops/quant.cpp) rejects invalid scales before it calls dyadic on the same ratio, so valid scales give the
// same (m, k) on both.
constexpr i64 kNoDyadic = -(static_cast<i64>(1) << 40);
MNQ_HOST_DEVICE void requant_dyadic(double s, double s_out, i64& m, i64& k) {
  const double r = s / s_out;
  if (!valid_scale(s, true) || !valid_scale(s_out, false) || r - r != 0.0) {
    m = 0;
    k = kNoDyadic;
    return;
  }
  const Dyadic d = dyadic(r);
  m = d.m;
  k = d.k;
}

// round(x / s) clamped to [lo, hi]; false for NaN.
MNQ_HOST_DEVICE bool quantize_code(float x, double s, i64 lo, i64 hi, i64& q) {
  const double v = rint(static_cast<double>(x) / s);
  if (v != v) return false;
  q = v <= static_cast<double>(lo) ? lo : (v >= static_cast<double>(hi) ? hi : static_cast<i64>(v));
  return true;
}

// clamp(requant(q, d) [+ requant(q_id, d_id)], lo, hi), exact.
MNQ_HOST_DEVICE i64 requant_code(i64 q, Dyadic d, i64 lo, i64 hi) {
  return clamp64(requant(q, d), lo, hi);
}
MNQ_HOST_DEVICE i64 requant_code(i64 q, Dyadic d, i64 q_id, Dyadic d_id, i64 lo, i64 hi) {
  const i128 sum = static_cast<i128>(requant(q, d)) + requant(q_id, d_id);
  return sum < lo ? lo : (sum > hi ? hi : static_cast<i64>(sum));
}

// requant(q, m / 2^k) in 64 bits, for |q| < 2^31 and 1 ≤ k ≤ 62: |q·m| < 2^62, so the product, its floor and the
// remainder all fit int64 and the result equals requant() exactly.
// Round half to even without comparisons: with p = fl·2^k + rem (rem in [0, 2^k)), h = 2^(k−1) and o = fl & 1,
// the increment is [rem > h or (rem = h and o)] = ⌊(rem + o − 1 + h) / 2^k⌋ (the numerator lies in [−1, 2^(k+1))),
// and ⌊(x + h) / 2h⌋ = ⌊(⌊x / h⌋ + 1) / 2⌋, i.e. two arithmetic shifts. Only multiplies, adds and variable shifts:
// GCC vectorizes the CPU fast path with this form (it found no vector type for the compare-and-select form).
MNQ_HOST_DEVICE i64 requant64(i64 q, i64 m, i64 k) {
  const i64 p = q * m;
  const i64 fl = p >> k;
  const i64 rem = p - (fl << k);
  return fl + ((((rem + (fl & 1) - 1) >> (k - 1)) + 1) >> 1);
}

constexpr i64 kFastCodeLimit = static_cast<i64>(1) << 31;  // |q| below this takes requant64

// requant(q, m / 2^k) in 64-bit pieces for wider codes and smaller multipliers, |q| < 2^62, |m| ≤ 2^31 and
// 31 ≤ k ≤ 92 (multipliers below 1, down to 2^−92: I-BERT's GELU output, whose per-channel scale is the fc1
// accumulator's times the i-erf scale, requantized to 8 bits). With q = qh·2^31 + ql (ql in [0, 2^31)) and
// b = ql·m = bh·2^31 + bl: q·m = t·2^31 + bl where t = qh·m + bh, |t| < 2^63. With j = k − 31 in [0, 61]:
//   fl = ⌊q·m / 2^k⌋ = ⌊t / 2^j⌋ (bl / 2^31 < 1 cannot carry), remainder rem = r·2^31 + bl with r = t − fl·2^j;
//   the increment of requant64, ⌊(⌊x / 2^(k−1)⌋ + 1) / 2⌋ with x = rem + o − 1 (o = fl & 1), where
//   ⌊x / 2^(k−1)⌋ = ⌊(2r + ⌊(bl + o − 1) / 2^30⌋) / 2^j⌋ (divide by 2^30 first: r·2^31 is a multiple of it),
// so no intermediate exceeds 2^63 (rem itself may, for k > 62). Multiplies, adds and shifts only: vectorizes.
MNQ_HOST_DEVICE i64 requant64_wide(i64 q, i64 m, i64 k) {
  constexpr i64 kLow = (static_cast<i64>(1) << 31) - 1;
  const i64 b = (q & kLow) * m;
  const i64 t = (q >> 31) * m + (b >> 31);
  const i64 j = k - 31;
  const i64 fl = t >> j;
  const i64 z = 2 * (t - (fl << j)) + (((b & kLow) + (fl & 1) - 1) >> 30);
  return fl + (((z >> j) + 1) >> 1);
}
constexpr i64 kWideMaxShift = 92;  // the largest k requant64_wide takes

constexpr i64 kWideCodeLimit = static_cast<i64>(1) << 62;  // |q| below this takes requant64_wide

// Squared quantization error of x at scale s (PtfAct calibration). NaN for a NaN x (the channel's sums become NaN,
// reported without a host read), +inf for ±inf.
MNQ_HOST_DEVICE double quant_sq_error(float x, double s, i64 lo, i64 hi) {
  i64 q = 0;
  if (!quantize_code(x, s, lo, hi, q)) return static_cast<double>(x);  // NaN
  const double d = static_cast<double>(x) - static_cast<double>(q) * s;
  return d * d;
}

// A code or its dequantized value (fake quant: q·S rounded once to float32). An input without a code (NaN, or
// a float value beyond ±2^62 codes) is an error for the integer ops (kPropagatesNaN = false: reported) and a NaN
// for the fake-quant ops (no error flag, hence no device sync on the QAT hot path; the next non-linear op or the
// loss reports it).
struct CodeOut {
  static constexpr bool kPropagatesNaN = false;
  int32_t* p;
  MNQ_HOST_DEVICE void store(i64 i, i64 q, double) const { p[i] = static_cast<int32_t>(q); }
  MNQ_HOST_DEVICE void store_nan(i64) const {}
};
struct FakeOut {
  static constexpr bool kPropagatesNaN = true;
  float* p;
  MNQ_HOST_DEVICE void store(i64 i, i64 q, double s) const { p[i] = static_cast<float>(static_cast<double>(q) * s); }
  MNQ_HOST_DEVICE void store_nan(i64 i) const { p[i] = NAN; }
};

// An input without a code: a NaN output for fake quant, else false (the caller reports it).
template <class Out>
MNQ_HOST_DEVICE bool no_code(const Out& out, i64 i) {
  if (Out::kPropagatesNaN) {
    out.store_nan(i);
    return true;
  }
  return false;
}

// Per-channel dyadic multipliers as two arrays (m, k), length = the layout's C.
struct DyadicArray {
  const i64* m;
  const i64* k;
  MNQ_HOST_DEVICE Dyadic at(i64 c) const { return Dyadic{m[c], static_cast<int>(k[c])}; }
  MNQ_HOST_DEVICE bool valid(i64 c) const { return k[c] != kNoDyadic; }
};

// Reads the input codes of a requantization: integer codes, or float values x = q·S_c whose code is recovered as
// round(x / S_c) (fake-quant QAT path; exact for |q| < 2^23). Reports NaN and |code| > 2^62.
template <typename T>
struct RequantIntIn {
  const T* p;
  MNQ_HOST_DEVICE bool load(i64 i, i64, i64& q) const {
    q = static_cast<i64>(p[i]);
    return true;
  }
};
struct RequantFloatIn {
  const float* p;
  const double* scale;  // per channel
  MNQ_HOST_DEVICE bool load(i64 i, i64 c, i64& q) const {
    const double v = rint(static_cast<double>(p[i]) / scale[c]);
    if (!(v >= -4611686018427387904.0 && v <= 4611686018427387904.0)) return false;
    q = static_cast<i64>(v);
    return true;
  }
};

}  // namespace kernels
}  // namespace mnq
