// Device helpers; see device.h.
#include "csrc/models/device.h"

#include <ATen/Context.h>
#include <torch/nn/module.h>
#include <torch/version.h>

#include "csrc/models/factory.h"

// torch 2.9 added per-backend, per-op float32 precisions (torch.backends.*.fp32_precision): set by strings in 2.9,
// by enums from 2.10. A setting made there is not undone by the legacy setters (they set "inherit"), so both are
// pinned where both exist.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 10)
#define MNQ_FP32_PRECISION_ENUMS 1
#elif TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR == 9
#define MNQ_FP32_PRECISION_STRINGS 1
#endif

namespace mnq {
namespace models {
namespace {

// The backends and ops whose precision is pinned (CUDA: cuBLAS and cuDNN; MKLDNN: oneDNN on the CPU).
#if defined(MNQ_FP32_PRECISION_ENUMS)
constexpr at::Float32Backend kBackends[] = {at::Float32Backend::CUDA, at::Float32Backend::MKLDNN};
constexpr at::Float32Op kOps[] = {at::Float32Op::MATMUL, at::Float32Op::CONV, at::Float32Op::RNN};
void set_ieee(at::Context& ctx, at::Float32Backend b, at::Float32Op op) {
  ctx.setFloat32Precision(b, op, at::Float32Precision::IEEE);
}
bool is_ieee(const at::Context& ctx, at::Float32Backend b, at::Float32Op op) {
  return ctx.float32Precision(b, op) == at::Float32Precision::IEEE;
}
#elif defined(MNQ_FP32_PRECISION_STRINGS)
const char* const kBackends[] = {"cuda", "mkldnn"};
const char* const kOps[] = {"matmul", "conv", "rnn"};
void set_ieee(at::Context& ctx, const char* b, const char* op) { ctx.setFloat32Precision(b, op, "ieee"); }
bool is_ieee(const at::Context& ctx, const char* b, const char* op) { return ctx.float32Precision(b, op) == "ieee"; }
#endif

}  // namespace

at::TensorOptions host_staging(at::ScalarType dtype, at::Device target) {
  // A CUDA target implies a CUDA build and device: pinned memory is never asked of a CPU-only torch.
  return at::TensorOptions().dtype(dtype).device(at::kCPU).pinned_memory(target.is_cuda());
}

at::Tensor to_device_async(const at::Tensor& host, at::Device target) { return host.to(target, /*non_blocking=*/true); }

void pin_full_fp32() {
  at::Context& ctx = at::globalContext();
  ctx.setAllowTF32CuBLAS(false);
  ctx.setAllowTF32CuDNN(false);
  ctx.setFloat32MatmulPrecision("highest");
#if defined(MNQ_FP32_PRECISION_ENUMS) || defined(MNQ_FP32_PRECISION_STRINGS)
  for (const auto& b : kBackends) {
    for (const auto& op : kOps) set_ieee(ctx, b, op);
  }
#endif
}

bool full_fp32_pinned() {
  const at::Context& ctx = at::globalContext();
#if defined(MNQ_FP32_PRECISION_ENUMS) || defined(MNQ_FP32_PRECISION_STRINGS)
  // The legacy getters throw when the two APIs disagree; these answer in every state.
  for (const auto& b : kBackends) {
    for (const auto& op : kOps) {
      if (!is_ieee(ctx, b, op)) return false;
    }
  }
  return true;
#else
  return !ctx.allowTF32CuBLAS() && !ctx.allowTF32CuDNN() &&
         ctx.float32MatmulPrecision() == at::Float32MatmulPrecision::HIGHEST;
#endif
}

at::Device model_device(const Model& model) {
  const auto params = model.module->parameters();
  return params.empty() ? at::Device(at::kCPU) : params.front().device();
}

std::string fp32_settings() {
  return full_fp32_pinned() ? "full FP32 (TF32 off in cuBLAS and cuDNN, float32 matmul precision highest)"
                            : "reduced-precision FP32 allowed (TF32 or bfloat16 in cuBLAS, cuDNN or oneDNN)";
}

}  // namespace models
}  // namespace mnq
