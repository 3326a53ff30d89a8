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

struct SoftmaxSte : public torch::autograd::Function<SoftmaxSte> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, int64_t method, double scale, int64_t bits,
                            int64_t n) {
    ctx->save_for_backward({x});
    at::AutoDispatchBelowADInplaceOrView guard;
    switch (method) {
      case kIbert: {
        static auto op = op_handle<at::Tensor(const at::Tensor&, double, int64_t)>("ibert_softmax_qat");
        return op.call(x, scale, bits);
      }
      case kShift: {
        static auto op = op_handle<at::Tensor(const at::Tensor&, double, int64_t, int64_t)>("shiftmax_qat");
        return op.call(x, scale, bits, n);
      }
      default: {
        static auto op = op_handle<at::Tensor(const at::Tensor&, double, int64_t)>("log_int_softmax_qat");
        return op.call(x, scale, bits);
      }
    }
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const at::Tensor x = ctx->get_saved_variables()[0];
    const at::Tensor y = at::softmax(x, -1);
    return {at::_softmax_backward_data(grads[0], y, -1, x.scalar_type()), at::Tensor(), at::Tensor(), at::Tensor(),
            at::Tensor()};
  }
};

at::Tensor ibert_softmax_qat(const at::Tensor& x, double scale, int64_t out_bits) {
  return SoftmaxSte::apply(x, kIbert, scale, out_bits, 0);
}
at::Tensor shiftmax_qat(const at::Tensor& x, double scale, int64_t out_bits, int64_t n) {
  return SoftmaxSte::apply(x, kShift, scale, out_bits, n);
}
at::Tensor log_int_softmax_qat(const at::Tensor& x, double scale, int64_t bits) {
  return SoftmaxSte::apply(x, kLis, scale, bits, 0);
}

}  // namespace

TORCH_LIBRARY_IMPL(mnq, Autograd, m) {
  m.impl("ibert_softmax_qat", &ibert_softmax_qat);
  m.impl("shiftmax_qat", &shiftmax_qat);
  m.impl("log_int_softmax_qat", &log_int_softmax_qat);
}

}  // namespace autograd
}  // namespace mnq
