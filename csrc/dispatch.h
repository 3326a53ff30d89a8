// Dtype and device dispatch shared by the CPU and CUDA implementations (c10 only, so .cu files stay light).
#pragma once

#include <c10/core/ScalarType.h>
#include <c10/util/Exception.h>

#include <cstdint>

// Runs __VA_ARGS__ with scalar_t bound to the C++ type of an integer dtype.
#define MNQ_DISPATCH_INT(TYPE, NAME, ...)                                              \
  [&] {                                                                                \
    switch (TYPE) {                                                                    \
      case c10::ScalarType::Byte: { using scalar_t = uint8_t; return __VA_ARGS__(); }  \
      case c10::ScalarType::Char: { using scalar_t = int8_t; return __VA_ARGS__(); }   \
      case c10::ScalarType::Short: { using scalar_t = int16_t; return __VA_ARGS__(); } \
      case c10::ScalarType::Int: { using scalar_t = int32_t; return __VA_ARGS__(); }   \
      case c10::ScalarType::Long: { using scalar_t = int64_t; return __VA_ARGS__(); }  \
      default: TORCH_CHECK_TYPE(false, NAME, ": unsupported integer dtype ", TYPE);    \
    }                                                                                  \
  }()

namespace mnq {
namespace ops {

[[noreturn]] inline void fail_no_cuda(const char* op) {
  TORCH_CHECK(false, op, ": got CUDA tensors but mnq was built without CUDA (MNQ_WITH_CUDA=OFF or no nvcc)");
  TORCH_CHECK(false, "unreachable");
}

}  // namespace ops
}  // namespace mnq

// Evaluates a CUDA backend call, or fails with a clear error in a CPU-only build. (The backends themselves turn a
// failed launch into a c10::Error naming the op: csrc/cuda/launch.h.)
#ifdef MNQ_WITH_CUDA
#define MNQ_CUDA_CALL(OP, EXPR) (EXPR)
#else
#define MNQ_CUDA_CALL(OP, EXPR) (::mnq::ops::fail_no_cuda(OP), false)
#endif
