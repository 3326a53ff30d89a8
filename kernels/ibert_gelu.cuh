// CUDA I-BERT i-GELU: elementwise, a grid-stride loop over the flat tensor calling the scalar math of
// ibert_gelu.h, so CPU and CUDA agree bit for bit. The channel of element i is i mod cols (the last dim), taken
// with a multiply-high (common.h Divider64) rather than a 64-bit modulo; the per-channel constants (3 × cols
// int64) stay in L1/L2.
#pragma once

#include "cuda_utils.cuh"
#include "ibert_gelu.h"

namespace mnq {
namespace kernels {

constexpr int kIbertGeluThreads = 256;

// A float output (QAT) writes NaN for an element without a code (the NaN policy) and uses no flag; an integer
// output reports it through the flag.
template <class In, class Out>
__global__ void ibert_gelu_kernel(In in, Out out, IbertGeluParams p, Divider64 cols, int* flag) {
  i64 ok = 1;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < p.numel; i += stride) {
    const int64_t c = static_cast<int64_t>(modulo(static_cast<u64>(i), cols));
    i64 e = 1;
    const i64 v = ibert_gelu(in.load(i, c, p.lo, p.hi, e), p.b[c], p.c[c], p.one[c]);
    if (Out::kPropagatesNaN && !e) {
      out.store_nan(i, c);
    } else {
      out.store(i, c, v);
    }
    ok &= e;
  }
  if (!ok) report(flag);
}

template <class In, class Out>
bool launch_ibert_gelu(In in, Out out, const IbertGeluParams& p, int* check, cudaStream_t stream) {
  if (p.numel == 0) return true;  // nothing to compute (and a grid of 0 blocks is invalid)
  ErrorFlag flag(flag_for<Out>(check), stream);
  const int64_t blocks = (p.numel + kIbertGeluThreads - 1) / kIbertGeluThreads;
  const unsigned grid = static_cast<unsigned>(blocks < 65536 ? blocks : 65536);
  MNQ_LAUNCH(ibert_gelu_kernel, grid, kIbertGeluThreads, 0, stream)(in, out, p, divider64(p.cols), flag.get());
  check_cuda(cudaGetLastError(), "ibert_gelu_kernel launch");
  return flag.ok();
}

// The per-channel constants of the CUDA QAT path from its device scale (ibert_gelu_channel_consts), one thread
// per channel: nothing is read back to the host. (static: one definition per translation unit, not a template.)
static __global__ void ibert_gelu_consts_kernel(const double* scale, i64 n_scale, i64 cols, i64* k, double* sc,
                                         double* s_out) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < cols; j += stride) {
    ibert_gelu_channel_consts(scale, n_scale, cols, j, k, sc, s_out);
  }
}

inline void launch_ibert_gelu_consts(const double* scale, i64 n_scale, i64 cols, i64* k, double* sc, double* s_out,
                                     cudaStream_t stream) {
  if (cols == 0) return;
  const int64_t blocks = (cols + kIbertGeluThreads - 1) / kIbertGeluThreads;
  const unsigned grid = static_cast<unsigned>(blocks < 65536 ? blocks : 65536);
  MNQ_LAUNCH(ibert_gelu_consts_kernel, grid, kIbertGeluThreads, 0, stream)(scale, n_scale, cols, k, sc, s_out);
  check_cuda(cudaGetLastError(), "ibert_gelu_consts_kernel launch");
}

}  // namespace kernels
}  // namespace mnq
