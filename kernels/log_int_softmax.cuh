// CUDA Log-Int-Softmax: one warp per row, three strided passes over the row (max, 128-bit sum of the
// exponentials, code) that all call the scalar math of log_int_softmax.h, so CPU and CUDA agree bit for bit.
#pragma once

#include "cuda_utils.cuh"
#include "log_int_softmax.h"

namespace mnq {
namespace kernels {

template <class In, class Out>
__global__ void log_int_softmax_kernel(In in, Out out, LogIntSoftmaxParams p, int* flag) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (row >= p.rows) return;  // whole warps exit together
  const int64_t base = row * p.cols;
  bool ok = true;
  i64 m = kInt64Min;
  for (int64_t j = lane; j < p.cols; j += kWarp) {
    const i64 v = in.load(base + j, p.lo, p.hi, ok);
    m = v > m ? v : m;
  }
  m = warp_max(m);
  if (!__all_sync(kFullMask, ok)) {
    if (lane == 0) report(flag);
    return;
  }
  i128 s = 0;  // < cols·2^63
  for (int64_t j = lane; j < p.cols; j += kWarp) s += ibert_exp(in.load(base + j, p.lo, p.hi, ok) - m, p.c.ex);
  const u128 total = static_cast<u128>(warp_sum128(s));
  for (int64_t j = lane; j < p.cols; j += kWarp) {
    out.store(base + j, lis_code(total, ibert_exp(in.load(base + j, p.lo, p.hi, ok) - m, p.c.ex), p.c));
  }
}

template <class In, class Out>
bool launch_log_int_softmax(In in, Out out, const LogIntSoftmaxParams& p, bool check, cudaStream_t stream) {
  ErrorFlag flag(check, stream);
  log_int_softmax_kernel<<<row_blocks(p.rows), kRowsPerBlock * kWarp, 0, stream>>>(in, out, p, flag.get());
  check_cuda(cudaGetLastError(), "log_int_softmax_kernel launch");
  return flag.ok();
}

}  // namespace kernels
}  // namespace mnq
