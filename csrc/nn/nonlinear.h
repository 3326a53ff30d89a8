// Integer non-linear layers with a selectable method (SPEC §2-5), C++ twins of python/mnq/nn/nonlinear.py.
// Each takes the float values x = q·scale of a quantized input and its scale, runs the fused integer method
// (fake-quant forward, straight-through float gradient) and returns (y, scale_out). Methods: "ivit", "ibert",
// "fqvit" (see the Python module's docstring for what each means per op).
#pragma once

#include <functional>
#include <string>

#include "csrc/nn/quant.h"

namespace mnq {
namespace nn {

// One call of a non-linear layer as an observer sees it (the sensitivity analyzer captures every mixable layer's
// input and output this way). x = q·scale is the input the layer received, y = its output values on scale_out.
// `rerun` runs the same layer again on another input with the same input scale (and, for an fqvit LayerNorm, the
// same scale_next), without notifying the observer: the analyzer's isolated mode feeds it the full-precision
// input on this grid. The references live only for the duration of the observer call.
struct LayerCall {
  const at::Tensor& x;
  const at::Tensor& scale;
  const at::Tensor& y;
  const at::Tensor& scale_out;
  const std::function<ScaledTensor(const at::Tensor&)>& rerun;
};
// Called after every forward of the layer it is attached to; unset (the default) costs one branch.
using LayerObserver = std::function<void(const LayerCall&)>;

// Throws naming the module and the allowed methods unless `method` is ivit, ibert or fqvit.
const std::string& check_method(const std::string& method, const char* who);

// Softmax over the last dim. out_bits: output bits of ivit/ibert (16); log_bits: FQ-ViT's log2 code bits (4).
class IntSoftmaxImpl : public torch::nn::Module {
 public:
  explicit IntSoftmaxImpl(std::string method = "ivit", int64_t out_bits = 16, int64_t log_bits = 4);
  ScaledTensor forward(const at::Tensor& x, const at::Tensor& scale);
  const std::string& method() const { return method_; }
  void pretty_print(std::ostream& stream) const override;
  void set_observer(LayerObserver observer) { observer_ = std::move(observer); }

 private:
  ScaledTensor compute(const at::Tensor& x, const at::Tensor& scale);
  std::string method_;
  int64_t out_bits_, log_bits_;
  LayerObserver observer_;
};
TORCH_MODULE(IntSoftmax);

// GELU. ivit: 8-bit per-tensor input; ibert: the fc1 accumulator with per-channel scale (scale_out per channel,
// negative by construction, SPEC §3.1); fqvit: float GELU, scale_out undefined (the next QuantAct quantizes).
class IntGELUImpl : public torch::nn::Module {
 public:
  explicit IntGELUImpl(std::string method = "ivit", int64_t out_bits = 8);
  ScaledTensor forward(const at::Tensor& x, const at::Tensor& scale);
  const std::string& method() const { return method_; }
  void pretty_print(std::ostream& stream) const override;
  void set_observer(LayerObserver observer) { observer_ = std::move(observer); }

 private:
  ScaledTensor compute(const at::Tensor& x, const at::Tensor& scale);
  std::string method_;
  int64_t out_bits_;
  LayerObserver observer_;
};
TORCH_MODULE(IntGELU);

// LayerNorm over the last dim with parameters `weight` (γ, ones) and `bias` (β, zeros) as nn.LayerNorm. fqvit
// reads x through its own PtfAct `ptf` (ptf_bits) and needs scale_next, the scale of the QuantAct after it.
class IntLayerNormImpl : public torch::nn::Module {
 public:
  IntLayerNormImpl(int64_t normalized_shape, std::string method = "ivit", double eps = 1e-6, int64_t ptf_bits = 8);
  ScaledTensor forward(const at::Tensor& x, const at::Tensor& scale = {}, const at::Tensor& scale_next = {});
  const std::string& method() const { return method_; }
  void pretty_print(std::ostream& stream) const override;
  void set_observer(LayerObserver observer) { observer_ = std::move(observer); }

  at::Tensor weight, bias;
  PtfAct ptf{nullptr};

 private:
  ScaledTensor compute(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& scale_next);
  LayerObserver observer_;
  int64_t channels_;
  std::string method_;
  double eps_;
};
TORCH_MODULE(IntLayerNorm);

}  // namespace nn
}  // namespace mnq
