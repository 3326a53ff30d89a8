// CUDA Shiftmax: one warp per row, three strided passes over the row (max, saturated sum of e, output) that all
// call the scalar math of shiftmax.h, so CPU and CUDA agree bit for bit. The row is re-read from L1/L2 rather
// than staged: rows are short (197 tokens in ViT attention).
#pragma once

#include "cuda_utils.cuh"
#include "shiftmax.h"

namespace mnq {
namespace kernels {

template <class In, class Out>
__global__ void shiftmax_kernel(In in, Out out, ShiftmaxParams p, int* flag) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (row >= p.rows) return;  // whole warps exit together
  const int64_t base = row * p.cols;
  bool ok = true;
  i64 mx = kInt64Min;
  for (int64_t j = lane; j < p.cols; j += kWarp) {
    const i64 v = in.load(base + j, p.lo, p.hi, ok);
    mx = v > mx ? v : mx;
  }
  if (!__all_sync(kFullMask, ok)) {
    if (lane == 0) report(flag);
    return;
  }
  const int32_t m = static_cast<int32_t>(warp_max(mx));  // in int32 range once the check passed
  i64 s = 0;
  for (int64_t j = lane; j < p.cols; j += kWarp) {
    s += shiftmax_exp(static_cast<int32_t>(in.load(base + j, p.lo, p.hi, ok)), m, p.c);
  }
  const int32_t f = shiftmax_factor(warp_sum(s));
  for (int64_t j = lane; j < p.cols; j += kWarp) {
    out.store(base + j, shiftmax_out(shiftmax_exp(static_cast<int32_t>(in.load(base + j, p.lo, p.hi, ok)), m, p.c),
                                     f, p.c));
  }
}

template <class In, class Out>
bool launch_shiftmax(In in, Out out, const ShiftmaxParams& p, bool check, cudaStream_t stream) {
  ErrorFlag flag(check, stream);
  shiftmax_kernel<<<row_blocks(p.rows), kRowsPerBlock * kWarp, 0, stream>>>(in, out, p, flag.get());
  check_cuda(cudaGetLastError(), "shiftmax_kernel launch");
  return flag.ok();
}

}  // namespace kernels
}  // namespace mnq
