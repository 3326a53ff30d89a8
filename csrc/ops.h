// Host entry points of every mnq op (STYLE: one declarations header). Each validates its arguments, computes
// the op's integer constants on the host and runs the CPU or CUDA implementation of the same kernels/<op>.h math.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <tuple>

namespace mnq {
namespace ops {

// Softmax methods (SPEC §2).
std::tuple<at::Tensor, double> ibert_softmax(const at::Tensor& q, double scale, int64_t out_bits);
std::tuple<at::Tensor, double> shiftmax(const at::Tensor& q, double scale, int64_t out_bits, int64_t n);
std::tuple<at::Tensor, at::Tensor> log_int_softmax(const at::Tensor& q, double scale, int64_t bits);
using TT = std::tuple<at::Tensor, at::Tensor>;
TT ibert_softmax_qat(const at::Tensor& x, const at::Tensor& scale, int64_t out_bits);
TT shiftmax_qat(const at::Tensor& x, const at::Tensor& scale, int64_t out_bits, int64_t n);
TT log_int_softmax_qat(const at::Tensor& x, const at::Tensor& scale, int64_t bits);

// GELU methods (SPEC §3).
std::tuple<at::Tensor, at::Tensor> ibert_gelu(const at::Tensor& q, const at::Tensor& scale);
std::tuple<at::Tensor, double> shift_gelu(const at::Tensor& q, double scale, int64_t out_bits, int64_t n);
TT ibert_gelu_qat(const at::Tensor& x, const at::Tensor& scale);
TT shift_gelu_qat(const at::Tensor& x, const at::Tensor& scale, int64_t out_bits, int64_t n);

// LayerNorm methods (SPEC §4).
std::tuple<at::Tensor, at::Tensor> ilayernorm(const at::Tensor& q, double scale, const at::Tensor& weight,
                                              const at::Tensor& bias);
std::tuple<at::Tensor, at::Tensor> ibert_layernorm(const at::Tensor& q, double scale, const at::Tensor& weight,
                                                   const at::Tensor& bias);
std::tuple<at::Tensor, double> ptf_layernorm(const at::Tensor& q, const at::Tensor& alpha, double s_base,
                                             const at::Tensor& weight, const at::Tensor& bias, double scale_next);
TT ilayernorm_qat(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& weight, const at::Tensor& bias,
                  double eps);
TT ibert_layernorm_qat(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& weight, const at::Tensor& bias,
                       double eps);
TT ptf_layernorm_qat(const at::Tensor& x, const at::Tensor& alpha, const at::Tensor& s_base, const at::Tensor& weight,
                     const at::Tensor& bias, const at::Tensor& scale_next, double eps);

// Quantizers (SPEC §1).
at::Tensor quantize(const at::Tensor& x, const at::Tensor& scale, int64_t bits, int64_t axis);
at::Tensor requant(const at::Tensor& q, const at::Tensor& scale_in, const at::Tensor& scale_out, int64_t bits,
                   const std::optional<at::Tensor>& identity, const std::optional<at::Tensor>& identity_scale);
at::Tensor requant_dyadic(const at::Tensor& q, const at::Tensor& m, const at::Tensor& k, int64_t bits,
                          const std::optional<at::Tensor>& identity, const std::optional<at::Tensor>& m_id,
                          const std::optional<at::Tensor>& k_id);
// The integer LayerNorms and I-BERT GELU with their per-channel constants computed once by the caller (the integer
// engine, csrc/deploy, when it reads a model; .to(device) moves them): *_consts computes them on the CPU as the op
// does and rejects what the op rejects; *_prepared runs the op's checks on the input and its kernels with them, on
// the input's device, without the op's per-call host work — which on CUDA is a round trip of the constants through
// host memory (device syncs) in every call. LnAffine: layernorm_common.h (ln_affine computes it).
struct LnAffine;
// PTF LayerNorm: shift int32 [C] and float64 [4, C] (rows C·γ, γ, β, 1/(s_base·2^α)).
struct PtfConsts {
  at::Tensor shift;
  at::Tensor values;
};
// i-GELU: consts int64 [3, C] (b, c, one), scales float64 [2, C] (1/S, S_out), s_out float64 shaped like the scale.
struct IbertGeluConsts {
  at::Tensor consts;
  at::Tensor scales;
  at::Tensor s_out;
};
std::tuple<at::Tensor, at::Tensor> ilayernorm_prepared(const at::Tensor& q, double scale, const LnAffine& aff);
std::tuple<at::Tensor, at::Tensor> ibert_layernorm_prepared(const at::Tensor& q, double scale, const LnAffine& aff);
PtfConsts ptf_layernorm_consts(const at::Tensor& alpha, double s_base, const at::Tensor& weight, const at::Tensor& bias,
                               double scale_next);
at::Tensor ptf_layernorm_prepared(const at::Tensor& q, const PtfConsts& k, double scale_next);
IbertGeluConsts ibert_gelu_consts(const at::Tensor& scale, int64_t channels);
std::tuple<at::Tensor, at::Tensor> ibert_gelu_prepared(const at::Tensor& q, const IbertGeluConsts& k);

// requant_dyadic without the host read that validates m, k (|m| ∈ [1, 2^31], k ∈ [−32, 120]; dtype, shape and
// device are still checked): for callers that validated the pairs once, e.g. the integer engine at load
// (csrc/deploy int_layers.cpp check_pairs), so that a CUDA forward never waits for the device. Not an op.
at::Tensor requant_dyadic_prechecked(const at::Tensor& q, const at::Tensor& m, const at::Tensor& k, int64_t bits,
                                     const std::optional<at::Tensor>& identity,
                                     const std::optional<at::Tensor>& m_id, const std::optional<at::Tensor>& k_id);
at::Tensor ptf_quantize(const at::Tensor& x, const at::Tensor& alpha, const at::Tensor& s_base, int64_t bits);
at::Tensor ptf_alpha_error(const at::Tensor& x, const at::Tensor& s_base, int64_t bits);
at::Tensor quantize_qat(const at::Tensor& x, const at::Tensor& scale, int64_t bits, int64_t axis);
at::Tensor requant_qat(const at::Tensor& x, const at::Tensor& scale_in, const at::Tensor& scale_out, int64_t bits,
                       const std::optional<at::Tensor>& identity, const std::optional<at::Tensor>& identity_scale);
at::Tensor ptf_quantize_qat(const at::Tensor& x, const at::Tensor& alpha, const at::Tensor& s_base, int64_t bits);

}  // namespace ops
}  // namespace mnq
