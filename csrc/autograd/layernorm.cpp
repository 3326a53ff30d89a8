// Autograd of the LayerNorm QAT ops: forward = the integer method on the recovered codes, backward = the exact
// gradient of layer_norm(x, [C], weight, bias, eps) at the dequantized input x, for x, weight and bias
// (straight-through, SPEC §5; β receives its gradient too, a deviation from I-BERT and I-ViT, which detach it).
#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include "csrc/autograd/ste.h"

namespace mnq {
namespace autograd {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

enum Method : int64_t { kIvit = 0, kIbert = 1, kPtf = 2 };

struct LayerNormSte : public torch::autograd::Function<LayerNormSte> {
  // `scale` is the per-tensor input scale (ivit, ibert) or s_base (ptf); alpha and scale_next are ptf's only.
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const at::Tensor& bias, double eps, int64_t method, double scale,
                            const at::Tensor& alpha, double scale_next) {
    ctx->save_for_backward({x, weight, bias});
    ctx->saved_data["eps"] = eps;
    at::AutoDispatchBelowADInplaceOrView guard;
    using AffineSig = at::Tensor(const at::Tensor&, double, const at::Tensor&, const at::Tensor&, double);
    switch (method) {
      case kIvit: {
        static auto op = op_handle<AffineSig>("ilayernorm_qat");
        return op.call(x, scale, weight, bias, eps);
      }
      case kIbert: {
        static auto op = op_handle<AffineSig>("ibert_layernorm_qat");
        return op.call(x, scale, weight, bias, eps);
      }
      default: {
        static auto op = op_handle<at::Tensor(const at::Tensor&, const at::Tensor&, double, const at::Tensor&,
                                              const at::Tensor&, double, double)>("ptf_layernorm_qat");
        return op.call(x, alpha, scale, weight, bias, scale_next, eps);
      }
    }
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const double eps = ctx->saved_data["eps"].toDouble();
    // layer_norm wants its parameters in the input's dtype; their gradients go back in their own dtype.
    const at::Tensor w = saved[1].to(x.scalar_type());
    const at::Tensor b = saved[2].to(x.scalar_type());
    const std::vector<int64_t> shape{x.size(-1)};
    const auto stats = at::native_layer_norm(x, shape, w, b, eps);
    const auto g = at::native_layer_norm_backward(grads[0], x, shape, std::get<1>(stats), std::get<2>(stats), w, b,
                                                  {true, true, true});
    return {std::get<0>(g), std::get<1>(g).to(saved[1].scalar_type()), std::get<2>(g).to(saved[2].scalar_type()),
            at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor ilayernorm_qat(const at::Tensor& x, double scale, const at::Tensor& weight, const at::Tensor& bias,
                          double eps) {
  return LayerNormSte::apply(x, weight, bias, eps, kIvit, scale, at::Tensor(), 0.0);
}
at::Tensor ibert_layernorm_qat(const at::Tensor& x, double scale, const at::Tensor& weight, const at::Tensor& bias,
                               double eps) {
  return LayerNormSte::apply(x, weight, bias, eps, kIbert, scale, at::Tensor(), 0.0);
}
at::Tensor ptf_layernorm_qat(const at::Tensor& x, const at::Tensor& alpha, double s_base, const at::Tensor& weight,
                             const at::Tensor& bias, double scale_next, double eps) {
  return LayerNormSte::apply(x, weight, bias, eps, kPtf, s_base, alpha, scale_next);
}

}  // namespace

TORCH_LIBRARY_IMPL(mnq, Autograd, m) {
  m.impl("ilayernorm_qat", &ilayernorm_qat);
  m.impl("ibert_layernorm_qat", &ibert_layernorm_qat);
  m.impl("ptf_layernorm_qat", &ptf_layernorm_qat);
}

}  // namespace autograd
}  // namespace mnq
