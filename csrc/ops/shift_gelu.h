// ShiftGELU backends (SPEC §3.2). `in` is an integer tensor (codes) or float32 (QAT values on scale 1/inv_scale);
// `out` is int32 codes or float32 values out·out_scale; both contiguous, same shape [rows, cols].
// Each returns false when an input code lies outside [p.lo, p.hi] (checked only when `check`).
#pragma once

#include <ATen/core/Tensor.h>

#include "kernels/shift_gelu.h"

namespace mnq {
namespace ops {
namespace cpu {
bool shift_gelu(const at::Tensor& in, const at::Tensor& out, const kernels::ShiftGeluParams& p, double inv_scale,
                double out_scale);
}  // namespace cpu
namespace cuda {
bool shift_gelu(const at::Tensor& in, const at::Tensor& out, const kernels::ShiftGeluParams& p, double inv_scale,
                double out_scale, bool check);
}  // namespace cuda
}  // namespace ops
}  // namespace mnq
