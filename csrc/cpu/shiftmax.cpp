// CPU Shiftmax: rows in parallel; per row one pass for the max, one computing e (kept in a row buffer) with its
// saturated sum, one writing the output. All integer math is kernels/shiftmax.h.
#include "csrc/ops/shiftmax.h"

#include <ATen/Parallel.h>

#include <atomic>
#include <vector>

#include "csrc/dispatch.h"
#include "kernels/io.h"

namespace mnq {
namespace ops {
namespace cpu {
namespace {

using namespace mnq::kernels;

template <class In, class Out>
bool run(In in, Out out, const ShiftmaxParams& p) {
  std::atomic<bool> all_ok{true};
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(p.cols, 1));
  at::parallel_for(0, p.rows, grain, [&](int64_t r0, int64_t r1) {
    std::vector<i64> e(p.cols);
    bool ok = true;
    for (int64_t r = r0; r < r1 && ok; ++r) {
      const int64_t base = r * p.cols;
      i64 m = kInt64Min;
      for (int64_t j = 0; j < p.cols; ++j) {
        const i64 v = in.load(base + j, p.lo, p.hi, ok);
        m = v > m ? v : m;
      }
      if (!ok) break;
      i64 s = 0;
      for (int64_t j = 0; j < p.cols; ++j) {
        e[j] = shift_exp(in.load(base + j, p.lo, p.hi, ok) - m, p.c.se);
        s = sat_add(s, e[j], kInt31Max);
      }
      const i64 f = shiftmax_factor(s);
      for (int64_t j = 0; j < p.cols; ++j) out.store(base + j, shiftmax_out(e[j], f, p.c));
    }
    if (!ok) all_ok = false;
  });
  return all_ok;
}

}  // namespace

bool shiftmax(const at::Tensor& in, const at::Tensor& out, const ShiftmaxParams& p, double inv_scale,
              double out_scale) {
  if (in.scalar_type() == at::kFloat) {
    return run(FloatIn{in.data_ptr<float>(), inv_scale}, FloatOut{out.data_ptr<float>(), out_scale}, p);
  }
  return MNQ_DISPATCH_INT(in.scalar_type(), "shiftmax", [&] {
    return run(IntIn<scalar_t>{in.data_ptr<scalar_t>()}, IntOut<int32_t>{out.data_ptr<int32_t>()}, p);
  });
}

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
