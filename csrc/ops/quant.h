// Quantizer backends (SPEC §1). Tensors are contiguous; per-channel arrays (scales, dyadic m/k) are already on
// the input's device. Each returns false when an input was NaN / outside the representable code range.
#pragma once

#include <ATen/core/Tensor.h>

#include "csrc/dispatch.h"
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

inline kernels::DyadicArray dyadics(const RequantSide& s) {
  return kernels::DyadicArray{s.m.data_ptr<int64_t>(), s.k.data_ptr<int64_t>()};
}

// Calls f(loader) with the loader matching the codes' dtype (int codes, or float values on s.scale).
template <class F>
bool with_requant_loader(const RequantSide& s, F&& f) {
  if (s.codes.scalar_type() == at::kFloat) {
    return f(kernels::RequantFloatIn{s.codes.data_ptr<float>(), s.scale.data_ptr<double>()});
  }
  return MNQ_DISPATCH_INT(s.codes.scalar_type(), "requant", [&] {
    return f(kernels::RequantIntIn<scalar_t>{s.codes.data_ptr<scalar_t>()});
  });
}

namespace cpu {
bool quantize(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& out, const kernels::QuantizeParams& p);
bool requant(const RequantSide& in, const RequantSide* id, const at::Tensor& out, double out_scale,
             const kernels::RequantParams& p);
void ptf_alpha_error(const at::Tensor& x, double s_base, int64_t lo, int64_t hi, const at::Tensor& err);
}  // namespace cpu
// CUDA: every scale is a float64 device tensor, never read on the host. requant computes the multipliers on the
// device from in.scale / id->scale and out_scale (0-d); in.m, in.k are unused. s_base is 0-d.
namespace cuda {
bool quantize(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& out, const kernels::QuantizeParams& p);
bool requant(const RequantSide& in, const RequantSide* id, const at::Tensor& out, const at::Tensor& out_scale,
             const kernels::RequantParams& p, bool check);
void ptf_alpha_error(const at::Tensor& x, const at::Tensor& s_base, int64_t lo, int64_t hi, const at::Tensor& err);
}  // namespace cuda

}  // namespace ops
}  // namespace mnq
