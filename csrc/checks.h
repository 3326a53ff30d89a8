// Named argument checks for every op entry point (STYLE rule 9: validate at the boundary, trust inside).
// Each message names the op, the argument and what was expected. Type problems raise TypeError in Python,
// value problems ValueError.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>

namespace mnq {
namespace ops {

inline bool is_int_dtype(at::ScalarType t) {
  return t == at::kByte || t == at::kChar || t == at::kShort || t == at::kInt || t == at::kLong;
}

// The value range of an integer dtype.
inline int64_t dtype_min(at::ScalarType t) {
  switch (t) {
    case at::kByte: return 0;
    case at::kChar: return INT8_MIN;
    case at::kShort: return INT16_MIN;
    case at::kInt: return INT32_MIN;
    default: return INT64_MIN;
  }
}
inline int64_t dtype_max(at::ScalarType t) {
  switch (t) {
    case at::kByte: return UINT8_MAX;
    case at::kChar: return INT8_MAX;
    case at::kShort: return INT16_MAX;
    case at::kInt: return INT32_MAX;
    default: return INT64_MAX;
  }
}

// True when values of dtype t can fall outside [lo, hi], so the kernel must check them.
inline bool needs_range_check(at::ScalarType t, int64_t lo, int64_t hi) {
  return !is_int_dtype(t) || dtype_min(t) < lo || dtype_max(t) > hi;
}

// A required tensor argument given as None (an undefined tensor): checked before anything asks for its device
// (autograd's Function::apply would fail with "tensor does not have a device", naming neither op nor argument).
inline void check_given(const char* op, const char* name, const at::Tensor& t) {
  TORCH_CHECK_TYPE(t.defined(), op, ": ", name, " must be a tensor, got None");
}

inline void check_int_tensor(const char* op, const char* name, const at::Tensor& t) {
  TORCH_CHECK(t.defined(), op, ": ", name, " is undefined");
  TORCH_CHECK_TYPE(is_int_dtype(t.scalar_type()), op, ": ", name,
                   " must be an integer tensor (uint8, int8, int16, int32 or int64), got ", t.scalar_type());
}

inline void check_float_tensor(const char* op, const char* name, const at::Tensor& t) {
  TORCH_CHECK(t.defined(), op, ": ", name, " is undefined");
  TORCH_CHECK_TYPE(t.scalar_type() == at::kFloat, op, ": ", name, " must be a float32 tensor, got ",
                   t.scalar_type());
}

inline void check_min_dim(const char* op, const char* name, const at::Tensor& t, int64_t d) {
  TORCH_CHECK_VALUE(t.dim() >= d, op, ": ", name, " must have at least ", d,
                    " dimension(s) (the op reduces over the last one), got shape ", t.sizes());
}

inline void check_scale(const char* op, const char* name, double s) {
  TORCH_CHECK_VALUE(std::isfinite(s) && s > 0, op, ": ", name, " must be a finite positive scale, got ", s);
}

inline void check_int_arg(const char* op, const char* name, int64_t v, int64_t lo, int64_t hi) {
  TORCH_CHECK_VALUE(v >= lo && v <= hi, op, ": ", name, " must be in [", lo, ", ", hi, "], got ", v);
}

inline void check_same_device(const char* op, const char* name, const at::Tensor& t, const at::Tensor& ref,
                              const char* ref_name) {
  TORCH_CHECK_VALUE(t.device() == ref.device(), op, ": ", name, " is on ", t.device(), " but ", ref_name,
                    " is on ", ref.device(), "; both must be on the same device");
}

inline void check_device_supported(const char* op, const char* name, const at::Tensor& t) {
  TORCH_CHECK_VALUE(t.device().is_cpu() || t.device().is_cuda(), op, ": ", name,
                    " must be on a CPU or CUDA device, got ", t.device());
}

// A per-channel vector: 1-D of length C, floating point.
inline void check_channel_vector(const char* op, const char* name, const at::Tensor& t, int64_t C) {
  check_given(op, name, t);
  TORCH_CHECK_TYPE(at::isFloatingType(t.scalar_type()), op, ": ", name, " must be a floating-point tensor, got ",
                   t.scalar_type());
  TORCH_CHECK_VALUE(t.dim() == 1 && t.size(0) == C, op, ": ", name, " must have shape [", C,
                    "] (the size of the last dim of the input), got ", t.sizes());
}

// Raised after a kernel reported an input value outside the op's declared range.
[[noreturn]] inline void fail_range(const char* op, const char* name, int64_t lo, int64_t hi, bool is_float) {
  if (is_float) {
    TORCH_CHECK_VALUE(false, op, ": ", name, " has values whose code round(", name,
                      " / scale) is not finite or lies outside [", lo, ", ", hi, "]");
  }
  TORCH_CHECK_VALUE(false, op, ": ", name, " has values outside the declared range [", lo, ", ", hi, "]");
  TORCH_CHECK(false, "unreachable");  // [[noreturn]] for compilers that do not see through the macros
}

}  // namespace ops
}  // namespace mnq
