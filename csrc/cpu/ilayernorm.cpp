// CPU I-LayerNorm: rows in parallel; per row one pass loading the codes into a row buffer while summing Σq and
// Σq², one writing the output. All integer math is kernels/ilayernorm.h.
#include "csrc/ops/ilayernorm.h"

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
bool run(In in, Out out, const LnParams& p) {
  std::atomic<bool> all_ok{true};
  const int64_t grain = std::max<int64_t>(1, 16384 / p.cols);
  at::parallel_for(0, p.rows, grain, [&](int64_t r0, int64_t r1) {
    std::vector<i64> q(p.cols);
    bool ok = true;
    for (int64_t r = r0; r < r1 && ok; ++r) {
      const int64_t base = r * p.cols;
      i64 s = 0, ss = 0;
      for (int64_t j = 0; j < p.cols; ++j) {
        const i64 v = in.load(base + j, j, p.lo, p.hi, ok);
        q[j] = v;
        s += v;
        ss += v * v;
      }
      i64 mean = 0;
      const i64 f = ilayernorm_factor(s, ss, p.cols, mean);
      for (int64_t j = 0; j < p.cols; ++j) out.store(base + j, j, ln_affine_out(q[j] - mean, f, p.bias_int[j]));
    }
    if (!ok) all_ok = false;
  });
  return all_ok;
}

}  // namespace

bool ilayernorm(const at::Tensor& in, const at::Tensor& out, const LnParams& p, double inv_scale,
                const at::Tensor& s_out) {
  if (in.scalar_type() == at::kFloat) {
    return run(LnFloatIn{in.data_ptr<float>(), inv_scale},
               LnChannelFloatOut{out.data_ptr<float>(), s_out.data_ptr<double>()}, p);
  }
  return MNQ_DISPATCH_INT(in.scalar_type(), "ilayernorm", [&] {
    return run(LnIntIn<scalar_t>{in.data_ptr<scalar_t>()}, LnIntOut{out.data_ptr<int64_t>()}, p);
  });
}

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
