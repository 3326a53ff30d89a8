// PTF LayerNorm backends (SPEC §4.3). `in` is integer codes or float32 values on per-channel scales
// (inv_scale [cols] = 1 / (s_base·2^α[c]), float64, on the device of `in`); `out` is int64 codes or float32
// values out·out_scale; both contiguous [rows, cols]. Each returns false when an input code lies outside
// [p.lo, p.hi] (CUDA: checked only when `check`).
#pragma once

#include <ATen/core/Tensor.h>

#include "kernels/ptf_layernorm.h"

namespace mnq {
namespace ops {
namespace cpu {
bool ptf_layernorm(const at::Tensor& in, const at::Tensor& out, const kernels::PtfParams& p,
                   const at::Tensor& inv_scale, double out_scale);
}  // namespace cpu
namespace cuda {
bool ptf_layernorm(const at::Tensor& in, const at::Tensor& out, const kernels::PtfParams& p,
                   const at::Tensor& inv_scale, double out_scale, bool check);
}  // namespace cuda
}  // namespace ops
}  // namespace mnq
