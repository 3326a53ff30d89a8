// IntSoftmax, IntGELU, IntLayerNorm: the statements of python/mnq/nn/nonlinear.py.
#include "csrc/nn/nonlinear.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <array>
#include <cmath>

#include "csrc/ops.h"

namespace mnq {
namespace nn {
namespace {


ScaledTensor pair(std::tuple<at::Tensor, at::Tensor>&& r) { return {std::get<0>(r), std::get<1>(r)}; }

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
  const at::Tensor s = per_tensor_scale(scale, "IntSoftmax");
  if (method_ == "ivit") return pair(ops::shiftmax_qat(x, s, out_bits_));
  if (method_ == "ibert") return pair(ops::ibert_softmax_qat(x, s, out_bits_));
  return pair(ops::log_int_softmax_qat(x, s, log_bits_));
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
  if (method_ == "ivit") return pair(ops::shift_gelu_qat(x, per_tensor_scale(scale, "IntGELU"), out_bits_));
  if (method_ == "ibert") {
    TORCH_CHECK_VALUE(scale.defined(), "IntGELU(method='ibert'): the input scale is required");
    return pair(ops::ibert_gelu_qat(x, scale.detach().to(at::kDouble)));
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
    const at::Tensor s_next = per_tensor_scale(scale_next, "IntLayerNorm");
    return pair(ops::ptf_layernorm_qat(xq, sa.second, sa.first, weight, bias, s_next, eps_));
  }
  TORCH_CHECK_VALUE(scale.defined(), "IntLayerNorm(method='", method_, "'): the input scale is required");
  const at::Tensor s = per_tensor_scale(scale, "IntLayerNorm");
  return pair(method_ == "ivit" ? ops::ilayernorm_qat(x, s, weight, bias, eps_)
                                : ops::ibert_layernorm_qat(x, s, weight, bias, eps_));
}

void IntLayerNormImpl::pretty_print(std::ostream& stream) const {
  stream << "mnq::nn::IntLayerNorm(" << channels_ << ", eps=" << eps_ << ", method=" << method_ << ")";
}

}  // namespace nn
}  // namespace mnq
