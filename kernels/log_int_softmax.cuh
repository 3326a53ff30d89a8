// CUDA Log-Int-Softmax: one warp per row, three strided passes over the row (max, 128-bit sum of the
// exponentials, code) that all call the scalar math of log_int_softmax.h, so CPU and CUDA agree bit for bit.
#pragma once

#include "cuda_utils.cuh"
#include "log_int_softmax.h"

namespace mnq {
namespace kernels {

template <class In, class Out>
__global__ void log_int_softmax_kernel(In in, Out out, LogIntSoftmaxParams p, int* flag) {
  const WarpRow w = warp_row(p.cols);
  if (w.row >= p.rows) return;  // whole warps exit together
  if (p.dev_scale != nullptr && !log_int_softmax_device_consts(p, in)) return warp_row_nan(out, w, p.cols);
  const int64_t base = w.base;
  const int lane = w.lane;
  i64 m = 0;
  if (!warp_row_max(in, w, p.cols, p.lo, p.hi, flag, m)) return warp_row_nan(out, w, p.cols);
  bool ok = true;  // the later passes re-load codes the first pass checked
  i128 s = 0;  // < cols·2^63
  for (int64_t j = lane; j < p.cols; j += kWarp) s += ibert_exp(in.load(base + j, p.lo, p.hi, ok) - m, p.c.ex);
  const u128 total = static_cast<u128>(warp_sum128(s));
  for (int64_t j = lane; j < p.cols; j += kWarp) {
    out.store(base + j, lis_code(total, ibert_exp(in.load(base + j, p.lo, p.hi, ok) - m, p.c.ex), p.c));
  }
}

template <class In, class Out>
bool launch_log_int_softmax(In in, Out out, const LogIntSoftmaxParams& p, int* check, cudaStream_t stream) {
  if (p.rows == 0 || p.cols == 0) return true;  // nothing to compute (and a grid of 0 blocks is invalid)
  ErrorFlag flag(flag_for<Out>(check), stream);
  MNQ_LAUNCH(log_int_softmax_kernel, row_blocks(p.rows), kRowsPerBlock * kWarp, 0, stream)(in, out, p, flag.get());
  check_cuda(cudaGetLastError(), "log_int_softmax_kernel launch");
  return flag.ok();
}

}  // namespace kernels
}  // namespace mnq
