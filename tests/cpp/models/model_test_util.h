// Helpers shared by the model tests (test_qvit.cpp, test_qswin.cpp).
#pragma once

#include <ATen/core/grad_mode.h>
#include <ATen/core/Tensor.h>
#include <unistd.h>

#include <filesystem>
#include <string>

namespace mnq_test {

// `name` in a per-process temporary folder of the test `tag` (created on first use).
inline std::filesystem::path temp_file(const std::string& tag, const std::string& name) {
  const auto d = std::filesystem::temp_directory_path() / ("mnq_" + tag + "_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(d);
  return d / name;
}

// Training-mode forwards without gradients set every quantizer's range (what calibration does), on a quantized
// module holder (QuantVisionTransformer, QuantSwinTransformer) directly.
template <class Model>
void calibrate(Model& m, const at::Tensor& x, int batches = 3) {
  m->train();
  at::NoGradGuard no_grad;
  for (int i = 0; i < batches; ++i) m->forward(x);
}

}  // namespace mnq_test
