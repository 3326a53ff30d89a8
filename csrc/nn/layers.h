// Quantized linear layers (SPEC §1), C++ twins of python/mnq/nn/layers.py: parameters `weight`, `bias` as
// torch::nn::Linear / Conv2d (so timm weights load by name). Weights: symmetric per output channel from the
// current weights at every forward, S_w[c] = max|W[c]| / (2^(b-1)-1); bias: round(bias / (S_w·S_a)) on 32 bits.
// QAT runs the float GEMM / convolution on the dequantized values; scale_out = S_a·S_w per output channel.
#pragma once

#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include "csrc/nn/quant.h"

namespace mnq {
namespace nn {

class QuantLinearImpl : public torch::nn::LinearImpl {
 public:
  QuantLinearImpl(int64_t in_features, int64_t out_features, bool bias = true, int64_t bits = 8);
  // x = q·scale with a per-tensor scale; returns (x @ Wqᵀ + bq, S_a·S_w [out_features]).
  ScaledTensor forward(const at::Tensor& x, const at::Tensor& scale);
  // (fake-quantized weight, S_w).
  ScaledTensor quantized_weight() const;
  int64_t bits() const { return bits_; }
  void pretty_print(std::ostream& stream) const override;

 private:
  int64_t bits_;
};
TORCH_MODULE(QuantLinear);

class QuantConv2dImpl : public torch::nn::Conv2dImpl {
 public:
  // Zero padding given as numbers (what patch embeddings use); string padding modes are rejected.
  QuantConv2dImpl(const torch::nn::Conv2dOptions& options, int64_t bits = 8);
  ScaledTensor forward(const at::Tensor& x, const at::Tensor& scale);
  int64_t bits() const { return bits_; }
  void pretty_print(std::ostream& stream) const override;

 private:
  int64_t bits_;
};
TORCH_MODULE(QuantConv2d);

// Product of two quantized tensors: (a @ b, S_a·S_b), per-tensor scales (python's QuantMatMul, which has no state).
ScaledTensor quant_matmul(const at::Tensor& a, const at::Tensor& scale_a, const at::Tensor& b,
                          const at::Tensor& scale_b);

}  // namespace nn
}  // namespace mnq
