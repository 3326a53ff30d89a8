// I-LayerNorm backends (SPEC §4.1); the contract is layernorm_common.h's AffineLnBackends.
#pragma once

#include <ATen/core/Tensor.h>

#include "kernels/ilayernorm.h"

namespace mnq {
namespace ops {
namespace cpu {
bool ilayernorm(const at::Tensor& in, const at::Tensor& out, const kernels::LnParams& p, double inv_scale,
                const at::Tensor& s_out);
}  // namespace cpu
namespace cuda {
bool ilayernorm(const at::Tensor& in, const at::Tensor& out, const kernels::LnParams& p, double inv_scale,
                const at::Tensor& s_out, bool check);
}  // namespace cuda
}  // namespace ops
}  // namespace mnq
