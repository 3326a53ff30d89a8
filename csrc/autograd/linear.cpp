// Autograd of mnq::quant_linear (csrc/ops/quant_linear.h): the forward is the exact integer product; backward is
// the gradient of the float product x·Wᵀ + bias at the dequantized values, i.e. F.linear's (SPEC §1 STE): grad_x
// = g·W, grad_W = gᵀ·x (over every leading dim of x), grad_bias = Σ g. The scales take no gradient.
#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include "csrc/autograd/ste.h"

namespace mnq {
namespace autograd {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;
using LinearSig = at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                             const std::optional<at::Tensor>&);

at::Tensor run(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& weight, const at::Tensor& weight_scale,
               const std::optional<at::Tensor>& bias) {
  at::AutoDispatchBelowADInplaceOrView guard;
  static auto op = op_handle<LinearSig>("quant_linear");
  return op.call(x, scale, weight, weight_scale, bias);
}

// grad_x, grad_W and (when wanted) grad_bias of y = x·Wᵀ + bias for the output gradient g.
tensor_list linear_grads(const at::Tensor& g, const at::Tensor& x, const at::Tensor& w, bool with_bias) {
  const int64_t K = x.size(-1), N = w.size(0);
  const at::Tensor g2 = g.reshape({-1, N});
  tensor_list out{g.matmul(w), g2.t().mm(x.reshape({-1, K}))};
  if (with_bias) out.push_back(g2.sum(0));
  return out;
}

// Undefined tensors cannot be autograd Function inputs, so the forms with and without bias are two Functions.
struct QuantLinearSte : public torch::autograd::Function<QuantLinearSte> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& scale,
                            const at::Tensor& weight, const at::Tensor& weight_scale) {
    ctx->save_for_backward({x, weight});
    return run(x, scale, weight, weight_scale, std::nullopt);
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const tensor_list g = linear_grads(grads[0], saved[0], saved[1], false);
    return {g[0], at::Tensor(), g[1], at::Tensor()};
  }
};

struct QuantLinearBiasSte : public torch::autograd::Function<QuantLinearBiasSte> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& scale,
                            const at::Tensor& weight, const at::Tensor& weight_scale, const at::Tensor& bias) {
    ctx->save_for_backward({x, weight});
    return run(x, scale, weight, weight_scale, bias);
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const tensor_list g = linear_grads(grads[0], saved[0], saved[1], true);
    return {g[0], at::Tensor(), g[1], at::Tensor(), g[2]};
  }
};

at::Tensor quant_linear(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& weight,
                        const at::Tensor& weight_scale, const std::optional<at::Tensor>& bias) {
  const bool with_bias = bias.has_value() && bias->defined();
  // The kernel raises on a missing x or weight (a Function would fail on it without naming the argument).
  if (!x.defined() || !weight.defined() || !records_grad(x, weight, bias)) {
    return run(x, scale, weight, weight_scale, bias);
  }
  if (with_bias) return QuantLinearBiasSte::apply(x, scale, weight, weight_scale, *bias);
  return QuantLinearSte::apply(x, scale, weight, weight_scale);
}

}  // namespace

TORCH_LIBRARY_IMPL(mnq, Autograd, m) { m.impl("quant_linear", &quant_linear); }

}  // namespace autograd
}  // namespace mnq
