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
    return run(x, scale, bits, axis);
  }
  static at::Tensor run(const at::Tensor& x, const at::Tensor& scale, int64_t bits, int64_t axis) {
    at::AutoDispatchBelowADInplaceOrView guard;
    static auto op = op_handle<at::Tensor(const at::Tensor&, const at::Tensor&, int64_t, int64_t)>("quantize_qat");
    return op.call(x, scale, bits, axis);
  }
  static tensor_list backward(AutogradContext*, tensor_list grads) {
    return {grads[0], at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

struct PtfQuantizeSte : public torch::autograd::Function<PtfQuantizeSte> {
  static at::Tensor forward(AutogradContext*, const at::Tensor& x, const at::Tensor& alpha, const at::Tensor& s_base,
                            int64_t bits) {
    return run(x, alpha, s_base, bits);
  }
  static at::Tensor run(const at::Tensor& x, const at::Tensor& alpha, const at::Tensor& s_base, int64_t bits) {
    at::AutoDispatchBelowADInplaceOrView guard;
    static auto op =
        op_handle<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t)>("ptf_quantize_qat");
    return op.call(x, alpha, s_base, bits);
  }
  static tensor_list backward(AutogradContext*, tensor_list grads) {
    return {grads[0], at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

using RequantSig = at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t,
                              const std::optional<at::Tensor>&, const std::optional<at::Tensor>&);

// Undefined tensors cannot be autograd Function inputs, so the residual and plain forms are two Functions.
struct RequantSte : public torch::autograd::Function<RequantSte> {
  static at::Tensor forward(AutogradContext*, const at::Tensor& x, const at::Tensor& scale_in, const at::Tensor& scale_out,
                            int64_t bits) {
    at::AutoDispatchBelowADInplaceOrView guard;
    static auto op = op_handle<RequantSig>("requant_qat");
    return op.call(x, scale_in, scale_out, bits, std::nullopt, std::nullopt);
  }
  static tensor_list backward(AutogradContext*, tensor_list grads) {
    return {grads[0], at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

struct RequantResidualSte : public torch::autograd::Function<RequantResidualSte> {
  static at::Tensor forward(AutogradContext*, const at::Tensor& x, const at::Tensor& scale_in, const at::Tensor& scale_out,
                            int64_t bits, const at::Tensor& identity, const at::Tensor& identity_scale) {
    at::AutoDispatchBelowADInplaceOrView guard;
    static auto op = op_handle<RequantSig>("requant_qat");
    return op.call(x, scale_in, scale_out, bits, identity, identity_scale);
  }
  static tensor_list backward(AutogradContext*, tensor_list grads) {
    return {grads[0], at::Tensor(), at::Tensor(), at::Tensor(), grads[0], at::Tensor()};
  }
};

at::Tensor quantize_qat(const at::Tensor& x, const at::Tensor& scale, int64_t bits, int64_t axis) {
  if (!records_grad(x, scale)) return QuantizeSte::run(x, scale, bits, axis);
  return QuantizeSte::apply(x, scale, bits, axis);
}
at::Tensor ptf_quantize_qat(const at::Tensor& x, const at::Tensor& alpha, const at::Tensor& s_base, int64_t bits) {
  if (!records_grad(x, alpha, s_base)) return PtfQuantizeSte::run(x, alpha, s_base, bits);
  return PtfQuantizeSte::apply(x, alpha, s_base, bits);
}
at::Tensor requant_qat(const at::Tensor& x, const at::Tensor& scale_in, const at::Tensor& scale_out, int64_t bits,
                       const std::optional<at::Tensor>& identity, const std::optional<at::Tensor>& identity_scale) {
  static auto op = op_handle<RequantSig>("requant_qat");
  // Without a node to record, or with identity and identity_scale not given together (the op raises its argument
  // error), the kernel itself.
  if (!records_grad(x, scale_in, scale_out, identity, identity_scale) ||
      identity.has_value() != identity_scale.has_value()) {
    at::AutoDispatchBelowADInplaceOrView guard;
    return op.call(x, scale_in, scale_out, bits, identity, identity_scale);
  }
  if (identity.has_value()) return RequantResidualSte::apply(x, scale_in, scale_out, bits, *identity, *identity_scale);
  return RequantSte::apply(x, scale_in, scale_out, bits);
}

}  // namespace

TORCH_LIBRARY_IMPL(mnq, Autograd, m) {
  m.impl("quantize_qat", &quantize_qat);
  m.impl("ptf_quantize_qat", &ptf_quantize_qat);
  m.impl("requant_qat", &requant_qat);
}

}  // namespace autograd
}  // namespace mnq
