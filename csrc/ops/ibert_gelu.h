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
// The QAT path's constants from a device scale (float64, 0-d or [C], contiguous): consts [3, C] int64 (b, c, one),
// scales [2, C] float64 (1/S, S_out), s_out shaped like scale; NaN where a scale is outside the supported range.
void ibert_gelu_consts(const at::Tensor& scale, const at::Tensor& consts, const at::Tensor& scales,
                       const at::Tensor& s_out);
}  // namespace cuda
}  // namespace ops
}  // namespace mnq
