// PTF LayerNorm backends (SPEC §4.3). `in` is integer codes or float32 values on per-channel scales
// (inv_scale [cols] = 1 / (s_base·2^α[c]), float64, on the device of `in`); `out` is int64 codes or float32
// values out·out_scale; both contiguous [rows, cols]. Each returns false when an input code lies outside
// [p.lo, p.hi] (CUDA: checked only when `check`).
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>

#include "kernels/ptf_layernorm.h"

namespace mnq {
namespace ops {
namespace cpu {
// The CPU row path's per-call constants (csrc/cpu/ptf_layernorm.cpp): the AVX-512 short forms' channel vectors
// (ptf_scaled_consts, ptf_scaled_consts32), the float32 inverse scales of the QAT codes (ptf_inv32) and the float32
// store pair of the QAT output (ptf_out32). They depend on the isa, C·γ, γ, β, 1/S[c] and S_next only, so the front
// end keeps them with its host constants across calls (csrc/ops/ptf_layernorm.cpp). Not copyable: sc points into
// the vectors.
struct PtfCallConsts;
std::shared_ptr<const PtfCallConsts> ptf_call_consts(const kernels::PtfParams& p, const double* inv_scale);
// `k`: ptf_call_consts of the same p (with any rows), inv_scale and out_scale = p.scale_next, or nullptr (then
// computed here when needed).
bool ptf_layernorm(const at::Tensor& in, const at::Tensor& out, const kernels::PtfParams& p,
                   const at::Tensor& inv_scale, double out_scale, const PtfCallConsts* k = nullptr);
}  // namespace cpu
namespace cuda {
bool ptf_layernorm(const at::Tensor& in, const at::Tensor& out, const kernels::PtfParams& p,
                   const at::Tensor& inv_scale, double out_scale, bool check);
// The QAT path's constants from device tensors (csrc/cuda/layernorm_common.cu): alpha int64 [C], gamma, beta
// float64 [C], s_base, s_next 0-d float64 → shift int32 [C], values float64 [4, C] (rows C·γ, γ, β, 1/S[c]);
// 1/S = NaN everywhere when a check fails.
void ptf_layernorm_consts(const at::Tensor& alpha, const at::Tensor& gamma, const at::Tensor& beta,
                          const at::Tensor& s_base, const at::Tensor& s_next, const at::Tensor& shift,
                          const at::Tensor& values);
}  // namespace cuda
}  // namespace ops
}  // namespace mnq
