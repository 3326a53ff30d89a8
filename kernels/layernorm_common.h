// Pieces shared by the three integer LayerNorms (SPEC §4): element access with the channel index, the affine
// output stage of I-LayerNorm / I-BERT LayerNorm, and small exact helpers.
//
// Element access. Same contract as io.h, with the channel c (the index in the last dim) passed alongside the
// flat index i, because LayerNorm outputs (and FQ-ViT's PTF inputs) have per-channel scales:
//   load(i, c, lo, hi, bad)  the integer code of element i, or round(x / S[c]) for float input (io.h's FloatIn
//                            rounding); a code outside [lo, hi] sets `bad` to 1 and loads as 0, so the row math
//                            never sees an out-of-range value (which could overflow its int64 bounds); the caller
//                            discards the output when `bad` is set. (An int OR-ed per element, rather than io.h's
//                            bool AND-ed, because compilers vectorize the former reduction and not the latter.)
//   store(i, c, v)           the integer code v, or the float32 value v·S_out[c]
//
// Affine stage of §4.1/§4.2: with Sy = √C / 2^30 (the scale of yn ≈ (y/σ_sum)·2^30, σ_sum = √(Σy²) = √C·σ),
//   bias_int[c] = floor((β[c]/γ[c]) / Sy),  out = yn + bias_int[c],  S_out[c] = Sy·γ[c]
// so out·S_out[c] ≈ γ[c]·(y/σ) + β[c]. bias_int and S_out are computed on the host in float64; the host rejects
// |bias_int| > 2^62, so with |yn| ≤ 2^31 the int64 sum cannot overflow.
#pragma once

#include "common.h"
#include "io.h"

