// Shape helpers of the row-wise ops (reductions over the last dim).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace mnq {
namespace ops {

struct Rows {
  int64_t rows;
  int64_t cols;
};

// [..., C] seen as rows × C. numel 0 gives rows 0.
inline Rows rows_of(const at::Tensor& t) {
  const int64_t cols = t.size(-1);
  return Rows{cols == 0 ? 0 : t.numel() / cols, cols};
}

}  // namespace ops
}  // namespace mnq
