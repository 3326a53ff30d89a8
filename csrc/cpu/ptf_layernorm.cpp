// CPU PTF LayerNorm: rows in parallel; per row one pass loading the shifted codes x into a row buffer while
// summing Σx and Σx², one writing the per-element output. All math is kernels/ptf_layernorm.h.
#include "csrc/ops/ptf_layernorm.h"

#include <ATen/Parallel.h>

#include <atomic>
#include <vector>

#include "csrc/dispatch.h"
#include "kernels/layernorm_common.h"

namespace mnq {
namespace ops {
namespace cpu {
namespace {

using namespace mnq::kernels;

template <class In, class Out>
bool run(In in, Out out, const PtfParams& p) {
  std::atomic<bool> all_ok{true};
  const int64_t grain = std::max<int64_t>(1, 16384 / p.cols);
  at::parallel_for(0, p.rows, grain, [&](int64_t r0, int64_t r1) {
    std::vector<i64> x(p.cols);
    bool ok = true;
    for (int64_t r = r0; r < r1 && ok; ++r) {
      const int64_t base = r * p.cols;
      i64 sx = 0, sxx = 0;
      for (int64_t j = 0; j < p.cols; ++j) {
        const i64 v = ptf_x(in.load(base + j, j, p.lo, p.hi, ok), p.shift[j]);
        x[j] = v;
        sx += v;
        sxx += v * v;
      }
      const PtfRow row = ptf_row(sx, sxx, p.cols, p.scale_next);
      for (int64_t j = 0; j < p.cols; ++j) out.store(base + j, j, ptf_out(x[j], j, row, p));
    }
    if (!ok) all_ok = false;
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
