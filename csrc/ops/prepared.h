// Prepared forms of the integer LayerNorms, I-BERT GELU and requant_dyadic, for the integer engine (csrc/deploy).
//
// Why a second entry point next to the public op API (csrc/ops.h, STYLE rule 17): a converted model's per-channel
// constants never change, and on CUDA the ops' per-call host work is a round trip of those constants through host
// memory (a device sync in every call). Here *_consts computes them once, on the CPU, as the op does and rejecting
// what the op rejects; *_prepared runs the op's input checks and its CPU / CUDA kernels with them (`.to(device)`
// moves them), without that host work. requant_dyadic_prechecked skips the host read that validates (m, k)
// (|m| ∈ [1, 2^31], k ∈ [−32, 120]; dtype, shape and device are still checked) for callers that validated the
// pairs once (the engine at load: csrc/deploy/int_layers.cpp check_pairs). These have no dispatcher schema (they
// take structs of constants), no autograd and no Meta kernel; the same kernels and validation as the ops, so their
// results are the ops' bit for bit (tests/python/test_deploy.py). Defined with the backends in csrc/ops/<op>.cpp.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>
#include <tuple>

#include "csrc/ops/layernorm_common.h"  // LnAffine, ln_affine: the LayerNorms' (bias_int, S_out) from γ, β

namespace mnq {
namespace ops {
namespace backend {

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
at::Tensor requant_dyadic_prechecked(const at::Tensor& q, const at::Tensor& m, const at::Tensor& k, int64_t bits,
                                     const std::optional<at::Tensor>& identity,
                                     const std::optional<at::Tensor>& m_id, const std::optional<at::Tensor>& k_id);

}  // namespace backend

// The engine's names for them (mnq::ops::ilayernorm_prepared, …).
using backend::IbertGeluConsts;
using backend::PtfConsts;
using backend::ibert_gelu_consts;
using backend::ibert_gelu_prepared;
using backend::ibert_layernorm_prepared;
using backend::ilayernorm_prepared;
using backend::ptf_layernorm_consts;
using backend::ptf_layernorm_prepared;
using backend::requant_dyadic_prechecked;

}  // namespace ops
}  // namespace mnq
