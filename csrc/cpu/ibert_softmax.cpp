// CPU I-BERT softmax: rows in parallel; per row one pass loading the codes (checked once) into a row buffer with
// their max, one replacing them by the requantized exponentials and summing, one writing the output. All integer
// math is kernels/ibert_softmax.h; the exponentials come from it directly or through a table of it (iexp_table.h).
#include "csrc/ops/ibert_softmax.h"

#include <ATen/Parallel.h>

#include <atomic>
#include <vector>

#include "csrc/cpu/iexp_table.h"
#include "csrc/dispatch.h"
#include "kernels/io.h"

namespace mnq {
namespace ops {
namespace cpu {
namespace {

using namespace mnq::kernels;

// Exp(x) = ibert_softmax_exp(x, p.c) for x ≤ 0.
template <class In, class Out, class Exp>
bool run(In in, Out out, const IbertSoftmaxParams& p, const Exp& exp) {
  std::atomic<bool> all_ok{true};
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(p.cols, 1));
  at::parallel_for(0, p.rows, grain, [&](int64_t r0, int64_t r1) {
    std::vector<i64> e(p.cols);  // the row's codes, then their exponentials
    bool ok = true;
    for (int64_t r = r0; r < r1 && ok; ++r) {
      const int64_t base = r * p.cols;
      i64 m = kInt64Min;
      for (int64_t j = 0; j < p.cols; ++j) {
        e[j] = in.load(base + j, p.lo, p.hi, ok);
        m = e[j] > m ? e[j] : m;
      }
      if (!ok) break;
      i64 s = 0;  // ≤ 32767·cols
      for (int64_t j = 0; j < p.cols; ++j) {
        e[j] = exp(e[j] - m);
        s += e[j];
      }
      const i64 f = ibert_softmax_factor(s);
      for (int64_t j = 0; j < p.cols; ++j) out.store(base + j, ibert_softmax_out(e[j], f, p.c));
    }
    if (!ok) all_ok = false;
  });
  return all_ok;
}

template <class Exp>
bool run_dtype(const at::Tensor& in, const at::Tensor& out, const IbertSoftmaxParams& p, double inv_scale,
               double out_scale, const Exp& exp) {
  if (in.scalar_type() == at::kFloat) {
    return run(FloatIn{in.data_ptr<float>(), inv_scale}, FloatOut{out.data_ptr<float>(), out_scale}, p, exp);
  }
  return MNQ_DISPATCH_INT(in.scalar_type(), "ibert_softmax", [&] {
    return run(IntIn<scalar_t>{in.data_ptr<scalar_t>()}, IntOut<int32_t>{out.data_ptr<int32_t>()}, p, exp);
  });
}

}  // namespace

bool ibert_softmax(const at::Tensor& in, const at::Tensor& out, const IbertSoftmaxParams& p, double inv_scale,
                   double out_scale) {
  const auto direct = [&p](i64 x) { return ibert_softmax_exp(x, p.c); };
  const i64 lo = p.c.ex.n * p.c.ex.x0;
  if (use_table(lo, p.rows * p.cols)) {
    return run_dtype(in, out, p, inv_scale, out_scale, ClampedTable<int32_t>(lo, direct));  // values ≤ 32767
  }
  return run_dtype(in, out, p, inv_scale, out_scale, direct);
}

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
