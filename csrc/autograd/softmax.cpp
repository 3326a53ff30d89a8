// Autograd of the softmax QAT ops: forward = the integer method on round(x / S), backward = the gradient of
// torch.softmax(x, -1) at x (straight-through, SPEC §5).
#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include "csrc/autograd/ste.h"

namespace mnq {
namespace autograd {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

enum Method : int64_t { kIbert = 0, kShift = 1, kLis = 2 };

using TT = std::tuple<at::Tensor, at::Tensor>;

struct SoftmaxSte : public torch::autograd::Function<SoftmaxSte> {
  static tensor_list forward(AutogradContext* ctx, const at::Tensor& x, int64_t method, const at::Tensor& scale,
                             int64_t bits, int64_t n) {
    ctx->save_for_backward({x});
    const TT r = run(x, method, scale, bits, n);
    ctx->mark_non_differentiable({std::get<1>(r)});
    return {std::get<0>(r), std::get<1>(r)};
  }
  static TT run(const at::Tensor& x, int64_t method, const at::Tensor& scale, int64_t bits, int64_t n) {
    at::AutoDispatchBelowADInplaceOrView guard;
    using Sig = TT(const at::Tensor&, const at::Tensor&, int64_t);
    TT r;
    switch (method) {
      case kIbert: {
        static auto op = op_handle<Sig>("ibert_softmax_qat");
        r = op.call(x, scale, bits);
        break;
      }
      case kShift: {
        static auto op = op_handle<TT(const at::Tensor&, const at::Tensor&, int64_t, int64_t)>("shiftmax_qat");
        r = op.call(x, scale, bits, n);
        break;
      }
      default: {
        static auto op = op_handle<Sig>("log_int_softmax_qat");
        r = op.call(x, scale, bits);
      }
    }
    return r;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const at::Tensor x = ctx->get_saved_variables()[0];
    const at::Tensor y = at::softmax(x, -1);
    return {at::_softmax_backward_data(grads[0], y, -1, x.scalar_type()), at::Tensor(), at::Tensor(), at::Tensor(),
            at::Tensor()};
  }
};

TT softmax_qat(const at::Tensor& x, Method method, const at::Tensor& scale, int64_t bits, int64_t n) {
  if (!records_grad(x, scale)) return SoftmaxSte::run(x, method, scale, bits, n);
  const tensor_list r = SoftmaxSte::apply(x, method, scale, bits, n);
  return {r[0], r[1]};
}

TT ibert_softmax_qat(const at::Tensor& x, const at::Tensor& scale, int64_t out_bits) {
  return softmax_qat(x, kIbert, scale, out_bits, 0);
}
TT shiftmax_qat(const at::Tensor& x, const at::Tensor& scale, int64_t out_bits, int64_t n) {
  return softmax_qat(x, kShift, scale, out_bits, n);
}
TT log_int_softmax_qat(const at::Tensor& x, const at::Tensor& scale, int64_t bits) {
  return softmax_qat(x, kLis, scale, bits, 0);
}

}  // namespace

TORCH_LIBRARY_IMPL(mnq, Autograd, m) {
  m.impl("ibert_softmax_qat", &ibert_softmax_qat);
  m.impl("shiftmax_qat", &shiftmax_qat);
  m.impl("log_int_softmax_qat", &log_int_softmax_qat);
}

}  // namespace autograd
}  // namespace mnq
