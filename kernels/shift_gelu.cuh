// CUDA ShiftGELU: one warp per row (like shiftmax.cuh), two strided passes: the row max (warp reduction), then
// each element's output from the scalar math of shift_gelu.h, so CPU and CUDA agree bit for bit. The row is
// re-read from L1/L2 in the second pass rather than staged.
#pragma once

#include "cuda_utils.cuh"
#include "shift_gelu.h"

namespace mnq {
namespace kernels {

template <class In, class Out>
__global__ void shift_gelu_kernel(In in, Out out, ShiftGeluParams p, int* flag) {
  const WarpRow w = warp_row(p.cols);
  if (w.row >= p.rows) return;  // whole warps exit together
  if (p.dev_scale != nullptr && !shift_gelu_device_consts(p, in, out)) return warp_row_nan(out, w, p.cols);
  const int64_t base = w.base;
  const int lane = w.lane;
  i64 m = 0;
  if (!warp_row_max(in, w, p.cols, p.lo, p.hi, flag, m)) return warp_row_nan(out, w, p.cols);
  bool ok = true;  // the later passes re-load codes the first pass checked
  const i64 e2 = shift_gelu_e2(m, p.c);
  for (int64_t j = lane; j < p.cols; j += kWarp) {
    out.store(base + j, shift_gelu_out(in.load(base + j, p.lo, p.hi, ok), m, e2, p.c));
  }
}

template <class In, class Out>
bool launch_shift_gelu(In in, Out out, const ShiftGeluParams& p, int* check, cudaStream_t stream) {
  if (p.rows == 0 || p.cols == 0) return true;  // nothing to compute (and a grid of 0 blocks is invalid)
  ErrorFlag flag(flag_for<Out>(check), stream);
  MNQ_LAUNCH(shift_gelu_kernel, row_blocks(p.rows), kRowsPerBlock * kWarp, 0, stream)(in, out, p, flag.get());
  check_cuda(cudaGetLastError(), "shift_gelu_kernel launch");
  return flag.ok();
}

}  // namespace kernels
}  // namespace mnq
