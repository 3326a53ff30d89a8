// Straight-through estimators (SPEC §5): the fused fake-quant ops run their exact integer forward below the
// Autograd key; backward is the exact gradient of the float op they approximate, at the dequantized input.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/GradMode.h>

#include <optional>
#include <string>

namespace mnq {
namespace autograd {

// The typed dispatcher handle of mnq::<name> (looked up once per call site).
template <class Sig>
c10::TypedOperatorHandle<Sig> op_handle(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow((std::string("mnq::") + name).c_str(), "").typed<Sig>();
}

// Whether a call must record an autograd node: grad mode is on and a tensor argument requires grad. When not (eval
// forwards, the analyzer's passes, inputs without grad), the QAT ops call their kernel directly below the Autograd
// key: a torch::autograd::Function builds its node, saved tensors and output wrapping even when nothing will take a
// gradient, ~1 µs a call, most of a small call's fixed cost. The outputs are the same, without grad either way.
inline bool requires_grad_arg(const at::Tensor& t) { return t.defined() && t.requires_grad(); }
inline bool requires_grad_arg(const std::optional<at::Tensor>& t) { return t.has_value() && requires_grad_arg(*t); }
template <class... T>
bool records_grad(const T&... t) {
  return c10::GradMode::is_enabled() && (requires_grad_arg(t) || ...);
}

}  // namespace autograd
}  // namespace mnq
