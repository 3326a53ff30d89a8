// CPU Shiftmax: rows in parallel; per row one pass loading the codes into an int32 row buffer (with the range
// check) and taking the max, one computing e into the buffer with its 64-bit sum, one writing the output. The
// loops are branch-free 32-bit integer code so they vectorize. All integer math is kernels/shiftmax.h.
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
    std::vector<int32_t> buf(p.cols);
    int32_t* b = buf.data();
    bool ok = true;
    for (int64_t r = r0; r < r1 && ok; ++r) {
      const int64_t base = r * p.cols;
      int bad = 0;
      for (int64_t j = 0; j < p.cols; ++j) {
        b[j] = static_cast<int32_t>(in.load(base + j, p.lo, p.hi, bad));  // in int32 range when !bad
      }
      ok = bad == 0;
      if (!ok) break;
      int32_t m = INT32_MIN;
      for (int64_t j = 0; j < p.cols; ++j) m = b[j] > m ? b[j] : m;
      int64_t s = 0;
      for (int64_t j = 0; j < p.cols; ++j) {
        b[j] = shiftmax_exp(b[j], m, p.c);
        s += b[j];
      }
      const int32_t f = shiftmax_factor(s);
      for (int64_t j = 0; j < p.cols; ++j) out.store(base + j, shiftmax_out(b[j], f, p.c));
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
