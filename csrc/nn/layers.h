// Quantized linear layers (SPEC §1), C++ twins of python/mnq/nn/layers.py: parameters `weight`, `bias` as
// torch::nn::Linear / Conv2d (so timm weights load by name). Weights: symmetric per output channel from the
// current weights at every forward, S_w[c] = max|W[c]| / (2^(b-1)-1); bias: round(bias / (S_w·S_a)) on 32 bits.
// QAT runs the float GEMM / convolution on the dequantized values; scale_out = S_a·S_w per output channel.
#pragma once

#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include <cstdint>
#include <memory>

#include "csrc/nn/quant.h"

namespace mnq {
namespace nn {

// While one lives on the calling thread, and autograd is off, QuantLinear / QuantConv2d keep their fake-quantized
// weight and S_w between forwards instead of recomputing both from the unchanged weight at every call (the
// sensitivity analyzer's calibration and measurement forwards; the values are the same tensors). A kept weight is
// reused only within the same scope (an epoch counted per outermost scope) and while the weight tensor is the same
// object at the same version and address, so an optimizer step, a load or a move between scopes is always seen.
// The outermost scope's end releases every kept copy (the layers hold no second copy of their weights after it).
class FrozenWeightsScope {
 public:
  FrozenWeightsScope();
  ~FrozenWeightsScope();
  FrozenWeightsScope(const FrozenWeightsScope&) = delete;
  FrozenWeightsScope& operator=(const FrozenWeightsScope&) = delete;
};

// A layer's kept (fake-quantized weight, S_w), and what it was computed from.
struct KeptWeight {
  at::Tensor source;  // the weight it was computed from (held, so its address cannot be reused)
  int64_t version = -1;
  const void* data = nullptr;
  uint64_t epoch = 0;
  ScaledTensor value;
};

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
  std::shared_ptr<KeptWeight> kept_ = std::make_shared<KeptWeight>();  // (FrozenWeightsScope releases it)
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
  std::shared_ptr<KeptWeight> kept_ = std::make_shared<KeptWeight>();  // (FrozenWeightsScope releases it)
};
TORCH_MODULE(QuantConv2d);

// Product of two quantized tensors: (a @ b, S_a·S_b), per-tensor scales, the integer product computed exactly
// (ops::quant_matmul, SPEC §1; python's QuantMatMul, which has no state).
ScaledTensor quant_matmul(const at::Tensor& a, const at::Tensor& scale_a, const at::Tensor& b,
                          const at::Tensor& scale_b);

}  // namespace nn
}  // namespace mnq
