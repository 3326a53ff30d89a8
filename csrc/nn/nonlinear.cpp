// IntSoftmax, IntGELU, IntLayerNorm: the statements of python/mnq/nn/nonlinear.py.
#include "csrc/nn/nonlinear.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <array>
#include <cmath>

#include "csrc/nn/ops.h"

namespace mnq {
namespace nn {
namespace {

double scalar(const at::Tensor& scale, const char* who) {
  TORCH_CHECK_VALUE(scale.defined() && scale.numel() == 1, who,
                    ": this method needs a per-tensor input scale, got shape ",
                    scale.defined() ? scale.sizes() : at::IntArrayRef{});
  return scale.detach().to(at::kCPU, at::kDouble).item<double>();
}

at::Tensor scale_tensor(double s) { return at::scalar_tensor(s, at::kDouble); }

}  // namespace

const std::string& check_method(const std::string& method, const char* who) {
  static const std::array<std::string, 3> allowed = {"ivit", "ibert", "fqvit"};
  TORCH_CHECK_VALUE(std::find(allowed.begin(), allowed.end(), method) != allowed.end(), who,
                    ": method must be one of ivit, ibert, fqvit; got '", method, "'");
  return method;
}

IntSoftmaxImpl::IntSoftmaxImpl(std::string method, int64_t out_bits, int64_t log_bits)
    : method_(check_method(method, "IntSoftmax")),
      out_bits_(check_bits(out_bits)),
      log_bits_(check_bits(log_bits, 8)) {}

ScaledTensor IntSoftmaxImpl::forward(const at::Tensor& x, const at::Tensor& scale) {
  ScaledTensor out = compute(x, scale);
  if (observer_) {
    const std::function<ScaledTensor(const at::Tensor&)> rerun = [&](const at::Tensor& x2) {
      return compute(x2, scale);
    };
    observer_(LayerCall{x, scale, out.first, out.second, rerun});
  }
  return out;
}

ScaledTensor IntSoftmaxImpl::compute(const at::Tensor& x, const at::Tensor& scale) {
  const double s = scalar(scale, "IntSoftmax");
  if (method_ == "ivit") return {ops::shiftmax_qat(x, s, out_bits_), scale_tensor(std::ldexp(1.0, -(out_bits_ - 1)))};
  if (method_ == "ibert") return {ops::ibert_softmax_qat(x, s, out_bits_), scale_tensor(std::ldexp(1.0, -out_bits_))};
  // values 2^-code: integers on the scale of the smallest code
  const int64_t max_code = (int64_t{1} << log_bits_) - 1;
  return {ops::log_int_softmax_qat(x, s, log_bits_), scale_tensor(std::ldexp(1.0, static_cast<int>(-max_code)))};
}

void IntSoftmaxImpl::pretty_print(std::ostream& stream) const {
  stream << "mnq::nn::IntSoftmax(method=" << method_ << ")";
}

IntGELUImpl::IntGELUImpl(std::string method, int64_t out_bits)
    : method_(check_method(method, "IntGELU")), out_bits_(check_bits(out_bits)) {}

ScaledTensor IntGELUImpl::forward(const at::Tensor& x, const at::Tensor& scale) {
  ScaledTensor out = compute(x, scale);
  if (observer_) {
    const std::function<ScaledTensor(const at::Tensor&)> rerun = [&](const at::Tensor& x2) {
      return compute(x2, scale);
    };
    observer_(LayerCall{x, scale, out.first, out.second, rerun});
  }
  return out;
}

ScaledTensor IntGELUImpl::compute(const at::Tensor& x, const at::Tensor& scale) {
  if (method_ == "ivit") {
    const double s = scalar(scale, "IntGELU");
    return {ops::shift_gelu_qat(x, s, out_bits_), scale_tensor(s * std::ldexp(1.0, -(out_bits_ - 1)))};
  }
  if (method_ == "ibert") {
    TORCH_CHECK_VALUE(scale.defined(), "IntGELU(method='ibert'): the input scale is required");
    const at::Tensor s = scale.detach().to(at::kDouble);
    // S_out from the op's own host constants (an empty input on x's device)
    std::vector<int64_t> shape = {0};
    if (s.dim() > 0) shape.push_back(s.numel());
    const at::Tensor empty = at::zeros(shape, at::TensorOptions().dtype(at::kInt).device(x.device()));
    const at::Tensor s_out = std::get<1>(ops::ibert_gelu(empty, s));
    return {ops::ibert_gelu_qat(x, s), s_out};
  }
  return {at::gelu(x), at::Tensor()};
}

void IntGELUImpl::pretty_print(std::ostream& stream) const { stream << "mnq::nn::IntGELU(method=" << method_ << ")"; }

IntLayerNormImpl::IntLayerNormImpl(int64_t normalized_shape, std::string method, double eps, int64_t ptf_bits)
    : channels_(normalized_shape), method_(check_method(method, "IntLayerNorm")), eps_(eps) {
  weight = register_parameter("weight", at::ones({normalized_shape}));
  bias = register_parameter("bias", at::zeros({normalized_shape}));
  if (method_ == "fqvit") ptf = register_module("ptf", PtfAct(normalized_shape, ptf_bits));
}

ScaledTensor IntLayerNormImpl::forward(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& scale_next) {
  ScaledTensor out = compute(x, scale, scale_next);
  if (observer_) {
    const std::function<ScaledTensor(const at::Tensor&)> rerun = [&](const at::Tensor& x2) {
      return compute(x2, scale, scale_next);
    };
    observer_(LayerCall{x, scale, out.first, out.second, rerun});
  }
  return out;
}

ScaledTensor IntLayerNormImpl::compute(const at::Tensor& x, const at::Tensor& scale,
                                       const at::Tensor& scale_next) {
  if (method_ == "fqvit") {
    TORCH_CHECK_VALUE(scale_next.defined(),
                      "IntLayerNorm(method='fqvit'): scale_next (the next QuantAct's scale) is required");
    auto [xq, sa] = ptf->forward(x);
    const double s_next = scalar(scale_next, "IntLayerNorm");
    return {ops::ptf_layernorm_qat(xq, sa.second, sa.first, weight, bias, s_next, eps_), scale_tensor(s_next)};
  }
  TORCH_CHECK_VALUE(scale.defined(), "IntLayerNorm(method='", method_, "'): the input scale is required");
  const double s = scalar(scale, "IntLayerNorm");
  const at::Tensor y = method_ == "ivit" ? ops::ilayernorm_qat(x, s, weight, bias, eps_)
                                         : ops::ibert_layernorm_qat(x, s, weight, bias, eps_);
  // Per-channel output scale Sy·γ, Sy = sqrt(C) / 2^30 (SPEC §4.1)
  const double s_y = std::sqrt(static_cast<double>(channels_)) / std::ldexp(1.0, 30);
  return {y, s_y * weight.detach().to(at::kDouble)};
}

void IntLayerNormImpl::pretty_print(std::ostream& stream) const {
  stream << "mnq::nn::IntLayerNorm(" << channels_ << ", eps=" << eps_ << ", method=" << method_ << ")";
}

}  // namespace nn
}  // namespace mnq
