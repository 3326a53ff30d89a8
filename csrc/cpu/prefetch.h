// Software prefetch of a row ahead, for the row loops whose passes stall on their first touch of a row.
//
// The softmaxes' vector rows (I-BERT softmax, Log-Int-Softmax) make three passes over a row of ~200 elements:
// the row's codes and max from the input, the exponentials from a row buffer, the output. The input is read only
// in the first pass and the output written only in the last, so between two rows' reads lie the whole of the
// other passes, and the hardware's stream prefetcher, which runs a fixed distance ahead of the demand reads, does
// not have the next row in the cache when its first pass starts: once the tensors no longer fit in L2 (batch 8:
// 7.5 MB in, 7.5 MB out), a QAT row's first pass spent ~28% of the op's time waiting on its loads (perf), and the
// batch-8 call took twice eight batch-1 calls. Asking for row r + ahead's input and output lines at the start of
// row r hides that latency behind the row's own work. A prefetch is a hint: it never faults, changes no value and
// touches only lines inside the tensors.
#pragma once

#include <cstdint>

namespace mnq {
namespace ops {
namespace cpu {

// Every 64-byte line of [p, p + bytes) requested into the cache, for reading (write = false) or writing.
template <bool write>
inline void prefetch_lines(const void* p, int64_t bytes) {
  if (p == nullptr || bytes <= 0) return;
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  const uintptr_t end = a + static_cast<uintptr_t>(bytes);
  for (uintptr_t l = a & ~uintptr_t{63}; l < end; l += 64) {
    __builtin_prefetch(reinterpret_cast<const void*>(l), write ? 1 : 0, 3);
  }
}

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
