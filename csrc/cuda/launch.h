// What every CUDA backend does around its kernels/*.cuh launch: the device guard, the current stream, the memory of
// the range-check flag (from torch's caching allocator, so no allocation happens outside it), and the translation
// of a failed launch (kernels::CudaError, a std::runtime_error: kernels/ cannot include torch) into a c10::Error
// naming the op.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/util/Exception.h>

#include "kernels/cuda_utils.cuh"

namespace mnq {
namespace ops {
namespace cuda {

// The flag memory of a checked launch: one int32 on `like`'s device (ErrorFlag clears it on the stream).
class FlagMemory {
 public:
  FlagMemory(const at::Tensor& like, bool check)
      : t_(check ? at::empty({1}, like.options().dtype(at::kInt)) : at::Tensor()) {}
  int* get() const { return t_.defined() ? t_.data_ptr<int>() : nullptr; }

 private:
  at::Tensor t_;
};

// Runs f(stream) on `like`'s device and current stream; a kernels::CudaError becomes a c10::Error "op: ...".
template <class F>
auto run_on_device(const char* op, const at::Tensor& like, F&& f) {
  const c10::cuda::CUDAGuard guard(like.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  try {
    return f(stream);
  } catch (const kernels::CudaError& e) {
    TORCH_CHECK(false, op, ": ", e.what());
    throw;  // unreachable: TORCH_CHECK(false) throws
  }
}

}  // namespace cuda
}  // namespace ops
}  // namespace mnq
