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
  if (p.dev_scale_next != nullptr) {  // CUDA QAT: S_next from device memory (ptf_layernorm_consts checked it)
    p.scale_next = *p.dev_scale_next;
    out.set_scale(p.scale_next);
  }
  int bad = 0;
  i64 sx = 0, sxx = 0;
  for (int64_t j = lane; j < p.cols; j += kWarp) {
    const i64 x = ptf_x(in.load(base + j, j, p.lo, p.hi, bad), p.shift[j]);
    sx += x;
    sxx += x * x;
  }
  if (__any_sync(kFullMask, bad)) {  // a float output writes the row as NaN (flag_for gives it no flag)
    if (lane == 0) report(flag);
    return ln_row_nan(out, base, p.cols, lane, kWarp);
  }
  const PtfRow r = ptf_row(warp_sum(sx), warp_sum(sxx), p.cols, p.scale_next);
  for (int64_t j = lane; j < p.cols; j += kWarp) {
    out.store(base + j, j, ptf_out(ptf_x(in.load(base + j, j, p.lo, p.hi, bad), p.shift[j]), j, r, p));
  }
}

template <class In, class Out>
bool launch_ptf_layernorm(In in, Out out, const PtfParams& p, int* check, cudaStream_t stream) {
  if (p.rows == 0 || p.cols == 0) return true;  // nothing to compute (and a grid of 0 blocks is invalid)
  ErrorFlag flag(flag_for<Out>(check), stream);
  MNQ_LAUNCH(ptf_layernorm_kernel, row_blocks(p.rows), kRowsPerBlock * kWarp, 0, stream)(in, out, p, flag.get());
  check_cuda(cudaGetLastError(), "ptf_layernorm_kernel launch");
  return flag.ok();
}

// The CUDA QAT path's constants from its device scales, in one warp: the reductions over the channels (α in
// {0..3}, α_min, finite γ and β, max |γ|, max |β|), the checks of s_base, S_next and the bound on B (those of the
// host's host_consts), then every channel's constants (ptf_channel_consts). When a check fails, 1/S is NaN in every
// channel: every row then loads a bad code and is written NaN (csrc/ops/qat.h's policy). Nothing is read back.
// (static: one definition per translation unit, not a template.)
static __global__ void ptf_layernorm_consts_kernel(const i64* alpha, const double* gamma, const double* beta,
                                                   const double* s_base, const double* s_next, i64 cols,
                                                   int32_t* shift, double* values) {
  const int lane = static_cast<int>(threadIdx.x);
  bool ok = true;
  i64 a_min = kPtfMaxShift;
  double g_max = 0.0, b_max = 0.0;
  for (int64_t j = lane; j < cols; j += kWarp) {
    const i64 a = alpha[j];
    const double g = gamma[j], b = beta[j];
    ok &= (a >= 0) & (a <= kPtfMaxShift) & (g - g == 0.0) & (b - b == 0.0);
    a_min = a < a_min ? a : a_min;
    g_max = fmax(g_max, fabs(g));
    b_max = fmax(b_max, fabs(b));
  }
  ok = __all_sync(kFullMask, ok);
  for (int o = kWarp / 2; o > 0; o /= 2) {
    const i64 a = __shfl_xor_sync(kFullMask, a_min, o);
    a_min = a < a_min ? a : a_min;
    g_max = fmax(g_max, __shfl_xor_sync(kFullMask, g_max, o));
    b_max = fmax(b_max, __shfl_xor_sync(kFullMask, b_max, o));
  }
  const double sb = *s_base, sn = *s_next;
  ok = ok && ptf_s_base_ok(sb) && valid_scale(sn) && ptf_b_bound(b_max, g_max, cols, sn) <= kPtfMaxB;
  for (int64_t j = lane; j < cols; j += kWarp) {
    if (ok) {
      ptf_channel_consts(alpha[j], a_min, gamma[j], beta[j], sb, cols, j, shift, values);
    } else {
      shift[j] = 0;
      values[j] = values[cols + j] = values[2 * cols + j] = 0.0;
      values[3 * cols + j] = NAN;
    }
  }
}

inline void launch_ptf_layernorm_consts(const i64* alpha, const double* gamma, const double* beta,
                                        const double* s_base, const double* s_next, i64 cols, int32_t* shift,
                                        double* values, cudaStream_t stream) {
  if (cols == 0) return;
  MNQ_LAUNCH(ptf_layernorm_consts_kernel, 1, kWarp, 0, stream)(alpha, gamma, beta, s_base, s_next, cols, shift,
                                                              values);
  check_cuda(cudaGetLastError(), "ptf_layernorm_consts_kernel launch");
}

}  // namespace kernels
}  // namespace mnq