namespace mnq {
namespace kernels {

constexpr i64 kLnMaxCols = i64(1) << 16;     // C ≤ 2^16 for every LayerNorm: all bounds below assume it
constexpr i64 kLnMaxBiasInt = i64(1) << 62;  // |bias_int| ≤ 2^62 (host check)

// Every LayerNorm's declared input range contains the int16 range (each op header static_asserts it), so codes of
// an 8- or 16-bit dtype need no range check.
constexpr i64 kLnInt16Lo = -(i64(1) << 15);
constexpr i64 kLnInt16Hi = (i64(1) << 15) - 1;

// set_inv_scale / set_scale / store_nan / kPropagatesNaN: as io.h's (the CUDA QAT launches take 1/S and S_out from
// device memory and write NaN rows instead of reporting).
template <typename T>
struct LnIntIn {
  const T* p;
  MNQ_HOST_DEVICE void set_inv_scale(double) {}
  MNQ_HOST_DEVICE i64 load(i64 i, i64 /*c*/, i64 lo, i64 hi, int& bad) const {
    const i64 v = static_cast<i64>(p[i]);
    if constexpr (sizeof(T) <= 2) return v;
    const bool in = (v >= lo) & (v <= hi);
    bad |= !in;
    return in ? v : 0;
  }
};

// q = round(x / S) as io.h's FloatIn computes it, rint(x · (1/S)) in float64, written without branches so that
// loops vectorize; a NaN or a code outside [lo, hi] sets `bad` and loads as 0 (never converting it). The code is
// converted through int32 (exact: the LayerNorms' code ranges [lo, hi] are 22 bits at most), which AVX2 does in
// vector form (VCVTTPD2DQ) where a float64 → int64 conversion kept the loop scalar (I-LayerNorm's QAT form on the
// AVX2 path 7.8× the float op, its int form 2.6×).
MNQ_HOST_DEVICE i64 ln_float_code(float x, double inv_scale, i64 lo, i64 hi, int& bad) {
  const double v = rint(static_cast<double>(x) * inv_scale);
  const bool in = (v >= static_cast<double>(lo)) & (v <= static_cast<double>(hi));
  bad |= !in;
  return static_cast<int32_t>(in ? v : 0.0);
}

// Float input on one per-tensor scale (I-LayerNorm, I-BERT LayerNorm QAT).
struct LnFloatIn {
  const float* p;
  double inv_scale;  // 1 / S
  MNQ_HOST_DEVICE void set_inv_scale(double v) { inv_scale = v; }
  MNQ_HOST_DEVICE i64 load(i64 i, i64 /*c*/, i64 lo, i64 hi, int& bad) const {
    return ln_float_code(p[i], inv_scale, lo, hi, bad);
  }
};

// Float input on per-channel scales (PTF LayerNorm QAT: S[c] = s_base·2^α[c]).
struct LnChannelFloatIn {
  const float* p;
  const double* inv_scale;  // [C]: 1 / S[c]
  MNQ_HOST_DEVICE void set_inv_scale(double) {}
  MNQ_HOST_DEVICE i64 load(i64 i, i64 c, i64 lo, i64 hi, int& bad) const {
    return ln_float_code(p[i], inv_scale[c], lo, hi, bad);
  }
};

struct LnIntOut {
  static constexpr bool kPropagatesNaN = false;
  i64* p;
  MNQ_HOST_DEVICE void set_scale(double) {}
  MNQ_HOST_DEVICE void store_nan(i64) const {}
  MNQ_HOST_DEVICE void store(i64 i, i64 /*c*/, i64 v) const { p[i] = v; }
};

// Dequantized output v·S_out[c], rounded once from float64 to float32.
struct LnChannelFloatOut {
  static constexpr bool kPropagatesNaN = true;
  float* p;
  const double* scale;  // [C]: S_out[c]
  MNQ_HOST_DEVICE void set_scale(double) {}
  MNQ_HOST_DEVICE void store_nan(i64 i) const { p[i] = NAN; }
  MNQ_HOST_DEVICE void store(i64 i, i64 c, i64 v) const {
    p[i] = static_cast<float>(static_cast<double>(v) * scale[c]);
  }
};

// Dequantized output v·S on one scale (PTF LayerNorm: S_out = scale_next).
struct LnFloatOut {
  static constexpr bool kPropagatesNaN = true;
  float* p;
  double scale;
  MNQ_HOST_DEVICE void set_scale(double v) { scale = v; }
  MNQ_HOST_DEVICE void store_nan(i64 i) const { p[i] = NAN; }
  MNQ_HOST_DEVICE void store(i64 i, i64 /*c*/, i64 v) const { FloatOut{p, scale}.store(i, v); }
};

// The kernel interface of I-LayerNorm and I-BERT LayerNorm (rows × cols, contiguous).
struct LnParams {
  i64 rows;
  i64 cols;             // C, 1 ≤ C ≤ 2^16
  i64 lo, hi;           // declared input range
  const i64* bias_int;  // [cols] floor((β/γ)/Sy), |·| ≤ 2^62
  const double* dev_scale = nullptr;  // CUDA QAT: the input scale S in device memory (ln_device_scale); else nullptr
};

// The input scale's range (host check_ln_scale): finite, positive, with a finite reciprocal.
MNQ_HOST_DEVICE bool ln_scale_ok(double s) {
  const double inv = 1.0 / s;
  return valid_scale(s) && inv - inv == 0.0;
}

// 1/S of a dev_scale launch, set on the loader; false outside the range (the kernel then writes NaN rows).
template <class In>
MNQ_HOST_DEVICE bool ln_device_scale(const LnParams& p, In& in) {
  const double s = *p.dev_scale;
  if (!ln_scale_ok(s)) return false;
  in.set_inv_scale(1.0 / s);
  return true;
}

// The affine constants of one channel (SPEC §4.1/§4.2, host and device): γ and β fold into the output as
// S_out = Sy·γ and bias_int = floor((β/γ)/Sy), Sy = √C/2^30. ok = false when γ is zero or not finite, or
// |bias_int| > 2^62 (then bias_int = 0 and S_out = NaN: the CUDA QAT path's NaN policy for that channel).
struct LnAffineChannel {
  i64 bias_int;
  double s_out;
  bool ok;
};

MNQ_HOST_DEVICE double ln_sy(i64 cols) { return sqrt(static_cast<double>(cols)) / 1073741824.0; }  // √C / 2^30

MNQ_HOST_DEVICE LnAffineChannel ln_affine_channel(double gamma, double beta, double sy) {
  const bool g_ok = gamma - gamma == 0.0 && gamma != 0.0;
  const double bi = floor((beta / gamma) / sy);
  const bool ok = g_ok && fabs(bi) <= static_cast<double>(kLnMaxBiasInt);  // false for NaN
  return ok ? LnAffineChannel{static_cast<i64>(bi), sy * gamma, true} : LnAffineChannel{0, NAN, false};
}

// The NaN row of a float output (csrc/ops/qat.h's policy), one lane's share.
template <class Out>
MNQ_HOST_DEVICE void ln_row_nan(const Out& out, i64 base, i64 cols, i64 first, i64 step) {
  for (i64 j = first; j < cols; j += step) out.store_nan(base + j);
}

// mean = round-half-to-even(sum / C) (SPEC §4.1/§4.2), |sum| < 2^63, 1 ≤ C ≤ 2^16: common.h's round_div in 64-bit
// arithmetic (its 128-bit division was a library call per row, ~3% of a 384-column LayerNorm). fl = floor(sum/C)
// from the truncated quotient, rem = sum − fl·C ∈ [0, C), and 2·rem < 2^17 cannot overflow.
MNQ_HOST_DEVICE i64 ln_mean(i64 sum, i64 cols) {
  i64 fl = sum / cols;
  i64 rem = sum - fl * cols;
  if (rem < 0) {
    --fl;
    rem += cols;
  }
  return (2 * rem > cols || (2 * rem == cols && (fl & 1) != 0)) ? fl + 1 : fl;
}

// Σ(q − mean)² from the row moments Σq and Σq², exactly: Σq² − 2·mean·Σq + C·mean². Callers bound each of
// Σq², 2·|mean·Σq| and C·mean² by 2^59, so no partial sum overflows; one pass over the row gives both.
MNQ_HOST_DEVICE i64 ln_centered_sumsq(i64 sum, i64 sumsq, i64 mean, i64 cols) {
  return sumsq - 2 * mean * sum + cols * mean * mean;
}

// The row factor f ∈ [0, 2^31] of §4.1/§4.2 split as f = 2·half + odd, so half ≤ 2^30 fits int32.
struct LnFactor {
  int32_t half;      // floor(f / 2)
  int32_t odd_mask;  // −(f mod 2): all ones when f is odd
};

MNQ_HOST_DEVICE LnFactor ln_factor(i64 f) {
  return LnFactor{static_cast<int32_t>(f >> 1), -static_cast<int32_t>(f & 1)};
}

// out = yn + bias_int with yn = floor(y·f / 2) (SPEC §4.1/§4.2), |y| ≤ 2^22, |bias_int| ≤ 2^62. Computed as
// y·half + (f odd ? floor(y/2) : 0), which is exact: y·f = 2·y·half + y·odd and 2·y·half is even. Both factors
// fit int32, so the product is one 32×32→64-bit multiply (vectorized loops use it).
MNQ_HOST_DEVICE i64 ln_affine_out(int32_t y, LnFactor f, i64 bias_int) {
  return static_cast<i64>(y) * f.half + ((y >> 1) & f.odd_mask) + bias_int;
}

// Round-half-to-even of a / 2^k for 0 ≤ k ≤ 62, exact for any int64 a, in 64-bit arithmetic (common.h's
// round_shr works on 128 bits; PTF LayerNorm's final rounding needs no more than 64).
MNQ_HOST_DEVICE i64 round_shr64(i64 a, int k) {
  if (k == 0) return a;
  const i64 fl = a >> k;
  const i64 rem = a - (fl << k);  // in [0, 2^k)
  const i64 half = i64(1) << (k - 1);
  return fl + ((rem > half || (rem == half && (fl & 1) != 0)) ? 1 : 0);
}

}  // namespace kernels
}  // namespace mnq
