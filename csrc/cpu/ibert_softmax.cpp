// CPU I-BERT softmax: rows in parallel; per row one pass loading the codes (checked once) into a row buffer with
// their max, one replacing them by the requantized exponentials and summing, one writing the output. All integer
// math is kernels/ibert_softmax.h; the exponentials come from it directly or through a table of it (iexp_table.h).
// With AVX-512 (isa.h), int32 or float32 input and the table, rows take the explicit vector path of
// ibert_softmax_simd.h instead (same values).
#include "csrc/ops/ibert_softmax.h"

#include <ATen/Parallel.h>

#include <atomic>

#include "csrc/cpu/ibert_softmax_simd.h"
#include "csrc/cpu/iexp_table.h"
#include "csrc/cpu/isa.h"
#include "csrc/cpu/prefetch.h"  // kPrefetchMinBytes
#include "csrc/cpu/row_buffer.h"
#include "csrc/dispatch.h"
#include "kernels/io.h"

namespace mnq {
namespace ops {
namespace cpu {
namespace {

using namespace mnq::kernels;

// Exp(x) = ibert_softmax_exp(x, p.c) for n·x0 ≤ x ≤ 0. The row is held as int32 (codes, then exponentials ≤
// 32767); x = q − max is clamped to n·x0 without forming the possibly 33-bit difference (i-exp clamps there
// itself, so the result is unchanged), and the loops are branch-free so they vectorize.
template <class In, class Out, class Exp>
bool run(In in, Out out, const IbertSoftmaxParams& p, const Exp& exp) {
  std::atomic<bool> all_ok{true};
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(p.cols, 1));
  const uint32_t lim = static_cast<uint32_t>(-(p.c.ex.n * p.c.ex.x0));  // n·|x0| < 2^21 in the scale range
  at::parallel_for(0, p.rows, grain, [&](int64_t r0, int64_t r1) {
    RowBuffer<int32_t> buf(p.cols);
    int32_t* b = buf.data();
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t base = r * p.cols;
      int bad = 0;
      for (int64_t j = 0; j < p.cols; ++j) b[j] = static_cast<int32_t>(in.load(base + j, p.lo, p.hi, bad));
      if (bad) {
        all_ok = false;
        return;
      }
      int32_t m = INT32_MIN;
      for (int64_t j = 0; j < p.cols; ++j) m = b[j] > m ? b[j] : m;
      i64 s = 0;  // ≤ 32767·cols
      for (int64_t j = 0; j < p.cols; ++j) {
        const uint32_t d = static_cast<uint32_t>(m) - static_cast<uint32_t>(b[j]);  // m − q, exactly
        b[j] = static_cast<int32_t>(exp(-static_cast<i64>(d < lim ? d : lim)));
        s += b[j];
      }
      const i64 f = ibert_softmax_factor(s);
      for (int64_t j = 0; j < p.cols; ++j) out.store(base + j, ibert_softmax_out(b[j], f, p.c));
    }
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

// The rows on the AVX-512 path; `in` and `out` point at row 0. tab: the table of the exponentials on [lo, 0].
bool run_simd(const IbertSoftmaxRowIn& in, const IbertSoftmaxRowOut& out, const IbertSoftmaxParams& p,
              const int32_t* tab, i64 lo) {
  std::atomic<bool> all_ok{true};
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(p.cols, 1));
  const SoftmaxTable16 t16(tab, static_cast<uint32_t>(-lo), p.cols);
  at::parallel_for(0, p.rows, grain, [&](int64_t r0, int64_t r1) {
    RowBuffer<int32_t> buf(p.cols + 32);  // ibert_softmax_simd.h: whole steps past the end
    const int64_t bytes = p.cols * 4;  // int32 or float32, in and out
    const bool prefetch = p.rows * bytes > kPrefetchMinBytes;
    if (!ibert_softmax_rows(in, p, tab, static_cast<uint32_t>(-lo), &t16, buf.data(), out, r0, r1, prefetch)) {
      all_ok = false;
    }
  });
  return all_ok;
}

}  // namespace

bool ibert_softmax(const at::Tensor& in, const at::Tensor& out, const IbertSoftmaxParams& p, double inv_scale,
                   double out_scale) {
  const auto direct = [&p](i64 x) { return ibert_softmax_exp(x, p.c); };
  const i64 lo = p.c.ex.n * p.c.ex.x0;
  if (use_table(lo, p.rows * p.cols)) {
    const ClampedTable<int32_t> table(lo, direct);  // values ≤ 32767
    if (isa() == Isa::kAvx512) {
      if (in.scalar_type() == at::kFloat) {
        return run_simd(IbertSoftmaxRowIn{nullptr, in.data_ptr<float>(), inv_scale},
                        IbertSoftmaxRowOut{nullptr, out.data_ptr<float>(), out_scale}, p, table.view().v, lo);
      }
      if (in.scalar_type() == at::kInt) {
        return run_simd(IbertSoftmaxRowIn{in.data_ptr<int32_t>(), nullptr, 0.0},
                        IbertSoftmaxRowOut{out.data_ptr<int32_t>(), nullptr, 0.0}, p, table.view().v, lo);
      }
    }
    return run_dtype(in, out, p, inv_scale, out_scale, table);
  }
  return run_dtype(in, out, p, inv_scale, out_scale, direct);
}

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
