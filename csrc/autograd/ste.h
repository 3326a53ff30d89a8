// Straight-through estimators (SPEC §5): the fused fake-quant ops run their exact integer forward below the
// Autograd key; backward is the exact gradient of the float op they approximate, at the dequantized input.
#pragma once

#include <ATen/core/dispatch/Dispatcher.h>

#include <string>

namespace mnq {
namespace autograd {

// The typed dispatcher handle of mnq::<name> (looked up once per call site).
template <class Sig>
c10::TypedOperatorHandle<Sig> op_handle(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow((std::string("mnq::") + name).c_str(), "").typed<Sig>();
}

}  // namespace autograd
}  // namespace mnq
