// Quantizer backends (SPEC §1). Tensors are contiguous; per-channel arrays (scales, dyadic m/k) are already on
// the input's device. Each returns false when an input was NaN / outside the representable code range.
#pragma once

#include <ATen/core/Tensor.h>

#include "kernels/quant.h"

namespace mnq {
namespace ops {

// Device-side arguments of a requantization: per-channel dyadic multipliers (m, k as int64 [C]) and, for float
// inputs, the per-channel input scales (float64 [C]) used to recover the codes.
struct RequantSide {
  at::Tensor codes;  // int codes or float values
  at::Tensor m, k;   // int64 [C]
  at::Tensor scale;  // float64 [C]
};

namespace cpu {
bool quantize(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& out, const kernels::QuantizeParams& p);
bool requant(const RequantSide& in, const RequantSide* id, const at::Tensor& out, double out_scale,
             const kernels::RequantParams& p);
void ptf_alpha_error(const at::Tensor& x, double s_base, int64_t lo, int64_t hi, const at::Tensor& err);
}  // namespace cpu
namespace cuda {
bool quantize(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& out, const kernels::QuantizeParams& p);
bool requant(const RequantSide& in, const RequantSide* id, const at::Tensor& out, double out_scale,
             const kernels::RequantParams& p, bool check);
void ptf_alpha_error(const at::Tensor& x, double s_base, int64_t lo, int64_t hi, const at::Tensor& err);
}  // namespace cuda

}  // namespace ops
}  // namespace mnq
