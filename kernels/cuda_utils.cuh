// Shared CUDA helpers: warp reductions over 64-bit integers, launches and their checks, and the device error flag
// through which a kernel reports an input outside an op's declared range. Never includes torch.
//
// MNQ_LAUNCH(kernel, grid, block, smem, stream)(args...) is kernel<<<grid, block, smem, stream>>>(args...). Built
// with MNQ_CUDA_SIM (tests/sim/, the CI's CUDA simulator) the same launch runs the kernel on the host instead:
// tests/sim/cuda_sim.h then stands in for <cuda_runtime.h> and drives every lane of a warp in lock step.
#pragma once

#if defined(MNQ_CUDA_SIM)
#include "cuda_sim.h"  // tests/sim/, on the simulator build's include path
#define MNQ_LAUNCH(kernel, grid, block, smem, stream) \
  ::mnq::sim::launcher((grid), (block), (smem), (stream), #kernel, [](auto... a) { kernel(a...); })
#else
#include <cuda_runtime.h>
#define MNQ_LAUNCH(kernel, grid, block, smem, stream) kernel<<<(grid), (block), (smem), (stream)>>>
#endif

#include <cstdint>
#include <stdexcept>
#include <string>

#include "common.h"

namespace mnq {
namespace kernels {

constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kWarp = 32;
constexpr int kRowsPerBlock = 8;  // one warp per row, 8 warps (256 threads) per block

__device__ __forceinline__ i64 warp_max(i64 v) {
  for (int o = kWarp / 2; o > 0; o /= 2) {
    const i64 w = __shfl_xor_sync(kFullMask, v, o);
    v = w > v ? w : v;
  }
  return v;
}

__device__ __forceinline__ i64 warp_min(i64 v) {
  for (int o = kWarp / 2; o > 0; o /= 2) {
    const i64 w = __shfl_xor_sync(kFullMask, v, o);
    v = w < v ? w : v;
  }
  return v;
}

__device__ __forceinline__ i64 warp_sum(i64 v) {
  for (int o = kWarp / 2; o > 0; o /= 2) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}

// Sum of non-negative values saturating at cap (exact min(sum, cap); see common.h sat_add).
__device__ __forceinline__ i64 warp_sum_sat(i64 v, i64 cap) {
  for (int o = kWarp / 2; o > 0; o /= 2) v = sat_add(v, __shfl_xor_sync(kFullMask, v, o), cap);
  return v;
}

__device__ __forceinline__ i128 warp_sum128(i128 v) {
  for (int o = kWarp / 2; o > 0; o /= 2) {
    const u64 lo = __shfl_xor_sync(kFullMask, static_cast<u64>(v), o);
    const i64 hi = __shfl_xor_sync(kFullMask, static_cast<i64>(v >> 64), o);
    v += (static_cast<i128>(hi) << 64) | static_cast<i128>(lo);
  }
  return v;
}

// A failed CUDA call or launch. kernels/ cannot raise torch's c10::Error, so the glue (csrc/cuda/launch.h)
// catches this type and rethrows it as one naming the op.
struct CudaError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline void check_cuda(cudaError_t err, const char* what) {
  if (err != cudaSuccess) throw CudaError(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(err));
}

// Blocks of kRowsPerBlock rows. Saturates instead of wrapping, so that a row count beyond the grid limit
// (2^31 − 1 blocks) fails the launch check rather than silently launching fewer blocks.
inline unsigned row_blocks(int64_t rows) {
  const int64_t b = (rows + kRowsPerBlock - 1) / kRowsPerBlock;
  return b > 0xffffffffLL ? 0xffffffffu : static_cast<unsigned>(b);
}

// The 4-byte device flag a kernel sets to 1 when it sees an input outside the declared range. Its memory comes
// from the caller (csrc/cuda allocates it from torch's caching allocator), or nullptr for an unchecked launch;
// the flag clears it on the stream. `ok()` copies it back and waits for the stream: the one device sync of the
// integer ops' range check, used only when the input dtype can hold such values (csrc/checks.h needs_range_check).
class ErrorFlag {
 public:
  ErrorFlag(int* mem, cudaStream_t stream) : stream_(stream), ptr_(mem) {
    if (ptr_) check_cuda(cudaMemsetAsync(ptr_, 0, sizeof(int), stream_), "cudaMemsetAsync");
  }
  ErrorFlag(const ErrorFlag&) = delete;
  ErrorFlag& operator=(const ErrorFlag&) = delete;
  int* get() const { return ptr_; }
  bool ok() const {
    if (!ptr_) return true;
    int host = 0;
    check_cuda(cudaMemcpyAsync(&host, ptr_, sizeof(int), cudaMemcpyDeviceToHost, stream_), "cudaMemcpyAsync");
    check_cuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
    return host == 0;
  }

 private:
  cudaStream_t stream_;
  int* ptr_;
};

__device__ __forceinline__ void report(int* flag) {
  if (flag) atomicExch(flag, 1);
}

// The row of a one-warp-per-row kernel: its index, the lane, and the row's first element.
struct WarpRow {
  int64_t row;
  int lane;
  int64_t base;
};

__device__ __forceinline__ WarpRow warp_row(int64_t cols) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarp;
  return WarpRow{row, static_cast<int>(threadIdx.x % kWarp), row * cols};
}

// Row maximum of the loaded codes, with the declared-range check: false (and the flag reported once) when any
// code of the row lies outside [lo, hi]. The whole warp returns the same answer.
template <class In>
__device__ __forceinline__ bool warp_row_max(const In& in, const WarpRow& w, int64_t cols, i64 lo, i64 hi,
                                             int* flag, i64& m) {
  bool ok = true;
  i64 mx = kInt64Min;
  for (int64_t j = w.lane; j < cols; j += kWarp) {
    const i64 v = in.load(w.base + j, lo, hi, ok);
    mx = v > mx ? v : mx;
  }
  m = warp_max(mx);
  if (!__all_sync(kFullMask, ok)) {
    if (w.lane == 0) report(flag);
    return false;
  }
  return true;
}

// The NaN policy of the float (QAT) kernels (csrc/ops/qat.h): a row whose loaded codes fail the range check, or
// every row when the device scale is outside the op's range, is written as NaN (Out::kPropagatesNaN; the
// integer outputs write nothing and report through the flag instead).
template <class Out>
__device__ __forceinline__ void warp_row_nan(const Out& out, const WarpRow& w, int64_t cols) {
  for (int64_t j = w.lane; j < cols; j += kWarp) out.store_nan(w.base + j);
}

// The flag a row-wise launcher hands its kernel: none for float outputs (they propagate NaN: no sync).
template <class Out>
int* flag_for(int* check) {
  return Out::kPropagatesNaN ? nullptr : check;
}

}  // namespace kernels
}  // namespace mnq
