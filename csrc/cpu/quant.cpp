// CPU quantizers: elementwise loops in parallel chunks over the scalar math of kernels/quant.h. The PtfAct
// statistic is parallel over channels, each summing its rows in order (the same order as the CUDA kernel).
// Requantization is in csrc/cpu/requant.cpp.
#include "csrc/ops/quant.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <vector>

#include "csrc/cpu/isa.h"
#include "csrc/cpu/quant_simd.h"
#include "csrc/cpu/row_buffer.h"

namespace mnq {
namespace ops {
namespace cpu {
namespace {

using namespace mnq::kernels;
constexpr int64_t kGrain = 32768;

// The vector paths (quant_simd.h) for a per-tensor scale or per-channel scales of the last dim, when they apply;
// else the scalar definition per element (channel (i / inner) % C).
template <class Out>
bool quantize_loop(const float* x, const double* scale, Out out, const QuantizeParams& p) {
  std::atomic<bool> all_ok{true};
  const ChannelLayout layout = p.layout;
  const bool last_dim = layout.C > 1 && layout.inner == 1;
  // The certified float32 form where quant_simd.h's bounds hold, else the exact float64 one (codes need lo, hi
  // within int32, the output's range; fake quant any range).
  // Channels on an axis before the last (a weight's output channels: axis 0): runs of `inner` consecutive values
  // share one scale, each a per-tensor span (the scalar loop per element was ~4 ns a value).
  const bool runs = layout.C > 1 && layout.inner > 1;
  const bool vector_layout = layout.C == 1 || last_dim || runs;
  const bool certified = quantize_simd_ok(scale, layout.C, p.lo, p.hi);
  const bool exact_ok = Out::kPropagatesNaN || (p.lo >= INT32_MIN && p.hi <= INT32_MAX);
  const Isa path = vector_layout && (certified || exact_ok) ? isa() : Isa::kScalar;
  const bool exact = !certified;
  // Fake quant with a per-tensor scale: float32 stores where fake_store32 certifies every code of the range.
  const FakeStore32 store32 = Out::kPropagatesNaN && layout.C == 1 && certified &&
                                      (path == Isa::kAvx512 || path == Isa::kAvx2)
                                  ? fake_store32(path, scale[0], p.lo, p.hi)
                                  : FakeStore32{};
  RowBuffer<float, 1024> recip(layout.C);  // on the stack up to 1024 channels: no heap allocation per call
  for (int64_t c = 0; c < layout.C; ++c) recip.data()[c] = static_cast<float>(1.0 / scale[c]);
  if (last_dim) {
    // Rows × channels: the channel is the column index instead of a modulo per element.
    const int64_t C = layout.C, rows = p.numel / C;
    at::parallel_for(0, rows, std::max<int64_t>(1, kGrain / C), [&](int64_t r0, int64_t r1) {
      int bad = 0;
      for (int64_t r = r0; r < r1; ++r) {
        bad |= quantize_span(path, QuantSpan{x, r * C, C, scale, recip.data(), true, p.lo, p.hi, exact}, out);
      }
      if (bad && !Out::kPropagatesNaN) all_ok = false;
    });
    return all_ok;
  }
  if (runs) {
    const int64_t inner = layout.inner, count = p.numel / inner;
    at::parallel_for(0, count, std::max<int64_t>(1, kGrain / inner), [&](int64_t j0, int64_t j1) {
      int bad = 0;
      for (int64_t j = j0; j < j1; ++j) {
        const int64_t c = j % layout.C;
        const QuantSpan sp{x, j * inner, inner, scale + c, recip.data() + c, false, p.lo, p.hi, exact};
        bad |= quantize_span(path, sp, out);
      }
      if (bad && !Out::kPropagatesNaN) all_ok = false;
    });
    return all_ok;
  }
  at::parallel_for(0, p.numel, kGrain, [&](int64_t i0, int64_t i1) {
    int bad = 0;
    if (layout.C == 1) {
      bad = quantize_span(path, QuantSpan{x, i0, i1 - i0, scale, recip.data(), false, p.lo, p.hi, exact, store32},
                          out);
    } else {
      const Out o = out;  // a local: the stores could alias a by-reference capture
      for (int64_t i = i0; i < i1; ++i) quantize_one(x, scale[layout.channel(i)], p.lo, p.hi, o, i, bad);
    }
    if (bad && !Out::kPropagatesNaN) all_ok = false;
  });
  return all_ok;
}

}  // namespace

bool quantize(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& out, const QuantizeParams& p) {
  const float* xp = x.data_ptr<float>();
  const double* sp = scale.data_ptr<double>();
  if (out.scalar_type() == at::kFloat) return quantize_loop(xp, sp, FakeOut{out.data_ptr<float>()}, p);
  return quantize_loop(xp, sp, CodeOut{out.data_ptr<int32_t>()}, p);
}

void ptf_alpha_error(const at::Tensor& x, double s_base, int64_t lo, int64_t hi, const at::Tensor& err) {
  const int64_t C = x.size(-1);
  const int64_t rows = C == 0 ? 0 : x.numel() / C;
  const float* xp = x.data_ptr<float>();
  double* ep = err.data_ptr<double>();
  // Channels in parallel; rows in order within each channel (row-major sweep over a block of channels, so the
  // reads stay contiguous while every channel's sum keeps the CUDA kernel's order).
  const bool vector = isa() == Isa::kAvx512 && ptf_alpha_simd_ok(s_base);
  at::parallel_for(0, C, 64, [&](int64_t c0, int64_t c1) {
    if (vector && ptf_alpha_error_avx512(xp, rows, C, c0, c1, s_base, lo, hi, ep)) return;
    std::vector<double> acc(static_cast<size_t>(c1 - c0) * 4, 0.0);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = c0; c < c1; ++c) {
        const float v = xp[r * C + c];
        for (int a = 0; a < 4; ++a) {
          acc[(c - c0) * 4 + a] += quant_sq_error(v, s_base * static_cast<double>(1 << a), lo, hi);
        }
      }
    }
    for (int64_t j = 0; j < (c1 - c0) * 4; ++j) ep[c0 * 4 + j] = acc[j];
  });
}

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
