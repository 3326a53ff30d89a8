// Device helpers; see device.h.
#include "csrc/models/device.h"

#include <ATen/Context.h>
#include <torch/version.h>

// torch 2.9 added per-backend, per-op float32 precisions (torch.backends.*.fp32_precision); a setting made there
// is not undone by the legacy setters (they set "inherit"), so both are pinned where both exist.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 9)
#define MNQ_FP32_PRECISION_API 1
#endif

namespace mnq {
namespace models {
namespace {

#ifdef MNQ_FP32_PRECISION_API
constexpr at::Float32Backend kBackends[] = {at::Float32Backend::CUDA, at::Float32Backend::MKLDNN};
constexpr at::Float32Op kOps[] = {at::Float32Op::MATMUL, at::Float32Op::CONV, at::Float32Op::RNN};
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
#ifdef MNQ_FP32_PRECISION_API
  for (at::Float32Backend b : kBackends) {
    for (at::Float32Op op : kOps) ctx.setFloat32Precision(b, op, at::Float32Precision::IEEE);
  }
#endif
}

bool full_fp32_pinned() {
  const at::Context& ctx = at::globalContext();
#ifdef MNQ_FP32_PRECISION_API
  // The legacy getters throw when the two APIs disagree; these answer in every state.
  for (at::Float32Backend b : kBackends) {
    for (at::Float32Op op : kOps) {
      if (ctx.float32Precision(b, op) != at::Float32Precision::IEEE) return false;
    }
  }
  return true;
#else
  return !ctx.allowTF32CuBLAS() && !ctx.allowTF32CuDNN() &&
         ctx.float32MatmulPrecision() == at::Float32MatmulPrecision::HIGHEST;
#endif
}

std::string fp32_settings() {
  return full_fp32_pinned() ? "full FP32 (TF32 off in cuBLAS and cuDNN, float32 matmul precision highest)"
                            : "reduced-precision FP32 allowed (TF32 or bfloat16 in cuBLAS, cuDNN or oneDNN)";
}

}  // namespace models
}  // namespace mnq
