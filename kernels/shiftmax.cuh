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
  const WarpRow w = warp_row(p.cols);
  if (w.row >= p.rows) return;  // whole warps exit together
  if (p.dev_scale != nullptr && !shiftmax_device_consts(p, in)) return warp_row_nan(out, w, p.cols);
  const int64_t base = w.base;
  const int lane = w.lane;
  i64 mx = 0;
  if (!warp_row_max(in, w, p.cols, p.lo, p.hi, flag, mx)) return warp_row_nan(out, w, p.cols);
  const int32_t m = static_cast<int32_t>(mx);  // in int32 range once the check passed
  bool ok = true;  // the later passes re-load codes the first pass checked
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
bool launch_shiftmax(In in, Out out, const ShiftmaxParams& p, int* check, cudaStream_t stream) {
  if (p.rows == 0 || p.cols == 0) return true;  // nothing to compute (and a grid of 0 blocks is invalid)
  ErrorFlag flag(flag_for<Out>(check), stream);
  MNQ_LAUNCH(shiftmax_kernel, row_blocks(p.rows), kRowsPerBlock * kWarp, 0, stream)(in, out, p, flag.get());
  check_cuda(cudaGetLastError(), "shiftmax_kernel launch");
  return flag.ok();
}

}  // namespace kernels
}  // namespace mnq
