// CPU I-BERT LayerNorm: rows in parallel; per row one pass loading the codes into a row buffer while summing
// Σq and Σq², the shift search over the centred row when V(0) ≥ 2^32 (usually one pass), one pass writing the
// output. All integer math is kernels/ibert_layernorm.h.
#include "csrc/ops/ibert_layernorm.h"

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

// shift and var = V(shift) of a centred row y with V(0) = v0 (ibert_layernorm.h, the shift search).
int find_shift(const i64* y, int64_t cols, i64& var) {
  if (var < kIbertVarLimit) return 0;
  int shift = ibert_shift_estimate(var);
  for (;;) {
    i64 below = 0, at = 0;
    for (int64_t j = 0; j < cols; ++j) {
      below += ibert_term(y[j], shift - 1);
      at += ibert_term(y[j], shift);
    }
    const int next = ibert_shift_step(shift, below, at);
    if (next == shift) {
      var = at;
      return shift;
    }
    shift = next;
  }
}

template <class In, class Out>
bool run(In in, Out out, const LnParams& p) {
  std::atomic<bool> all_ok{true};
  const int64_t grain = std::max<int64_t>(1, 16384 / p.cols);
  at::parallel_for(0, p.rows, grain, [&](int64_t r0, int64_t r1) {
    std::vector<i64> y(p.cols);
    bool ok = true;
    for (int64_t r = r0; r < r1 && ok; ++r) {
      const int64_t base = r * p.cols;
      i64 s = 0, ss = 0;
      for (int64_t j = 0; j < p.cols; ++j) {
        const i64 v = in.load(base + j, j, p.lo, p.hi, ok);
        y[j] = v;
        s += v;
        ss += v * v;
      }
      const i64 mean = ln_mean(s, p.cols);
      i64 var = ln_centered_sumsq(s, ss, mean, p.cols);
      for (int64_t j = 0; j < p.cols; ++j) y[j] -= mean;
      const int shift = find_shift(y.data(), p.cols, var);
      const i64 f = ibert_factor(var, shift);
      for (int64_t j = 0; j < p.cols; ++j) out.store(base + j, j, ln_affine_out(y[j], f, p.bias_int[j]));
    }
    if (!ok) all_ok = false;
  });
  return all_ok;
}

}  // namespace

bool ibert_layernorm(const at::Tensor& in, const at::Tensor& out, const LnParams& p, double inv_scale,
                     const at::Tensor& s_out) {
  if (in.scalar_type() == at::kFloat) {
    return run(LnFloatIn{in.data_ptr<float>(), inv_scale},
               LnChannelFloatOut{out.data_ptr<float>(), s_out.data_ptr<double>()}, p);
  }
  return MNQ_DISPATCH_INT(in.scalar_type(), "ibert_layernorm", [&] {
    return run(LnIntIn<scalar_t>{in.data_ptr<scalar_t>()}, LnIntOut{out.data_ptr<int64_t>()}, p);
  });
}

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
