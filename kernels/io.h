// Element access for the kernels: the same row math reads integer codes (the exact integer ops) or float values
// on a known scale (the fused QAT ops, SPEC §5), and writes integer codes or dequantized floats.
//
// Float input: q = round(x / S) computed as rint(x · (1/S)) in float64 (the same expression on host and device,
// exact for |q| < 2^23 because float32 x = q·S has a relative error ≤ 2^−24). A value whose q falls outside the
// op's declared range [lo, hi], or a NaN, is reported through `ok` and never cast (the cast would be undefined).
#pragma once

#include "common.h"

namespace mnq {
namespace kernels {

// The CUDA fake-quant (QAT) launches compute 1/S and S_out on the device from the op's scale (the params'
// `dev_scale`) and set them with set_inv_scale / set_scale; the integer loaders ignore them. kPropagatesNaN: an
// input without a code gives NaN outputs (its row) instead of a report (no error flag, hence no device sync).
template <typename T>
struct IntIn {
  const T* p;
  MNQ_HOST_DEVICE void set_inv_scale(double) {}
  MNQ_HOST_DEVICE i64 load(i64 i, i64 lo, i64 hi, bool& ok) const {
    const i64 v = static_cast<i64>(p[i]);
    ok &= (v >= lo) & (v <= hi);
    return v;
  }
  // Same with an integer flag (bad ≠ 0: out of range), which vectorizes in CPU loops where a bool does not.
  MNQ_HOST_DEVICE i64 load(i64 i, i64 lo, i64 hi, int& bad) const {
    const i64 v = static_cast<i64>(p[i]);
    bad |= static_cast<int>(v < lo) | static_cast<int>(v > hi);
    return v;
  }
};

// Float input on one scale: the code rint(x · (1/S)) in float64. Every user's [lo, hi] lies within int32 (the
// softmaxes' int32 codes, ShiftGELU's 16-bit ones), so an in-range code converts through int32, exactly: AVX2 does
// that in vector form (VCVTTPD2DQ), where a float64 → int64 conversion keeps a CPU loop scalar.
struct FloatIn {
  const float* p;
  double inv_scale;  // 1 / S
  MNQ_HOST_DEVICE void set_inv_scale(double v) { inv_scale = v; }
  MNQ_HOST_DEVICE i64 load(i64 i, i64 lo, i64 hi, bool& ok) const {
    const double v = rint(static_cast<double>(p[i]) * inv_scale);
    const bool in_range = (v >= static_cast<double>(lo)) & (v <= static_cast<double>(hi));  // false for NaN
    ok &= in_range;
    return static_cast<int32_t>(in_range ? v : 0.0);
  }
  MNQ_HOST_DEVICE i64 load(i64 i, i64 lo, i64 hi, int& bad) const {
    const double v = rint(static_cast<double>(p[i]) * inv_scale);
    const bool in_range = (v >= static_cast<double>(lo)) & (v <= static_cast<double>(hi));  // false for NaN
    bad |= static_cast<int>(!in_range);
    return static_cast<int32_t>(in_range ? v : 0.0);
  }
};

template <typename T>
struct IntOut {
  static constexpr bool kPropagatesNaN = false;
  T* p;
  MNQ_HOST_DEVICE void set_scale(double) {}
  MNQ_HOST_DEVICE void store_nan(i64) const {}
  MNQ_HOST_DEVICE void store(i64 i, i64 v) const { p[i] = static_cast<T>(v); }
};

// Dequantized output out·S_out, rounded once from float64 to float32.
struct FloatOut {
  static constexpr bool kPropagatesNaN = true;
  float* p;
  double scale;
  MNQ_HOST_DEVICE void set_scale(double v) { scale = v; }
  MNQ_HOST_DEVICE void store_nan(i64 i) const { p[i] = NAN; }
  MNQ_HOST_DEVICE void store(i64 i, i64 v) const { p[i] = static_cast<float>(static_cast<double>(v) * scale); }
};

}  // namespace kernels
}  // namespace mnq
