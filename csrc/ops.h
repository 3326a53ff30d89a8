// The public C++ API of the mnq ops (STYLE rule 17: one op API): a typed dispatcher call per op of
// csrc/registry.cpp, with the schema's defaults. Calls go through the dispatcher like torch.ops.mnq.* from Python,
// so C++ and Python run one implementation: the CPU / CUDA / Meta kernel chosen by the inputs' device, and the
// straight-through backward (SPEC §5) of the *_qat ops under autograd. The raw backends (csrc/ops/backend.h) are
// internal to csrc/ops/. Each handle is looked up once, on first use. Link libmnq_ops.so with --no-as-needed so the
// registrations load (README "Use from C++").
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <tuple>

#include "csrc/autograd/ste.h"

namespace mnq {
namespace ops {

using T = at::Tensor;
using OptT = std::optional<at::Tensor>;
using TT = std::tuple<T, T>;
using TD = std::tuple<T, double>;

#define MNQ_OP_HANDLE(NAME, SIG) static const auto op = ::mnq::autograd::op_handle<SIG>(NAME)

// --- Integer ops: integer codes q on a float scale in, integer codes (and their scale) out.

// I-BERT integer softmax, SPEC §2.1: (codes, S_out = 2^-out_bits).
inline TD ibert_softmax(const T& q, double scale, int64_t out_bits = 16) {
  MNQ_OP_HANDLE("ibert_softmax", TD(const T&, double, int64_t));
  return op.call(q, scale, out_bits);
}
// I-ViT Shiftmax, SPEC §2.2: (codes, S_out = 2^-(out_bits-1)).
inline TD shiftmax(const T& q, double scale, int64_t out_bits = 16, int64_t n = 15) {
  MNQ_OP_HANDLE("shiftmax", TD(const T&, double, int64_t, int64_t));
  return op.call(q, scale, out_bits, n);
}
// FQ-ViT Log-Int-Softmax, SPEC §2.3: (uint8 log2 codes, bool mask of zeroed probabilities).
inline TT log_int_softmax(const T& q, double scale, int64_t bits = 4) {
  MNQ_OP_HANDLE("log_int_softmax", TT(const T&, double, int64_t));
  return op.call(q, scale, bits);
}
// I-BERT i-GELU, SPEC §3.1: scale 0-d or per channel (float64); (int64 codes, float64 S_out).
inline TT ibert_gelu(const T& q, const T& scale) {
  MNQ_OP_HANDLE("ibert_gelu", TT(const T&, const T&));
  return op.call(q, scale);
}
// I-ViT ShiftGELU, SPEC §3.2: (int32 codes, S_out = scale * 2^-(out_bits-1)).
inline TD shift_gelu(const T& q, double scale, int64_t out_bits = 8, int64_t n = 23) {
  MNQ_OP_HANDLE("shift_gelu", TD(const T&, double, int64_t, int64_t));
  return op.call(q, scale, out_bits, n);
}
// I-ViT I-LayerNorm, SPEC §4.1: (int64 codes, per-channel float64 S_out).
inline TT ilayernorm(const T& q, double scale, const T& weight, const T& bias) {
  MNQ_OP_HANDLE("ilayernorm", TT(const T&, double, const T&, const T&));
  return op.call(q, scale, weight, bias);
}
// I-BERT integer LayerNorm, SPEC §4.2: (int64 codes, per-channel float64 S_out).
inline TT ibert_layernorm(const T& q, double scale, const T& weight, const T& bias) {
  MNQ_OP_HANDLE("ibert_layernorm", TT(const T&, double, const T&, const T&));
  return op.call(q, scale, weight, bias);
}
// FQ-ViT PTF LayerNorm, SPEC §4.3: input scales s_base·2^alpha[c]; (int64 codes, S_out = scale_next).
inline TD ptf_layernorm(const T& q, const T& alpha, double s_base, const T& weight, const T& bias, double scale_next) {
  MNQ_OP_HANDLE("ptf_layernorm", TD(const T&, const T&, double, const T&, const T&, double));
  return op.call(q, alpha, s_base, weight, bias, scale_next);
}

// --- Quantizers, SPEC §1.

// clamp(round(x / S), -2^(bits-1), 2^(bits-1)-1); S 0-d or per channel along `axis`.
inline T quantize(const T& x, const T& scale, int64_t bits, int64_t axis = -1) {
  MNQ_OP_HANDLE("quantize", T(const T&, const T&, int64_t, int64_t));
  return op.call(x, scale, bits, axis);
}
// Dyadic requantization with fused residual: clamp(requant(q, S_in/S) + requant(q_id, S_id/S)).
inline T requant(const T& q, const T& scale_in, const T& scale_out, int64_t bits, const OptT& identity = std::nullopt,
                 const OptT& identity_scale = std::nullopt) {
  MNQ_OP_HANDLE("requant", T(const T&, const T&, const T&, int64_t, const OptT&, const OptT&));
  return op.call(q, scale_in, scale_out, bits, identity, identity_scale);
}
// requant with the multipliers given as dyadic pairs (m, k), per tensor or per channel (the integer engine's form).
inline T requant_dyadic(const T& q, const T& m, const T& k, int64_t bits, const OptT& identity = std::nullopt,
                        const OptT& m_id = std::nullopt, const OptT& k_id = std::nullopt) {
  MNQ_OP_HANDLE("requant_dyadic", T(const T&, const T&, const T&, int64_t, const OptT&, const OptT&, const OptT&));
  return op.call(q, m, k, bits, identity, m_id, k_id);
}
// PtfAct codes: clamp(round(x / (s_base·2^alpha[c])), ...).
inline T ptf_quantize(const T& x, const T& alpha, const T& s_base, int64_t bits) {
  MNQ_OP_HANDLE("ptf_quantize", T(const T&, const T&, const T&, int64_t));
  return op.call(x, alpha, s_base, bits);
}
// PtfAct calibration statistic: per channel and alpha in {0,1,2,3}, the summed squared quantization error [C, 4].
inline T ptf_alpha_error(const T& x, const T& s_base, int64_t bits) {
  MNQ_OP_HANDLE("ptf_alpha_error", T(const T&, const T&, int64_t));
  return op.call(x, s_base, bits);
}

// --- Fake-quant (QAT) forms: float x = q·S in, out·S_out out, straight-through backward (SPEC §5). Scales are
// float64 0-d tensors (on x's device or the CPU), so no caller reads them back to the host; the non-linear ones
// return (values, S_out) with S_out a float64 tensor on x's device.

inline T quantize_qat(const T& x, const T& scale, int64_t bits, int64_t axis = -1) {
  MNQ_OP_HANDLE("quantize_qat", T(const T&, const T&, int64_t, int64_t));
  return op.call(x, scale, bits, axis);
}
inline T requant_qat(const T& x, const T& scale_in, const T& scale_out, int64_t bits,
                     const OptT& identity = std::nullopt, const OptT& identity_scale = std::nullopt) {
  MNQ_OP_HANDLE("requant_qat", T(const T&, const T&, const T&, int64_t, const OptT&, const OptT&));
  return op.call(x, scale_in, scale_out, bits, identity, identity_scale);
}
inline T ptf_quantize_qat(const T& x, const T& alpha, const T& s_base, int64_t bits) {
  MNQ_OP_HANDLE("ptf_quantize_qat", T(const T&, const T&, const T&, int64_t));
  return op.call(x, alpha, s_base, bits);
}
// The fake-quant Linear, exact: fl32((codes(x) @ codes(weight)ᵀ + codes(bias))·scale·weight_scale) (SPEC §1;
// csrc/ops/quant_linear.h); backward straight-through (F.linear's gradient).
inline T quant_linear(const T& x, const T& scale, const T& weight, const T& weight_scale,
                      const OptT& bias = std::nullopt) {
  MNQ_OP_HANDLE("quant_linear", T(const T&, const T&, const T&, const T&, const OptT&));
  return op.call(x, scale, weight, weight_scale, bias);
}
// The fake-quant MatMul of two quantized tensors, exact: fl32((codes(a) @ codes(b))·scale_a·scale_b) (SPEC §1;
// csrc/ops/quant_matmul.h); backward straight-through (a @ b's gradient).
inline T quant_matmul(const T& a, const T& scale_a, const T& b, const T& scale_b) {
  MNQ_OP_HANDLE("quant_matmul", T(const T&, const T&, const T&, const T&));
  return op.call(a, scale_a, b, scale_b);
}
inline TT shiftmax_qat(const T& x, const T& scale, int64_t out_bits = 16, int64_t n = 15) {
  MNQ_OP_HANDLE("shiftmax_qat", TT(const T&, const T&, int64_t, int64_t));
  return op.call(x, scale, out_bits, n);
}
inline TT ibert_softmax_qat(const T& x, const T& scale, int64_t out_bits = 16) {
  MNQ_OP_HANDLE("ibert_softmax_qat", TT(const T&, const T&, int64_t));
  return op.call(x, scale, out_bits);
}
inline TT log_int_softmax_qat(const T& x, const T& scale, int64_t bits = 4) {
  MNQ_OP_HANDLE("log_int_softmax_qat", TT(const T&, const T&, int64_t));
  return op.call(x, scale, bits);
}
inline TT ibert_gelu_qat(const T& x, const T& scale) {
  MNQ_OP_HANDLE("ibert_gelu_qat", TT(const T&, const T&));
  return op.call(x, scale);
}
inline TT shift_gelu_qat(const T& x, const T& scale, int64_t out_bits = 8, int64_t n = 23) {
  MNQ_OP_HANDLE("shift_gelu_qat", TT(const T&, const T&, int64_t, int64_t));
  return op.call(x, scale, out_bits, n);
}
inline TT ilayernorm_qat(const T& x, const T& scale, const T& weight, const T& bias, double eps = 1e-6) {
  MNQ_OP_HANDLE("ilayernorm_qat", TT(const T&, const T&, const T&, const T&, double));
  return op.call(x, scale, weight, bias, eps);
}
inline TT ibert_layernorm_qat(const T& x, const T& scale, const T& weight, const T& bias, double eps = 1e-6) {
  MNQ_OP_HANDLE("ibert_layernorm_qat", TT(const T&, const T&, const T&, const T&, double));
  return op.call(x, scale, weight, bias, eps);
}
inline TT ptf_layernorm_qat(const T& x, const T& alpha, const T& s_base, const T& weight, const T& bias,
                            const T& scale_next, double eps = 1e-6) {
  MNQ_OP_HANDLE("ptf_layernorm_qat", TT(const T&, const T&, const T&, const T&, const T&, const T&, double));
  return op.call(x, alpha, s_base, weight, bias, scale_next, eps);
}

#undef MNQ_OP_HANDLE

}  // namespace ops
}  // namespace mnq
