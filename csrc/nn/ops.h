// Typed dispatcher calls of the mnq ops the C++ modules use (the same ops as python/mnq/ops.py wraps), so C++
// and Python run one implementation, autograd (straight-through backward) included. Each handle is looked up
// once, on first use.
#pragma once

#include <ATen/ATen.h>

#include <optional>

#include "csrc/autograd/ste.h"

namespace mnq {
namespace nn {
namespace ops {

using autograd::op_handle;
using T = at::Tensor;
using OptT = std::optional<at::Tensor>;

inline T quantize_qat(const T& x, const T& scale, int64_t bits, int64_t axis = -1) {
  static auto op = op_handle<T(const T&, const T&, int64_t, int64_t)>("quantize_qat");
  return op.call(x, scale, bits, axis);
}
inline T requant_qat(const T& x, const T& scale_in, const T& scale_out, int64_t bits, const OptT& identity,
                     const OptT& identity_scale) {
  static auto op = op_handle<T(const T&, const T&, const T&, int64_t, const OptT&, const OptT&)>("requant_qat");
  return op.call(x, scale_in, scale_out, bits, identity, identity_scale);
}
inline T ptf_quantize_qat(const T& x, const T& alpha, const T& s_base, int64_t bits) {
  static auto op = op_handle<T(const T&, const T&, const T&, int64_t)>("ptf_quantize_qat");
  return op.call(x, alpha, s_base, bits);
}
inline T ptf_alpha_error(const T& x, const T& s_base, int64_t bits) {
  static auto op = op_handle<T(const T&, const T&, int64_t)>("ptf_alpha_error");
  return op.call(x, s_base, bits);
}
// The non-linear fake-quant ops return (values, S_out), S_out a float64 tensor on x's device.
using TT = std::tuple<T, T>;
inline TT shiftmax_qat(const T& x, const T& scale, int64_t out_bits, int64_t n = 15) {
  static auto op = op_handle<TT(const T&, const T&, int64_t, int64_t)>("shiftmax_qat");
  return op.call(x, scale, out_bits, n);
}
inline TT ibert_softmax_qat(const T& x, const T& scale, int64_t out_bits) {
  static auto op = op_handle<TT(const T&, const T&, int64_t)>("ibert_softmax_qat");
  return op.call(x, scale, out_bits);
}
inline TT log_int_softmax_qat(const T& x, const T& scale, int64_t bits) {
  static auto op = op_handle<TT(const T&, const T&, int64_t)>("log_int_softmax_qat");
  return op.call(x, scale, bits);
}
inline TT ibert_gelu_qat(const T& x, const T& scale) {
  static auto op = op_handle<TT(const T&, const T&)>("ibert_gelu_qat");
  return op.call(x, scale);
}
inline TT shift_gelu_qat(const T& x, const T& scale, int64_t out_bits, int64_t n = 23) {
  static auto op = op_handle<TT(const T&, const T&, int64_t, int64_t)>("shift_gelu_qat");
  return op.call(x, scale, out_bits, n);
}
inline TT ilayernorm_qat(const T& x, const T& scale, const T& weight, const T& bias, double eps) {
  static auto op = op_handle<TT(const T&, const T&, const T&, const T&, double)>("ilayernorm_qat");
  return op.call(x, scale, weight, bias, eps);
}
inline TT ibert_layernorm_qat(const T& x, const T& scale, const T& weight, const T& bias, double eps) {
  static auto op = op_handle<TT(const T&, const T&, const T&, const T&, double)>("ibert_layernorm_qat");
  return op.call(x, scale, weight, bias, eps);
}
inline TT ptf_layernorm_qat(const T& x, const T& alpha, const T& s_base, const T& weight, const T& bias,
                            const T& scale_next, double eps) {
  static auto op = op_handle<TT(const T&, const T&, const T&, const T&, const T&, const T&, double)>("ptf_layernorm_qat");
  return op.call(x, alpha, s_base, weight, bias, scale_next, eps);
}

}  // namespace ops
}  // namespace nn
}  // namespace mnq
