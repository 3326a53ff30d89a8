// CPU PTF LayerNorm: rows in parallel; per row one pass loading the shifted codes x into an int32 row buffer while
// summing Σx and Σx², one writing the per-element output with the division-free ptf_out_fast (certified exact,
// kernels/ptf_layernorm_fast.h), and a scalar pass recomputing with ptf_out the rare elements it could not
// certify. When S_next is outside the fast path's range every element uses ptf_out.
#include "csrc/ops/ptf_layernorm.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <vector>

#include "csrc/cpu/vectorize.h"
#include "csrc/dispatch.h"
#include "kernels/layernorm_common.h"
#include "kernels/ptf_layernorm_fast.h"

namespace mnq {
namespace ops {
namespace cpu {
namespace {

using namespace mnq::kernels;

// Rows [r0, r1); x and flag are [cols] buffers. False as soon as a row holds a code outside [p.lo, p.hi].
template <class In, class Out>
MNQ_CPU_CLONES bool rows(In in, Out out, const PtfParams& p, int64_t r0, int64_t r1, int32_t* x, int32_t* flag) {
  const int64_t cols = p.cols;
  const bool fast = ptf_fast_ok(p.scale_next);
  const double inv_sn = 1.0 / p.scale_next;
  double max_cgamma = 0.0;
  for (int64_t j = 0; j < cols; ++j) max_cgamma = std::max(max_cgamma, std::fabs(p.cgamma[j]));
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t base = r * cols;
    int bad = 0;
    i64 sx = 0, sxx = 0;
    for (int64_t j = 0; j < cols; ++j) {
      const int32_t v = static_cast<int32_t>(ptf_x(in.load(base + j, j, p.lo, p.hi, bad), p.shift[j]));  // ≤ 2^18
      x[j] = v;
      sx += v;
      sxx += static_cast<i64>(v) * v;
    }
    if (bad) return false;
    const PtfRow row = ptf_row(sx, sxx, cols, p.scale_next);
    int any_exact = !fast;
    if (fast) {
      const PtfRowFast rf = ptf_row_fast(row, cols, inv_sn, max_cgamma);
      for (int64_t j = 0; j < cols; ++j) {
        int exact = 0;
        out.store(base + j, j, ptf_out_fast(x[j], j, rf, row.sx, p, exact));
        flag[j] = exact;
        any_exact |= exact;
      }
    }
    if (any_exact) {
      for (int64_t j = 0; j < cols; ++j) {
        if (!fast || flag[j]) out.store(base + j, j, ptf_out(x[j], j, row, p));
      }
    }
  }
  return true;
}

template <class In, class Out>
bool run(In in, Out out, const PtfParams& p) {
  std::atomic<bool> all_ok{true};
  const int64_t grain = std::max<int64_t>(1, 16384 / p.cols);
  at::parallel_for(0, p.rows, grain, [&](int64_t r0, int64_t r1) {
    std::vector<int32_t> x(p.cols), flag(p.cols);
    if (!rows(in, out, p, r0, r1, x.data(), flag.data())) all_ok = false;
  });
  return all_ok;
}

}  // namespace

bool ptf_layernorm(const at::Tensor& in, const at::Tensor& out, const PtfParams& p, const at::Tensor& inv_scale,
                   double out_scale) {
  if (in.scalar_type() == at::kFloat) {
    return run(LnChannelFloatIn{in.data_ptr<float>(), inv_scale.data_ptr<double>()},
               LnFloatOut{out.data_ptr<float>(), out_scale}, p);
  }
  return MNQ_DISPATCH_INT(in.scalar_type(), "ptf_layernorm", [&] {
    return run(LnIntIn<scalar_t>{in.data_ptr<scalar_t>()}, LnIntOut{out.data_ptr<int64_t>()}, p);
  });
}

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
