// The per-channel minimum and maximum of a float32 tensor in one pass (the activation quantizers' range and the
// analyzer's code range): ATen's aminmax reduces a whole tensor at about a tenth of memory speed on CPU and its
// per-channel form (dim 0 of [rows, C]) far slower; min and max are exact, so any order gives the same values.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace mnq {
namespace nn {

// x (any shape, contiguous or not; CPU float32) viewed as [rows, C] with C dividing its size: mn[c], mx[c] the least
// and greatest value of channel c. Returns false, leaving mn and mx unspecified, when x holds a NaN (the caller
// then takes ATen's NaN-propagating reduction). A −0/+0 pair may come out as either zero.
bool channel_min_max(const at::Tensor& x, int64_t C, std::vector<float>& mn, std::vector<float>& mx);

// The least and greatest value of x + y (CPU float32 tensors of the same non-empty shape, contiguous or not) without
// forming the sum: each element is the float32 sum at::add stores. False, leaving mn and mx unspecified, when a sum
// is NaN or the shapes differ (the caller then adds and takes ATen's reduction). A quantizer fused with a residual
// add observes the sum's range this way (nn/quant.cpp).
bool sum_min_max(const at::Tensor& x, const at::Tensor& y, float& mn, float& mx);

}  // namespace nn
}  // namespace mnq
