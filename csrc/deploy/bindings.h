// Python bindings of the deploy library: mnq._mnq's IntegerModel, convert, load_integer_model.
#pragma once

#include <pybind11/pybind11.h>

namespace mnq {
namespace deploy {

void bind_deploy(pybind11::module_& m);

}  // namespace deploy
}  // namespace mnq
