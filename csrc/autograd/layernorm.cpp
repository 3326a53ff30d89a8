// Autograd of the LayerNorm QAT ops: forward = the integer method on the recovered codes, backward = the exact
// gradient of layer_norm(x, [C], weight, bias, eps) at the dequantized input x, for x, weight and bias
// (straight-through, SPEC §5; β receives its gradient too, a deviation from I-BERT and I-ViT, which detach it).
#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include "csrc/autograd/ste.h"
#include "csrc/checks.h"

namespace mnq {
namespace autograd {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// The layer_norm gradients (dx, dweight, dbias) at the saved (x, weight, bias), eps in saved_data.
std::tuple<at::Tensor, at::Tensor, at::Tensor> layer_norm_grads(AutogradContext* ctx, const at::Tensor& grad) {
  const auto saved = ctx->get_saved_variables();
  const at::Tensor& x = saved[0];
  const double eps = ctx->saved_data["eps"].toDouble();
  // layer_norm wants its parameters in the input's dtype; their gradients go back in their own dtype.
  const at::Tensor w = saved[1].to(x.scalar_type());
  const at::Tensor b = saved[2].to(x.scalar_type());
  const std::vector<int64_t> shape{x.size(-1)};
  const auto stats = at::native_layer_norm(x, shape, w, b, eps);
  const auto g =
      at::native_layer_norm_backward(grad, x, shape, std::get<1>(stats), std::get<2>(stats), w, b, {true, true, true});
  return {std::get<0>(g), std::get<1>(g).to(saved[1].scalar_type()), std::get<2>(g).to(saved[2].scalar_type())};
}

void save(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps) {
  ctx->save_for_backward({x, weight, bias});
  ctx->saved_data["eps"] = eps;
}

using TT = std::tuple<at::Tensor, at::Tensor>;

tensor_list finish(AutogradContext* ctx, const TT& r) {
  ctx->mark_non_differentiable({std::get<1>(r)});
  return {std::get<0>(r), std::get<1>(r)};
}

enum Method : int64_t { kIvit = 0, kIbert = 1 };

// I-LayerNorm and I-BERT LayerNorm (per-tensor input scale).
struct AffineLnSte : public torch::autograd::Function<AffineLnSte> {
  static tensor_list forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& scale,
                             const at::Tensor& weight, const at::Tensor& bias, double eps, int64_t method) {
    save(ctx, x, weight, bias, eps);
    return finish(ctx, run(x, scale, weight, bias, eps, method));
  }
  static TT run(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& weight, const at::Tensor& bias,
                double eps, int64_t method) {
    at::AutoDispatchBelowADInplaceOrView guard;
    using Sig = TT(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, double);
    if (method == kIvit) {
      static auto op = op_handle<Sig>("ilayernorm_qat");
      return op.call(x, scale, weight, bias, eps);
    }
    static auto op = op_handle<Sig>("ibert_layernorm_qat");
    return op.call(x, scale, weight, bias, eps);
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto [dx, dw, db] = layer_norm_grads(ctx, grads[0]);
    return {dx, at::Tensor(), dw, db, at::Tensor(), at::Tensor()};
  }
};

// PTF LayerNorm (per-channel input scales s_base·2^alpha).
struct PtfLnSte : public torch::autograd::Function<PtfLnSte> {
  static tensor_list forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& alpha,
                             const at::Tensor& s_base, const at::Tensor& weight, const at::Tensor& bias,
                             const at::Tensor& scale_next, double eps) {
    save(ctx, x, weight, bias, eps);
    return finish(ctx, run(x, alpha, s_base, weight, bias, scale_next, eps));
  }
  static TT run(const at::Tensor& x, const at::Tensor& alpha, const at::Tensor& s_base, const at::Tensor& weight,
                const at::Tensor& bias, const at::Tensor& scale_next, double eps) {
    at::AutoDispatchBelowADInplaceOrView guard;
    static auto op = op_handle<TT(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                  const at::Tensor&, const at::Tensor&, double)>("ptf_layernorm_qat");
    return op.call(x, alpha, s_base, weight, bias, scale_next, eps);
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto [dx, dw, db] = layer_norm_grads(ctx, grads[0]);
    return {dx, at::Tensor(), at::Tensor(), dw, db, at::Tensor(), at::Tensor()};
  }
};

TT pair(const tensor_list& r) { return {r[0], r[1]}; }

void check_affine_given(const char* op, const at::Tensor& weight, const at::Tensor& bias) {
  ops::check_given(op, "weight", weight);
  ops::check_given(op, "bias", bias);
}

TT ilayernorm_qat(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& weight, const at::Tensor& bias,
                  double eps) {
  check_affine_given("ilayernorm_qat", weight, bias);
  if (!records_grad(x, scale, weight, bias)) return AffineLnSte::run(x, scale, weight, bias, eps, kIvit);
  return pair(AffineLnSte::apply(x, scale, weight, bias, eps, kIvit));
}
TT ibert_layernorm_qat(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& weight, const at::Tensor& bias,
                       double eps) {
  check_affine_given("ibert_layernorm_qat", weight, bias);
  if (!records_grad(x, scale, weight, bias)) return AffineLnSte::run(x, scale, weight, bias, eps, kIbert);
  return pair(AffineLnSte::apply(x, scale, weight, bias, eps, kIbert));
}
TT ptf_layernorm_qat(const at::Tensor& x, const at::Tensor& alpha, const at::Tensor& s_base, const at::Tensor& weight,
                     const at::Tensor& bias, const at::Tensor& scale_next, double eps) {
  check_affine_given("ptf_layernorm_qat", weight, bias);
  if (!records_grad(x, alpha, s_base, weight, bias, scale_next)) {
    return PtfLnSte::run(x, alpha, s_base, weight, bias, scale_next, eps);
  }
  return pair(PtfLnSte::apply(x, alpha, s_base, weight, bias, scale_next, eps));
}

}  // namespace

TORCH_LIBRARY_IMPL(mnq, Autograd, m) {
  m.impl("ilayernorm_qat", &ilayernorm_qat);
  m.impl("ibert_layernorm_qat", &ibert_layernorm_qat);
  m.impl("ptf_layernorm_qat", &ptf_layernorm_qat);
}

}  // namespace autograd
}  // namespace mnq
