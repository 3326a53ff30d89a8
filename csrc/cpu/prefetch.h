// Software prefetch of a row ahead, for the row loops whose passes stall on their first touch of a row.
//
// The softmaxes' vector rows (I-BERT softmax, Log-Int-Softmax) make three passes over a row of ~200 elements:
// the row's codes and max from the input, the exponentials from a row buffer, the output. The input is read only
// in the first pass and the output written only in the last, each a dozen 64-byte lines met one 16-lane step at a
// time between a step's other work. Once the tensors no longer fit in L2 (batch 8: 7.5 MB in, 7.5 MB out), that
// made I-BERT softmax's QAT form bimodal: the least CPU time of 100 calls was 1.36–2.3 ms from one process to the
// next on the same input (a float softmax: 1.0), ~28% of the op's samples on its first-pass loads (perf), and
// never any page fault (getrusage). Requesting a row's input and output lines all at once, at the start of the
// row before (or of the row itself: one row ahead, two and none measured the same, so the gain is the requests
// issued together rather than their lead), made it 1.31–1.37 ms in every process. Small calls skip it (the loops'
// kPrefetchMinBytes below: at batch 1 the ~26 extra instructions per row cost 6–10%). A prefetch is a hint: it never
// faults, changes no value and is only issued for lines inside the tensors.
#pragma once

#include <cstdint>

namespace mnq {
namespace ops {
namespace cpu {

// How many rows ahead the softmaxes' row loops ask for the input and output lines (0, 1 and 2 measured the same),
// and from which input size on: below it the prefetches cost more than they save (batch 1, 0.9 MB of input: 6–10%
// slower with them; the tensors are then in L2 and L3 from the previous call).
constexpr int64_t kPrefetchRows = 1;
constexpr int64_t kPrefetchMinBytes = int64_t{2} << 20;

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
