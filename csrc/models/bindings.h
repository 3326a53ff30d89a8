// Python bindings of the model library (csrc/models): mnq._mnq's models part. csrc/bindings.cpp (the one
// PYBIND11_MODULE) calls bind_models; other parts of the library add their own bind_* the same way.
#pragma once

#include <pybind11/pybind11.h>

namespace mnq {
namespace models {

// Adds Model (a built ViT / DeiT / Swin, full precision or quantized), create, presets and mixable_layers.
void bind_models(pybind11::module_& m);

}  // namespace models
}  // namespace mnq
