// CUDA I-LayerNorm: one warp per row, two strided passes (the moments Σq, Σq²; the output) calling the scalar
// math of ilayernorm.h, so CPU and CUDA agree bit for bit. The second pass re-reads the row from L1/L2.
#pragma once

#include "cuda_utils.cuh"
#include "ilayernorm.h"

namespace mnq {
namespace kernels {

template <class In, class Out>
__global__ void ilayernorm_kernel(In in, Out out, LnParams p, int* flag) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (row >= p.rows) return;  // whole warps exit together
  const int64_t base = row * p.cols;
  if (p.dev_scale != nullptr && !ln_device_scale(p, in)) return ln_row_nan(out, base, p.cols, lane, kWarp);
  int bad = 0;
  i64 s = 0, ss = 0;
  for (int64_t j = lane; j < p.cols; j += kWarp) {
    const i64 v = in.load(base + j, j, p.lo, p.hi, bad);
    s += v;
    ss += v * v;
  }
  if (__any_sync(kFullMask, bad)) {  // a float output writes the row as NaN (flag_for gives it no flag)
    if (lane == 0) report(flag);
    return ln_row_nan(out, base, p.cols, lane, kWarp);
  }
  s = warp_sum(s);
  ss = warp_sum(ss);
  i64 mean = 0;
  const LnFactor f = ilayernorm_factor(s, ss, p.cols, mean);
  for (int64_t j = lane; j < p.cols; j += kWarp) {
    const int32_t y = static_cast<int32_t>(in.load(base + j, j, p.lo, p.hi, bad) - mean);
    out.store(base + j, j, ln_affine_out(y, f, p.bias_int[j]));
  }
}

template <class In, class Out>
bool launch_ilayernorm(In in, Out out, const LnParams& p, int* check, cudaStream_t stream) {
  if (p.rows == 0 || p.cols == 0) return true;  // nothing to compute (and a grid of 0 blocks is invalid)
  ErrorFlag flag(flag_for<Out>(check), stream);
  MNQ_LAUNCH(ilayernorm_kernel, row_blocks(p.rows), kRowsPerBlock * kWarp, 0, stream)(in, out, p, flag.get());
  check_cuda(cudaGetLastError(), "ilayernorm_kernel launch");
  return flag.ok();
}

}  // namespace kernels
}  // namespace mnq
