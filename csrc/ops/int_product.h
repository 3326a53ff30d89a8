// What the two exact-product ops share (mnq::quant_linear, mnq::quant_matmul; SPEC §1): their scale-argument checks,
// the output shape, and the float64 codes of their generic (any-device) path.
#pragma once

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <cstdint>
#include <initializer_list>
#include <utility>
#include <vector>

#include "csrc/checks.h"

namespace mnq {
namespace ops {
namespace backend {

// A scale argument: given, floating point, `numel` values in at most one dimension (`shape` names it in the error).
inline void check_scale_arg(const char* op, const char* name, const at::Tensor& s, int64_t numel, const char* shape) {
  check_given(op, name, s);
  TORCH_CHECK_TYPE(at::isFloatingType(s.scalar_type()), op, ": ", name, " must be a floating-point tensor, got ",
                   s.scalar_type());
  TORCH_CHECK_VALUE(s.numel() == numel && s.dim() <= 1, op, ": ", name, " must have shape ", shape, ", got ",
                    s.sizes());
}

// The scales live on the CPU or on the data's device (`ref`, called `ref_name`).
inline void check_scales_device(const char* op, const at::Tensor& ref, const char* ref_name,
                                std::initializer_list<const at::Tensor*> scales) {
  for (const at::Tensor* s : scales) {
    TORCH_CHECK_VALUE(s->is_cpu() || s->device() == ref.device(), op, ": the scales must be on the CPU or on ", ref_name,
                      "'s device (", ref.device(), "), got ", s->device());
  }
}

// t's shape with the last dim n (the output's).
inline std::vector<int64_t> with_last_dim(const at::Tensor& t, int64_t n) {
  std::vector<int64_t> sizes = t.sizes().vec();
  sizes.back() = n;
  return sizes;
}

// round(v / s) clamped to 32 bits, in float64 (kernels/quant.h quantize_code as a tensor expression; NaN stays).
inline at::Tensor codes64(const at::Tensor& v, const at::Tensor& s) {
  return at::clamp(at::round(v.to(at::kDouble) / s), -2147483648.0, 2147483647.0);
}

}  // namespace backend
}  // namespace ops
}  // namespace mnq
