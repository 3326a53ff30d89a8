// Autograd of mnq::quant_matmul (csrc/ops/quant_matmul.h): the forward is the exact integer product; backward is
// the gradient of the float product a @ b at the dequantized values (SPEC §1 STE): grad_a = g @ bᵀ,
// grad_b = aᵀ @ g. The scales take no gradient.
#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include "csrc/autograd/ste.h"

namespace mnq {
namespace autograd {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;
using MatmulSig = at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&);

at::Tensor run(const at::Tensor& a, const at::Tensor& scale_a, const at::Tensor& b, const at::Tensor& scale_b) {
  at::AutoDispatchBelowADInplaceOrView guard;
  static auto op = op_handle<MatmulSig>("quant_matmul");
  return op.call(a, scale_a, b, scale_b);
}

struct QuantMatmulSte : public torch::autograd::Function<QuantMatmulSte> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& a, const at::Tensor& scale_a, const at::Tensor& b,
                            const at::Tensor& scale_b) {
    ctx->save_for_backward({a, b});
    return run(a, scale_a, b, scale_b);
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& g = grads[0];
    return {g.matmul(saved[1].transpose(-2, -1)), at::Tensor(), saved[0].transpose(-2, -1).matmul(g), at::Tensor()};
  }
};

at::Tensor quant_matmul(const at::Tensor& a, const at::Tensor& scale_a, const at::Tensor& b,
                        const at::Tensor& scale_b) {
  // The kernel raises on a missing a or b (a Function would fail on it without naming the argument).
  if (!a.defined() || !b.defined() || !records_grad(a, b)) return run(a, scale_a, b, scale_b);
  return QuantMatmulSte::apply(a, scale_a, b, scale_b);
}

}  // namespace

TORCH_LIBRARY_IMPL(mnq, Autograd, m) { m.impl("quant_matmul", &quant_matmul); }

}  // namespace autograd
}  // namespace mnq
