// Python bindings of the model library (csrc/models): mnq._mnq's models part. csrc/bindings.cpp (the one
// PYBIND11_MODULE) calls bind_models; other parts of the library add their own bind_* the same way.
#pragma once

#include <pybind11/pybind11.h>

namespace mnq {
namespace models {

// Adds Model (a built ViT / DeiT / Swin, full precision or quantized), create, presets and mixable_layers.
void bind_models(pybind11::module_& m);

struct Model;
// The models::Model inside a mnq._mnq.Model (for the other bindings: the analyzer, the trainer); throws
// ValueError naming `who` when `obj` is not one.
Model& model_of(pybind11::handle obj, const char* who);
// A models::Model as a new mnq._mnq.Model.
pybind11::object wrap_model(Model model);

}  // namespace models
}  // namespace mnq
