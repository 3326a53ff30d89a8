// Python bindings of the trainer (csrc/train): mnq._mnq's train and train_cli.
#pragma once

#include <pybind11/pybind11.h>

namespace mnq {
namespace train {

void bind_train(pybind11::module_& m);

}  // namespace train
}  // namespace mnq
