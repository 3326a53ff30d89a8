// Python bindings of the model library (csrc/models): mnq._mnq's models part. csrc/bindings.cpp (the one
// PYBIND11_MODULE) calls bind_models; other parts of the library add their own bind_* the same way.
#pragma once

#include <pybind11/pybind11.h>

#include <memory>
#include <stdexcept>
#include <string>

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

// A C++ RAII scope (nn::FrozenWeightsScope, analysis::CpuBufferCacheScope) as the Python context manager class
// `name`: each `with` enters a new Scope and its exit leaves it; entering an object that is already entered is
// refused (a RuntimeError naming `who`), so that scopes stay balanced.
template <class Scope>
void bind_scope(pybind11::module_& m, const char* name, const char* who, const char* doc) {
  struct Holder {
    std::unique_ptr<Scope> scope;
  };
  pybind11::class_<Holder>(m, name, doc)
      .def(pybind11::init<>())
      .def("__enter__",
           [who](Holder& h) -> Holder& {
             if (h.scope) throw std::runtime_error(std::string(who) + ": this scope is already entered");
             h.scope = std::make_unique<Scope>();
             return h;
           })
      .def("__exit__", [](Holder& h, const pybind11::args&) { h.scope.reset(); });
}

}  // namespace models
}  // namespace mnq
