// CPU Log-Int-Softmax: rows in parallel; per row one pass loading the codes (checked once) into a row buffer with
// their max, one replacing them by the exponentials and summing in 128 bits, one writing the codes. All integer
// math is kernels/log_int_softmax.h; the exponentials come from kernels/iexp.h directly or through a table of it
// (iexp_table.h).
#include "csrc/ops/log_int_softmax.h"

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

// Exp(x) = ibert_exp(x, p.c.ex) for x ≤ 0.
template <class In, class Out, class Exp>
bool run(In in, Out out, const LogIntSoftmaxParams& p, const Exp& exp) {
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
      u128 s = 0;  // < cols·2^63
      for (int64_t j = 0; j < p.cols; ++j) {
        e[j] = exp(e[j] - m);
        s += static_cast<u128>(e[j]);
      }
      for (int64_t j = 0; j < p.cols; ++j) out.store(base + j, lis_code(s, e[j], p.c));
    }
    if (!ok) all_ok = false;
  });
  return all_ok;
}

template <class In, class Out>
bool run_exp(In in, Out out, const LogIntSoftmaxParams& p) {
  const auto direct = [&p](i64 x) { return ibert_exp(x, p.c.ex); };
  const i64 lo = p.c.ex.n * p.c.ex.x0;
  if (use_table(lo, p.rows * p.cols)) return run(in, out, p, ClampedTable<i64>(lo, direct));
  return run(in, out, p, direct);
}

}  // namespace

bool log_int_softmax(const at::Tensor& in, const at::Tensor& code, const at::Tensor& mask,
                     const LogIntSoftmaxParams& p) {
  const LisCodeOut out{code.data_ptr<uint8_t>(), mask.data_ptr<bool>()};
  return MNQ_DISPATCH_INT(in.scalar_type(), "log_int_softmax",
                          [&] { return run_exp(IntIn<scalar_t>{in.data_ptr<scalar_t>()}, out, p); });
}

bool log_int_softmax_qat(const at::Tensor& in, const at::Tensor& value, const LogIntSoftmaxParams& p,
                         double inv_scale) {
  return run_exp(FloatIn{in.data_ptr<float>(), inv_scale}, LisValueOut{value.data_ptr<float>()}, p);
}

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
