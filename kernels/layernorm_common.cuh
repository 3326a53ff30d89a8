// CUDA: the affine constants of I-LayerNorm and I-BERT LayerNorm for the fake-quant (QAT) path, computed on the
// device from γ and β (layernorm_common.h ln_affine_channel, the host's function), one thread per channel, so a
// training step reads nothing back. A channel whose γ or β the host would reject gets S_out = NaN (NaN outputs).
#pragma once

#include "cuda_utils.cuh"
#include "layernorm_common.h"

namespace mnq {
namespace kernels {

constexpr int kLnConstsThreads = 256;

// gamma, beta [cols] (float64) → bias_int [cols], s_out [cols]. (static: one definition per translation unit.)
static __global__ void ln_affine_consts_kernel(const double* gamma, const double* beta, i64 cols, i64* bias_int,
                                               double* s_out) {
  const double sy = ln_sy(cols);
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < cols; j += stride) {
    const LnAffineChannel a = ln_affine_channel(gamma[j], beta[j], sy);
    bias_int[j] = a.bias_int;
    s_out[j] = a.s_out;
  }
}

inline void launch_ln_affine_consts(const double* gamma, const double* beta, i64 cols, i64* bias_int, double* s_out,
                                    cudaStream_t stream) {
  if (cols == 0) return;  // a grid of 0 blocks is invalid
  const unsigned grid = static_cast<unsigned>((cols + kLnConstsThreads - 1) / kLnConstsThreads);  // C ≤ 2^16
  MNQ_LAUNCH(ln_affine_consts_kernel, grid, kLnConstsThreads, 0, stream)(gamma, beta, cols, bias_int, s_out);
  check_cuda(cudaGetLastError(), "ln_affine_consts_kernel launch");
}

}  // namespace kernels
}  // namespace mnq
