// CPU fast path shared by the i-exp softmaxes (ibert_softmax, log_int_softmax). I-BERT's i-exp depends on x ≤ 0
// only through max(x, n·x0) (kernels/iexp.h), so it takes at most n·|x0| + 1 values: 361 at the S = 8/127 of
// 8-bit attention scores. When that domain is small next to the tensor, the CPU tabulates the exact scalar function
// once per call (in parallel) and each element becomes a lookup; otherwise it calls the function per element.
// Either way every value comes from the same kernels/ function, so the results are identical bit for bit.
#pragma once

#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>

#include <cstdint>

namespace mnq {
namespace ops {
namespace cpu {

// The per-element functor: f(x) for any x ≤ 0.
template <class T>
class ClampedTable {
 public:
  // f tabulated on [lo, 0]; f must be constant on x ≤ lo.
  // (The storage comes from torch's allocator, like the op's tensors.)
  template <class F>
  ClampedTable(int64_t lo, F f)
      : lo_(lo), storage_(at::empty({(1 - lo) * static_cast<int64_t>(sizeof(T))}, at::kByte)),
        v_(reinterpret_cast<T*>(storage_.data_ptr<uint8_t>())) {
    at::parallel_for(lo, 1, 4096, [&](int64_t x0, int64_t x1) {
      for (int64_t x = x0; x < x1; ++x) v_[x - lo] = static_cast<T>(f(x));
    });
  }
  T operator()(int64_t x) const { return view()(x); }

  // The same lookup through plain values (copied into a loop, the compiler need not reload them after each store).
  struct View {
    const T* v;
    int64_t lo;
    T operator()(int64_t x) const { return v[(x < lo ? lo : x) - lo]; }
  };
  View view() const { return View{v_, lo_}; }

 private:
  int64_t lo_;
  at::Tensor storage_;
  T* v_;
};

// A table on [lo, 0] pays off when it is at most 2^16 entries (it stays in L2) and a quarter of the elements.
inline bool use_table(int64_t lo, int64_t numel) {
  const int64_t size = 1 - lo;
  return size <= (int64_t{1} << 16) && 4 * size <= numel;
}

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
