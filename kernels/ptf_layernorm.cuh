// CUDA PTF LayerNorm: one warp per row, two strided passes (Σx, Σx² of the shifted codes; the per-element
// output) calling the scalar math of ptf_layernorm.h. The float64 element formula is compiled without FMA
// contraction (CMakeLists.txt: --fmad=false), so it rounds exactly as on the host.
#pragma once

#include "cuda_utils.cuh"
#include "ptf_layernorm.h"

namespace mnq {
namespace kernels {

template <class In, class Out>
__global__ void ptf_layernorm_kernel(In in, Out out, PtfParams p, int* flag) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (row >= p.rows) return;  // whole warps exit together
  const int64_t base = row * p.cols;
  int bad = 0;
  i64 sx = 0, sxx = 0;
  for (int64_t j = lane; j < p.cols; j += kWarp) {
    const i64 x = ptf_x(in.load(base + j, j, p.lo, p.hi, bad), p.shift[j]);
    sx += x;
    sxx += x * x;
  }
  if (__any_sync(kFullMask, bad)) {
    if (lane == 0) report(flag);
    return;
  }
  const PtfRow r = ptf_row(warp_sum(sx), warp_sum(sxx), p.cols, p.scale_next);
  for (int64_t j = lane; j < p.cols; j += kWarp) {
    out.store(base + j, j, ptf_out(ptf_x(in.load(base + j, j, p.lo, p.hi, bad), p.shift[j]), j, r, p));
  }
}

template <class In, class Out>
bool launch_ptf_layernorm(In in, Out out, const PtfParams& p, int* check, cudaStream_t stream) {
  if (p.rows == 0 || p.cols == 0) return true;  // nothing to compute (and a grid of 0 blocks is invalid)
  ErrorFlag flag(check, stream);
  MNQ_LAUNCH(ptf_layernorm_kernel, row_blocks(p.rows), kRowsPerBlock * kWarp, 0, stream)(in, out, p, flag.get());
  check_cuda(cudaGetLastError(), "ptf_layernorm_kernel launch");
  return flag.ok();
}

}  // namespace kernels
}  // namespace mnq
