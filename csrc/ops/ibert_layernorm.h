// I-BERT LayerNorm backends (SPEC §4.2); the contract is layernorm_common.h's AffineLnBackends.
#pragma once

#include <ATen/core/Tensor.h>

#include "kernels/ibert_layernorm.h"

namespace mnq {
namespace ops {
namespace cpu {
bool ibert_layernorm(const at::Tensor& in, const at::Tensor& out, const kernels::LnParams& p, double inv_scale,
                     const at::Tensor& s_out);
}  // namespace cpu
namespace cuda {
bool ibert_layernorm(const at::Tensor& in, const at::Tensor& out, const kernels::LnParams& p, double inv_scale,
                     const at::Tensor& s_out, bool check);
}  // namespace cuda
}  // namespace ops
}  // namespace mnq
