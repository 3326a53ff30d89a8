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

using TT = std::tuple<at::Tensor, at::Tensor>;

tensor_list finish(AutogradContext* ctx, const TT& r) {
  ctx->mark_non_differentiable({std::get<1>(r)});
  return {std::get<0>(r), std::get<1>(r)};
}

struct IbertGeluSte : public torch::autograd::Function<IbertGeluSte> {
  static tensor_list forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& scale) {
    ctx->save_for_backward({x});
    return finish(ctx, run(x, scale));
  }
  static TT run(const at::Tensor& x, const at::Tensor& scale) {
    at::AutoDispatchBelowADInplaceOrView guard;
    static auto op = op_handle<TT(const at::Tensor&, const at::Tensor&)>("ibert_gelu_qat");
    return op.call(x, scale);
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    return {gelu_grad(grads[0], ctx->get_saved_variables()[0]), at::Tensor()};
  }
};

struct ShiftGeluSte : public torch::autograd::Function<ShiftGeluSte> {
  static tensor_list forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& scale, int64_t out_bits,
                             int64_t n) {
    ctx->save_for_backward({x});
    return finish(ctx, run(x, scale, out_bits, n));
  }
  static TT run(const at::Tensor& x, const at::Tensor& scale, int64_t out_bits, int64_t n) {
    at::AutoDispatchBelowADInplaceOrView guard;
    static auto op = op_handle<TT(const at::Tensor&, const at::Tensor&, int64_t, int64_t)>("shift_gelu_qat");
    return op.call(x, scale, out_bits, n);
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    return {gelu_grad(grads[0], ctx->get_saved_variables()[0]), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

TT ibert_gelu_qat(const at::Tensor& x, const at::Tensor& scale) {
  if (!records_grad(x, scale)) return IbertGeluSte::run(x, scale);
  const tensor_list r = IbertGeluSte::apply(x, scale);
  return {r[0], r[1]};
}
TT shift_gelu_qat(const at::Tensor& x, const at::Tensor& scale, int64_t out_bits, int64_t n) {
  if (!records_grad(x, scale)) return ShiftGeluSte::run(x, scale, out_bits, n);
  const tensor_list r = ShiftGeluSte::apply(x, scale, out_bits, n);
  return {r[0], r[1]};
}

}  // namespace

TORCH_LIBRARY_IMPL(mnq, Autograd, m) {
  m.impl("ibert_gelu_qat", &ibert_gelu_qat);
  m.impl("shift_gelu_qat", &shift_gelu_qat);
}

}  // namespace autograd
}  // namespace mnq
