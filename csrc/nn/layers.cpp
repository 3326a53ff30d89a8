// QuantLinear, QuantConv2d and quant_matmul: the statements of python/mnq/nn/layers.py.
#include "csrc/nn/layers.h"

#include <ATen/core/grad_mode.h>
#include <c10/util/Exception.h>

#include <atomic>
#include <memory>
#include <vector>

#include "csrc/ops.h"
#include "csrc/nn/weight_scale.h"

namespace mnq {
namespace nn {
at::Tensor weight_scale(const at::Tensor& w, int64_t bits) {
  const at::Tensor flat = w.detach().reshape({w.size(0), -1}).to(at::kDouble);
  return flat.abs().amax(-1).clamp_min(1e-8) / static_cast<double>((int64_t{1} << (bits - 1)) - 1);
}

namespace {

thread_local int frozen_depth = 0;          // FrozenWeightsScope nesting on this thread
thread_local uint64_t frozen_epoch = 0;     // this thread's current scope
std::atomic<uint64_t> next_epoch{1};        // a fresh epoch per outermost scope, process-wide
// The weights kept in this thread's current scope, released when its outermost scope ends (a layer that no longer
// exists has expired).
thread_local std::vector<std::weak_ptr<KeptWeight>> kept_in_scope;

// (fake-quantized weight, S_w) per output channel.
ScaledTensor quantize_weight(const at::Tensor& weight, int64_t bits) {
  const at::Tensor s_w = weight_scale(weight, bits);
  return {ops::quantize_qat(weight, s_w.to(weight.device()), bits, 0), s_w};
}

// quantize_weight, or the kept result when FrozenWeightsScope allows and the weight is unchanged.
ScaledTensor frozen_or_quantize(const std::shared_ptr<KeptWeight>& slot, const at::Tensor& weight, int64_t bits) {
  if (frozen_depth == 0 || at::GradMode::is_enabled()) return quantize_weight(weight, bits);
  KeptWeight& kept = *slot;
  if (kept.epoch == frozen_epoch && kept.source.is_same(weight) && kept.version == weight._version() &&
      kept.data == weight.data_ptr()) {
    return kept.value;
  }
  if (kept.epoch != frozen_epoch) kept_in_scope.push_back(slot);  // once per layer and scope
  kept = KeptWeight{weight, weight._version(), weight.data_ptr(), frozen_epoch, quantize_weight(weight, bits)};
  return kept.value;
}

// Fake-quantized weight (per output channel), bias on S_a·S_w (32 bits), and the output scale.
struct FakeQuantParams {
  at::Tensor weight, bias, scale_out;
};

FakeQuantParams fake_quant_params(const std::shared_ptr<KeptWeight>& kept, const at::Tensor& weight, const at::Tensor& bias,
                                  const at::Tensor& scale, int64_t bits, const char* who) {
  const at::Tensor s_a = per_tensor_scale(scale, who);
  const auto [wq, s_w] = frozen_or_quantize(kept, weight, bits);
  FakeQuantParams p;
  p.weight = wq;
  p.scale_out = s_a.to(s_w.device()) * s_w;
  if (bias.defined()) p.bias = ops::quantize_qat(bias, p.scale_out.to(bias.device()), 32);
  return p;
}

}  // namespace

FrozenWeightsScope::FrozenWeightsScope() {
  if (frozen_depth++ == 0) frozen_epoch = next_epoch++;
}

FrozenWeightsScope::~FrozenWeightsScope() {
  if (--frozen_depth != 0) return;
  frozen_epoch = 0;
  for (const auto& w : kept_in_scope) {
    if (const auto kept = w.lock()) *kept = KeptWeight{};  // the copy and its hold on the weight, freed now
  }
  kept_in_scope.clear();
}

QuantLinearImpl::QuantLinearImpl(int64_t in_features, int64_t out_features, bool bias, int64_t bits)
    : torch::nn::LinearImpl(torch::nn::LinearOptions(in_features, out_features).bias(bias)), bits_(check_bits(bits)) {}

// The exact integer product (SPEC §1; csrc/ops/quant_linear.h), its bias quantized inside on S_a·S_w.
ScaledTensor QuantLinearImpl::forward(const at::Tensor& x, const at::Tensor& scale) {
  const at::Tensor s_a = per_tensor_scale(scale, "QuantLinear");
  const auto [wq, s_w] = frozen_or_quantize(kept_, weight, bits_);
  const std::optional<at::Tensor> b = bias.defined() ? std::optional<at::Tensor>(bias) : std::nullopt;
  return {ops::quant_linear(x, s_a, wq, s_w, b), s_a.to(s_w.device()) * s_w};
}

ScaledTensor QuantLinearImpl::quantized_weight() const { return quantize_weight(weight, bits_); }

void QuantLinearImpl::pretty_print(std::ostream& stream) const {
  stream << "mnq::nn::QuantLinear(in_features=" << options.in_features() << ", out_features=" << options.out_features()
         << ", bias=" << options.bias() << ", bits=" << bits_ << ")";
}

QuantConv2dImpl::QuantConv2dImpl(const torch::nn::Conv2dOptions& options, int64_t bits)
    : torch::nn::Conv2dImpl(options), bits_(check_bits(bits)) {
  TORCH_CHECK_VALUE(std::holds_alternative<torch::ExpandingArray<2>>(options.padding()),
                    "QuantConv2d: only numeric zero padding is supported");
  TORCH_CHECK_VALUE(std::holds_alternative<torch::enumtype::kZeros>(options.padding_mode()),
                    "QuantConv2d: only zero padding is supported");
}

ScaledTensor QuantConv2dImpl::forward(const at::Tensor& x, const at::Tensor& scale) {
  const FakeQuantParams p = fake_quant_params(kept_, weight, bias, scale, bits_, "QuantConv2d");
  const auto& pad = std::get<torch::ExpandingArray<2>>(options.padding());
  return {at::conv2d(x, p.weight, p.bias, options.stride(), pad, options.dilation(), options.groups()), p.scale_out};
}

void QuantConv2dImpl::pretty_print(std::ostream& stream) const {
  stream << "mnq::nn::QuantConv2d(" << options.in_channels() << ", " << options.out_channels()
         << ", kernel_size=" << options.kernel_size() << ", stride=" << options.stride() << ", bits=" << bits_ << ")";
}

ScaledTensor quant_matmul(const at::Tensor& a, const at::Tensor& scale_a, const at::Tensor& b,
                          const at::Tensor& scale_b) {
  const at::Tensor s_a = per_tensor_scale(scale_a, "QuantMatMul"), s_b = per_tensor_scale(scale_b, "QuantMatMul");
  return {ops::quant_matmul(a, s_a, b, s_b), s_a * s_b};  // the exact integer product (SPEC §1; quant_matmul.h)
}

}  // namespace nn
}  // namespace mnq
