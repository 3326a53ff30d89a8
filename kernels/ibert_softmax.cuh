// CUDA I-BERT softmax: one warp per row, three strided passes over the row (max, sum of the requantized
// exponentials, output) that all call the scalar math of ibert_softmax.h, so CPU and CUDA agree bit for bit.
// The row is re-read from L1/L2 rather than staged: rows are short (197 tokens in ViT attention).
#pragma once

#include "cuda_utils.cuh"
#include "ibert_softmax.h"

namespace mnq {
namespace kernels {

template <class In, class Out>
__global__ void ibert_softmax_kernel(In in, Out out, IbertSoftmaxParams p, int* flag) {
  const WarpRow w = warp_row(p.cols);
  if (w.row >= p.rows) return;  // whole warps exit together
  if (p.dev_scale != nullptr && !ibert_softmax_device_consts(p, in)) return warp_row_nan(out, w, p.cols);
  const int64_t base = w.base;
  const int lane = w.lane;
  i64 m = 0;
  if (!warp_row_max(in, w, p.cols, p.lo, p.hi, flag, m)) return warp_row_nan(out, w, p.cols);
  bool ok = true;  // the later passes re-load codes the first pass checked
  i64 s = 0;  // ≤ 32767·cols
  for (int64_t j = lane; j < p.cols; j += kWarp) {
    s += ibert_softmax_exp(in.load(base + j, p.lo, p.hi, ok) - m, p.c);
  }
  const i64 f = ibert_softmax_factor(warp_sum(s));
  for (int64_t j = lane; j < p.cols; j += kWarp) {
    out.store(base + j, ibert_softmax_out(ibert_softmax_exp(in.load(base + j, p.lo, p.hi, ok) - m, p.c), f, p.c));
  }
}

template <class In, class Out>
bool launch_ibert_softmax(In in, Out out, const IbertSoftmaxParams& p, int* check, cudaStream_t stream) {
  if (p.rows == 0 || p.cols == 0) return true;  // nothing to compute (and a grid of 0 blocks is invalid)
  ErrorFlag flag(flag_for<Out>(check), stream);
  MNQ_LAUNCH(ibert_softmax_kernel, row_blocks(p.rows), kRowsPerBlock * kWarp, 0, stream)(in, out, p, flag.get());
  check_cuda(cudaGetLastError(), "ibert_softmax_kernel launch");
  return flag.ok();
}

}  // namespace kernels
}  // namespace mnq
