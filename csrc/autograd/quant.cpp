// Autograd of the fake-quant quantizers: straight-through (SPEC §1 "STE"): the gradient passes unchanged to the
// input (and to the fused residual), with no clipping mask; scales are not learned.
#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include "csrc/autograd/ste.h"

namespace mnq {
namespace autograd {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

struct QuantizeSte : public torch::autograd::Function<QuantizeSte> {
  static at::Tensor forward(AutogradContext*, const at::Tensor& x, const at::Tensor& scale, int64_t bits,
                            int64_t axis) {
    at::AutoDispatchBelowADInplaceOrView guard;
    static auto op = op_handle<at::Tensor(const at::Tensor&, const at::Tensor&, int64_t, int64_t)>("quantize_qat");
    return op.call(x, scale, bits, axis);
  }
  static tensor_list backward(AutogradContext*, tensor_list grads) {
    return {grads[0], at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

struct PtfQuantizeSte : public torch::autograd::Function<PtfQuantizeSte> {
  static at::Tensor forward(AutogradContext*, const at::Tensor& x, const at::Tensor& alpha, double s_base,
                            int64_t bits) {
    at::AutoDispatchBelowADInplaceOrView guard;
    static auto op = op_handle<at::Tensor(const at::Tensor&, const at::Tensor&, double, int64_t)>("ptf_quantize_qat");
    return op.call(x, alpha, s_base, bits);
  }
  static tensor_list backward(AutogradContext*, tensor_list grads) {
    return {grads[0], at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

using RequantSig = at::Tensor(const at::Tensor&, const at::Tensor&, double, int64_t,
                              const std::optional<at::Tensor>&, const std::optional<at::Tensor>&);

struct RequantSte : public torch::autograd::Function<RequantSte> {
  // identity / identity_scale undefined when there is no residual.
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& scale_in, double scale_out,
                            int64_t bits, const at::Tensor& identity, const at::Tensor& identity_scale) {
    ctx->saved_data["has_identity"] = identity.defined();
    at::AutoDispatchBelowADInplaceOrView guard;
    static auto op = op_handle<RequantSig>("requant_qat");
    std::optional<at::Tensor> id, ids;
    if (identity.defined()) {
      id = identity;
      ids = identity_scale;
    }
    return op.call(x, scale_in, scale_out, bits, id, ids);
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const bool has_identity = ctx->saved_data["has_identity"].toBool();
    return {grads[0], at::Tensor(), at::Tensor(), at::Tensor(), has_identity ? grads[0] : at::Tensor(),
            at::Tensor()};
  }
};

at::Tensor quantize_qat(const at::Tensor& x, const at::Tensor& scale, int64_t bits, int64_t axis) {
  return QuantizeSte::apply(x, scale, bits, axis);
}
at::Tensor ptf_quantize_qat(const at::Tensor& x, const at::Tensor& alpha, double s_base, int64_t bits) {
  return PtfQuantizeSte::apply(x, alpha, s_base, bits);
}
at::Tensor requant_qat(const at::Tensor& x, const at::Tensor& scale_in, double scale_out, int64_t bits,
                       const std::optional<at::Tensor>& identity, const std::optional<at::Tensor>& identity_scale) {
  return RequantSte::apply(x, scale_in, scale_out, bits, identity.value_or(at::Tensor()),
                           identity_scale.value_or(at::Tensor()));
}

}  // namespace

TORCH_LIBRARY_IMPL(mnq, Autograd, m) {
  m.impl("quantize_qat", &quantize_qat);
  m.impl("ptf_quantize_qat", &ptf_quantize_qat);
  m.impl("requant_qat", &requant_qat);
}

}  // namespace autograd
}  // namespace mnq
