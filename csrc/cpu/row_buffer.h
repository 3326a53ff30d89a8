// Per-task scratch rows for the CPU ops, without a heap allocation in the common case: a row of up to kLocal
// elements (every ViT width and token count) lives on the task's stack; a longer one takes its memory from torch's
// allocator (one tensor per parallel task, not per row).
#pragma once

#include <ATen/ops/empty.h>

#include <cstdint>

namespace mnq {
namespace ops {
namespace cpu {

template <class T, int64_t kLocal = 4096>
class RowBuffer {
 public:
  explicit RowBuffer(int64_t n) : p_(local_) {
    if (n > kLocal) {
      big_ = at::empty({n * static_cast<int64_t>(sizeof(T))}, at::kByte);
      p_ = reinterpret_cast<T*>(big_.data_ptr<uint8_t>());
    }
  }
  RowBuffer(const RowBuffer&) = delete;
  RowBuffer& operator=(const RowBuffer&) = delete;
  T* data() { return p_; }

 private:
  alignas(64) T local_[kLocal];
  at::Tensor big_;
  T* p_;
};

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
