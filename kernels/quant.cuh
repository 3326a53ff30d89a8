// CUDA quantizers: grid-stride elementwise kernels over the scalar math of quant.h; the PtfAct statistic uses one
// thread per channel summing rows in order, so it equals the CPU sum bit for bit. The channel of an element is
// ChannelLayout::channel's (i / inner) % C, taken with multiply-highs (ChannelIndex) instead of 64-bit divisions.
#pragma once

#include "cuda_utils.cuh"
#include "quant.h"

namespace mnq {
namespace kernels {

inline unsigned elem_blocks(int64_t n) {
  const int64_t b = (n + 255) / 256;
  return static_cast<unsigned>(b < 65535 * 8 ? (b > 0 ? b : 1) : 65535 * 8);
}

// layout.channel(i) without a division per element (common.h Divider64; same value for every i ≥ 0).
struct ChannelIndex {
  Divider64 inner;
  Divider64 C;
  bool per_tensor;
  __device__ __forceinline__ i64 channel(i64 i) const {
    return per_tensor ? 0 : static_cast<i64>(modulo(divide(static_cast<u64>(i), inner), C));
  }
};

inline ChannelIndex channel_index(const ChannelLayout& l) {  // host; l.C, l.inner ≥ 1
  return ChannelIndex{divider64(static_cast<u64>(l.inner)), divider64(static_cast<u64>(l.C)), l.C == 1};
}

template <class Out>
__global__ void quantize_kernel(const float* x, const double* scale, Out out, QuantizeParams p, ChannelIndex ch,
                                int* flag) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < p.numel;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const double s = scale[ch.channel(i)];
    i64 q = 0;
    if (!valid_scale(s, false) || !quantize_code(x[i], s, p.lo, p.hi, q)) {  // device scales: not checked on the host
      if (!no_code(out, i)) report(flag);
      continue;
    }
    out.store(i, q, s);
  }
}

// `scale`: one float64 per channel in device memory. An invalid scale (valid_scale) gives NaN / a report for its
// channel, as a NaN input does. `check`: the flag memory, used only for code outputs (fake quant turns NaN into NaN
// instead of reporting it).
template <class Out>
bool launch_quantize(const float* x, const double* scale, Out out, const QuantizeParams& p, int* check,
                     cudaStream_t stream) {
  if (p.numel == 0) return true;  // nothing to compute (and channel_index needs C, inner ≥ 1)
  ErrorFlag flag(Out::kPropagatesNaN ? nullptr : check, stream);
  MNQ_LAUNCH(quantize_kernel, elem_blocks(p.numel), 256, 0, stream)(x, scale, out, p, channel_index(p.layout),
                                                                     flag.get());
  check_cuda(cudaGetLastError(), "quantize_kernel launch");
  return flag.ok();
}

template <class In, class IdIn, class Out>
__global__ void requant_kernel(In in, IdIn id, DyadicArray d, DyadicArray d_id, const double* out_scale, Out out,
                               RequantParams p, ChannelIndex in_ch, ChannelIndex id_ch, int* flag) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < p.numel;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const i64 c = in_ch.channel(i);
    const i64 cid = id_ch.channel(i);
    i64 q = 0, qid = 0;
    const bool have_d = d.valid(c) && (!p.has_identity || d_id.valid(cid));  // kNoDyadic: an invalid scale
    if (!have_d || !in.load(i, c, q) || (p.has_identity && !id.load(i, cid, qid))) {
      if (!no_code(out, i)) report(flag);
      continue;
    }
    const i64 r = p.has_identity ? requant_code(q, d.at(c), qid, d_id.at(cid), p.lo, p.hi)
                                 : requant_code(q, d.at(c), p.lo, p.hi);
    out.store(i, r, *out_scale);
  }
}

// One thread per channel: m[c], k[c] = requant_dyadic(scale[c], *scale_out) (quant.h), so the multipliers of the
// CUDA requant are computed from device scales without a host read. scale: [C], m, k: [C], all device memory.
__global__ void requant_dyadic_kernel(const double* scale, int64_t C, const double* scale_out, i64* m, i64* k) {
  const int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (c < C) requant_dyadic(scale[c], *scale_out, m[c], k[c]);
}

inline void launch_requant_dyadics(const double* scale, int64_t C, const double* scale_out, i64* m, i64* k,
                                   cudaStream_t stream) {
  if (C == 0) return;
  MNQ_LAUNCH(requant_dyadic_kernel, static_cast<unsigned>((C + 127) / 128), 128, 0, stream)(scale, C, scale_out, m,
                                                                                           k);
  check_cuda(cudaGetLastError(), "requant_dyadic_kernel launch");
}

// d, d_id: multipliers from launch_requant_dyadics (a channel with k = kNoDyadic has no code: NaN / reported);
// out_scale: the output scale in device memory (fake quant stores code·S_out).
template <class In, class IdIn, class Out>
bool launch_requant(In in, IdIn id, DyadicArray d, DyadicArray d_id, const double* out_scale, Out out,
                    const RequantParams& p, int* check, cudaStream_t stream) {
  if (p.numel == 0) return true;  // nothing to compute (and channel_index needs C, inner ≥ 1)
  ErrorFlag flag(check, stream);
  MNQ_LAUNCH(requant_kernel, elem_blocks(p.numel), 256, 0, stream)(in, id, d, d_id, out_scale, out, p,
                                                                    channel_index(p.in_layout),
                                                                    channel_index(p.id_layout), flag.get());
  check_cuda(cudaGetLastError(), "requant_kernel launch");
  return flag.ok();
}

// s_base: one float64 in device memory; an invalid one (valid_scale) makes every sum NaN.
__global__ void ptf_alpha_error_kernel(const float* x, int64_t rows, int64_t C, const double* s_base_p, i64 lo,
                                       i64 hi, double* err) {
  const int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (c >= C) return;
  const double s_base = *s_base_p;
  if (!valid_scale(s_base, false)) {
    for (int a = 0; a < 4; ++a) err[c * 4 + a] = NAN;
    return;
  }
  double acc[4] = {0.0, 0.0, 0.0, 0.0};
  for (int64_t r = 0; r < rows; ++r) {
    const float v = x[r * C + c];
    for (int a = 0; a < 4; ++a) acc[a] += quant_sq_error(v, s_base * static_cast<double>(1 << a), lo, hi);
  }
  for (int a = 0; a < 4; ++a) err[c * 4 + a] = acc[a];
}

inline void launch_ptf_alpha_error(const float* x, int64_t rows, int64_t C, const double* s_base, i64 lo, i64 hi,
                                   double* err, cudaStream_t stream) {
  if (C == 0) return;  // no channels: nothing to write (and a grid of 0 blocks is invalid)
  MNQ_LAUNCH(ptf_alpha_error_kernel, static_cast<unsigned>((C + 127) / 128), 128, 0, stream)(x, rows, C, s_base, lo,
                                                                                            hi, err);
  check_cuda(cudaGetLastError(), "ptf_alpha_error_kernel launch");
}

}  // namespace kernels
}  // namespace mnq
