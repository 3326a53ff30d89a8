// The per-output-channel weight scale of QuantLinear / QuantConv2d (SPEC §1), shared by the fake-quant layers
// (layers.cpp) and the integer engine's conversion (csrc/deploy/convert.cpp), which must quantize the weights on
// exactly the same scales.
#pragma once

#include <ATen/core/Tensor.h>

namespace mnq {
namespace nn {

// S_w[c] = max(max|W[c]|, 1e-8) / (2^(b-1)-1), float64 [out_channels].
at::Tensor weight_scale(const at::Tensor& w, int64_t bits);

}  // namespace nn
}  // namespace mnq
