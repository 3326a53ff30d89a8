// CUDA I-BERT LayerNorm: one warp per row. Passes over the row (re-read from L1/L2): the moments Σq, Σq²; when
// V(0) ≥ 2^32, the shift search, each pass summing V(s − 1) and V(s) together (usually one pass); the output.
// All values are warp-uniform after the butterfly reductions, so the whole warp takes the same branches.
#pragma once

#include "cuda_utils.cuh"
#include "ibert_layernorm.h"

namespace mnq {
namespace kernels {

template <class In, class Out>
__global__ void ibert_layernorm_kernel(In in, Out out, LnParams p, int* flag) {
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
  const i64 mean = ln_mean(s, p.cols);
  i64 var = ln_centered_sumsq(s, ss, mean, p.cols);
  const int shift = ibert_find_shift(var, [&](int s, i64& below, i64& at) {
    for (int64_t j = lane; j < p.cols; j += kWarp) {
      const int32_t y = static_cast<int32_t>(in.load(base + j, j, p.lo, p.hi, bad) - mean);  // |y| ≤ 2^22
      below += ibert_term(y, s - 1);
      at += ibert_term(y, s);
    }
    below = warp_sum(below);
    at = warp_sum(at);
  });
  const LnFactor f = ibert_factor(var, shift);
  for (int64_t j = lane; j < p.cols; j += kWarp) {
    const int32_t y = static_cast<int32_t>(in.load(base + j, j, p.lo, p.hi, bad) - mean);
    out.store(base + j, j, ln_affine_out(y, f, p.bias_int[j]));
  }
}

template <class In, class Out>
bool launch_ibert_layernorm(In in, Out out, const LnParams& p, int* check, cudaStream_t stream) {
  if (p.rows == 0 || p.cols == 0) return true;  // nothing to compute (and a grid of 0 blocks is invalid)
  ErrorFlag flag(flag_for<Out>(check), stream);
  MNQ_LAUNCH(ibert_layernorm_kernel, row_blocks(p.rows), kRowsPerBlock * kWarp, 0, stream)(in, out, p, flag.get());
  check_cuda(cudaGetLastError(), "ibert_layernorm_kernel launch");
  return flag.ok();
}

}  // namespace kernels
}  // namespace mnq
