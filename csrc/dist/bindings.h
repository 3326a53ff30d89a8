// Python bindings of csrc/dist (part of mnq._mnq).
#pragma once

#include <pybind11/pybind11.h>

namespace mnq {
namespace dist {
void bind_dist(pybind11::module_& m);
}  // namespace dist
}  // namespace mnq
