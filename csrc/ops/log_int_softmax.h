// Log-Int-Softmax backends (SPEC §2.3). `in` is an integer tensor (codes) or float32 (QAT values on scale
// 1/inv_scale). Integer form: `code` uint8 and `mask` bool; QAT form: `value` float32 2^-code (0 where masked).
// All contiguous, shape [rows, cols]. Each returns false when an input code lies outside [p.lo, p.hi] (checked
// only when `check`).
#pragma once

#include <ATen/core/Tensor.h>

#include "kernels/log_int_softmax.h"

namespace mnq {
namespace ops {
namespace cpu {
bool log_int_softmax(const at::Tensor& in, const at::Tensor& code, const at::Tensor& mask,
                     const kernels::LogIntSoftmaxParams& p);
bool log_int_softmax_qat(const at::Tensor& in, const at::Tensor& value, const kernels::LogIntSoftmaxParams& p,
                         double inv_scale);
}  // namespace cpu
namespace cuda {
bool log_int_softmax(const at::Tensor& in, const at::Tensor& code, const at::Tensor& mask,
                     const kernels::LogIntSoftmaxParams& p, bool check);
bool log_int_softmax_qat(const at::Tensor& in, const at::Tensor& value, const kernels::LogIntSoftmaxParams& p,
                         double inv_scale);
}  // namespace cuda
}  // namespace ops
}  // namespace mnq
