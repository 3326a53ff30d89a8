// on_grid (grid.h): the reference tensor expression, and the CPU float32 path the analyzer takes.
//
// The reference costs eight passes over the tensor in float64 (two conversions, two divisions, two roundings, the
// clamp, the product) and the clamp's two reductions. The CPU path makes two passes over float32 data:
//   1. The code range. round(v / S) is monotone in v for a fixed S (a correctly rounded quotient and rint are both
//      monotone; decreasing if S < 0), so over the elements of channel c the codes range between
//      round(min_c / S_c) and round(max_c / S_c): a min/max reduction of xq per channel, then two divisions per
//      channel give the same [lo, hi] as rounding every element.
//   2. The codes and the product: the symmetric quantizer's fake-quant form with the clamp range [lo, hi]
//      (csrc/cpu/quant.cpp; kernels/quant.h quantize_code + FakeOut: fl32(q·S) from q = clamp(rint(x / S), lo, hi)
//      with one float64 division per element), which is the reference's value: the reference rounds the same
//      quotient, clamps it to the same integers and rounds the same product fl64(q·S) to float32. The two may differ
//      only in the sign of a zero (the reference keeps rint's −0.0; the integer code 0 stores +0.0), which no
//      consumer of the result can see (the SQNR differences, and the layer's own quantizer, read it as 0).
// Anything else (another device or dtype, a code range with NaN or beyond ±2^62, an empty tensor) takes the
// reference.
#include "csrc/analysis/grid.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "csrc/nn/min_max.h"
#include "csrc/ops/quant.h"

namespace mnq {
namespace analysis {
namespace {

// [lo, hi] of round(xq / S) over xq, S [C] float64 (C = 1 or xq's last dim); false when it is not a finite
// int64 range within ±2^62 (NaN or infinite values, a zero scale).
bool host_code_range(const at::Tensor& xq, const at::Tensor& s, int64_t& lo, int64_t& hi) {
  const int64_t C = s.numel();
  std::vector<float> a, b;
  if (!nn::channel_min_max(xq, C, a, b)) return false;
  const double* sp = s.data_ptr<double>();
  double l = std::numeric_limits<double>::infinity(), h = -l;
  for (int64_t c = 0; c < C; ++c) {
    const double u = std::rint(static_cast<double>(a[size_t(c)]) / sp[c]);
    const double v = std::rint(static_cast<double>(b[size_t(c)]) / sp[c]);
    if (std::isnan(u) || std::isnan(v)) return false;
    l = std::min({l, u, v});
    h = std::max({h, u, v});
  }
  constexpr double kLimit = 0x1p62;
  if (!(l >= -kLimit && h <= kLimit)) return false;
  lo = static_cast<int64_t>(l);
  hi = static_cast<int64_t>(h);
  return true;
}

at::Tensor reference_with(const at::Tensor& x_fp, const at::Tensor& s, const at::Tensor& xq, const at::Tensor& lo,
                          const at::Tensor& hi) {
  const at::Tensor x = x_fp.reshape(xq.sizes());
  const at::Tensor codes = at::clamp(at::round(x.to(at::kDouble) / s), lo, hi);
  return (codes * s).to(xq.scalar_type());
}

at::Tensor double_scale(const at::Tensor& scale, const at::Tensor& xq) {
  return scale.detach().to(xq.device(), at::kDouble);
}

// The CPU float32 path's conditions (file comment); s: the scales as a flat float64 CPU tensor when they hold.
bool fast_layout(const at::Tensor& x_fp, const at::Tensor& scale, const at::Tensor& xq, at::Tensor& s) {
  const bool cpu_float = xq.device().is_cpu() && x_fp.device().is_cpu() && xq.scalar_type() == at::kFloat &&
                         x_fp.scalar_type() == at::kFloat && xq.numel() > 0 && xq.numel() == x_fp.numel();
  const int64_t C = xq.dim() == 0 ? 1 : xq.size(-1);
  // One scale, or one per channel of the last dim, broadcasting to xq's shape (the reference's result shape).
  const bool layout = scale.dim() <= xq.dim() && (scale.numel() == 1 || (scale.numel() == C && scale.size(-1) == C));
  if (!cpu_float || !layout) return false;
  s = scale.detach().to(at::kCPU, at::kDouble).contiguous().reshape({-1});
  return true;
}

// The fake-quant codes of x_fp on S (flat float64 s) clamped to [lo, hi], in xq's shape.
at::Tensor fast(const at::Tensor& x_fp, const at::Tensor& s, const at::Tensor& xq, int64_t lo, int64_t hi) {
  const at::Tensor x = x_fp.detach().reshape(xq.sizes()).contiguous();
  at::Tensor out = at::empty_like(x);
  const kernels::QuantizeParams p{x.numel(), kernels::ChannelLayout{s.numel(), 1}, lo, hi};
  ops::cpu::quantize(x, s, out, p);  // fake quant: NaN stored, never reported
  return out;
}

// The definition's range: min and max of round(xq / s) as tensors.
CodeRange reference_range(const at::Tensor& s, const at::Tensor& xq) {
  const at::Tensor q_codes = at::round(xq.detach().to(at::kDouble) / s);
  return {q_codes.min(), q_codes.max()};
}

}  // namespace

at::Tensor on_grid_reference(const at::Tensor& x_fp, const at::Tensor& scale, const at::Tensor& xq) {
  if (!scale.defined()) return x_fp.reshape(xq.sizes());
  const at::Tensor s = double_scale(scale, xq);
  const CodeRange r = reference_range(s, xq);
  return reference_with(x_fp, s, xq, r.lo, r.hi);
}

at::Tensor on_grid(const at::Tensor& x_fp, const at::Tensor& scale, const at::Tensor& xq) {
  if (!scale.defined()) return x_fp.reshape(xq.sizes());
  return on_grid(x_fp, scale, xq, code_range(scale, xq));
}

CodeRange code_range(const at::Tensor& scale, const at::Tensor& xq) {
  TORCH_CHECK_VALUE(scale.defined(), "code_range: the scale is required");
  at::Tensor flat;
  int64_t lo = 0, hi = 0;
  if (fast_layout(xq, scale, xq, flat) && host_code_range(xq.detach(), flat, lo, hi)) {  // one min/max pass
    const at::TensorOptions f64 = at::TensorOptions().dtype(at::kDouble);
    return {at::scalar_tensor(static_cast<double>(lo), f64), at::scalar_tensor(static_cast<double>(hi), f64)};
  }
  return reference_range(double_scale(scale, xq), xq);
}

at::Tensor on_grid(const at::Tensor& x_fp, const at::Tensor& scale, const at::Tensor& xq, const CodeRange& range) {
  if (!scale.defined()) return x_fp.reshape(xq.sizes());
  at::Tensor s;
  if (fast_layout(x_fp, scale, xq, s) && range.lo.device().is_cpu() && range.hi.device().is_cpu()) {
    // the range's two values on the host (a CPU tensor: no device sync), within the fast path's int64 bound
    const double l = range.lo.item<double>(), h = range.hi.item<double>();
    constexpr double kLimit = 0x1p62;
    if (l >= -kLimit && h <= kLimit && l <= h) {
      return fast(x_fp, s, xq, static_cast<int64_t>(l), static_cast<int64_t>(h));
    }
  }
  return reference_with(x_fp, double_scale(scale, xq), xq, range.lo, range.hi);
}

}  // namespace analysis
}  // namespace mnq
