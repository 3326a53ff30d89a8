// Autograd of the GELU QAT ops: forward = the integer method on round(x / S), backward = the gradient of
// F.gelu(x) (erf form) at x (straight-through, SPEC §5). The scale receives no gradient (scales are not learned).
#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include "csrc/autograd/ste.h"

namespace mnq {
namespace autograd {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

at::Tensor gelu_grad(const at::Tensor& grad, const at::Tensor& x) { return at::gelu_backward(grad, x, "none"); }

struct IbertGeluSte : public torch::autograd::Function<IbertGeluSte> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& scale) {
    ctx->save_for_backward({x});
    at::AutoDispatchBelowADInplaceOrView guard;
    static auto op = op_handle<at::Tensor(const at::Tensor&, const at::Tensor&)>("ibert_gelu_qat");
    return op.call(x, scale);
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    return {gelu_grad(grads[0], ctx->get_saved_variables()[0]), at::Tensor()};
  }
};

struct ShiftGeluSte : public torch::autograd::Function<ShiftGeluSte> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, double scale, int64_t out_bits, int64_t n) {
    ctx->save_for_backward({x});
    at::AutoDispatchBelowADInplaceOrView guard;
    static auto op = op_handle<at::Tensor(const at::Tensor&, double, int64_t, int64_t)>("shift_gelu_qat");
    return op.call(x, scale, out_bits, n);
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    return {gelu_grad(grads[0], ctx->get_saved_variables()[0]), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor ibert_gelu_qat(const at::Tensor& x, const at::Tensor& scale) { return IbertGeluSte::apply(x, scale); }
at::Tensor shift_gelu_qat(const at::Tensor& x, double scale, int64_t out_bits, int64_t n) {
  return ShiftGeluSte::apply(x, scale, out_bits, n);
}

}  // namespace

TORCH_LIBRARY_IMPL(mnq, Autograd, m) {
  m.impl("ibert_gelu_qat", &ibert_gelu_qat);
  m.impl("shift_gelu_qat", &shift_gelu_qat);
}

}  // namespace autograd
}  // namespace mnq
