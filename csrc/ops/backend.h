// The raw backends of the mnq ops: what csrc/ops/<op>.cpp registers under the CPU and CUDA dispatch keys. Each
// validates its arguments, computes the op's integer constants on the host and runs the CPU or CUDA implementation
// of the same kernels/<op>.h math. INTERNAL to csrc/ops/: they have no autograd and no Meta kernel. Code above the
// ops calls the typed dispatcher handles of csrc/ops.h (tests/python/test_layers.py checks that nothing else
// includes this header).
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <tuple>

namespace mnq {
namespace ops {
namespace backend {

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
at::Tensor ptf_quantize(const at::Tensor& x, const at::Tensor& alpha, const at::Tensor& s_base, int64_t bits);
at::Tensor ptf_alpha_error(const at::Tensor& x, const at::Tensor& s_base, int64_t bits);
at::Tensor quantize_qat(const at::Tensor& x, const at::Tensor& scale, int64_t bits, int64_t axis);
at::Tensor requant_qat(const at::Tensor& x, const at::Tensor& scale_in, const at::Tensor& scale_out, int64_t bits,
                       const std::optional<at::Tensor>& identity, const std::optional<at::Tensor>& identity_scale);
at::Tensor ptf_quantize_qat(const at::Tensor& x, const at::Tensor& alpha, const at::Tensor& s_base, int64_t bits);

}  // namespace backend
}  // namespace ops
}  // namespace mnq
