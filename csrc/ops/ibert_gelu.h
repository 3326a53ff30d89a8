// I-BERT i-GELU backends (SPEC §3.1). `in` is an integer tensor (codes) or float32 (QAT values, code
// round(x·inv_scale[c])); `out` is int64 codes or float32 values out·out_scale[c]; both contiguous, same shape,
// c = index in the last dim. p.k, inv_scale and out_scale ([p.cols] each) live on the device of `in`.
// Each returns false when an input code lies outside [p.lo, p.hi] (checked only when `check`).
#pragma once

#include <ATen/core/Tensor.h>

#include "kernels/ibert_gelu.h"

namespace mnq {
namespace ops {
namespace cpu {
bool ibert_gelu(const at::Tensor& in, const at::Tensor& out, const kernels::IbertGeluParams& p,
                const double* inv_scale, const double* out_scale);
}  // namespace cpu
namespace cuda {
bool ibert_gelu(const at::Tensor& in, const at::Tensor& out, const kernels::IbertGeluParams& p,
                const double* inv_scale, const double* out_scale, bool check);
}  // namespace cuda
}  // namespace ops
}  // namespace mnq
