// CPU Log-Int-Softmax: rows in parallel; per row one pass loading the codes (checked once) into a row buffer with
// their max, one replacing them by the exponentials and summing in 128 bits, one writing the codes. All integer
// math is kernels/log_int_softmax.h; the exponentials come from kernels/iexp.h directly or through a table of it
// (iexp_table.h). With AVX-512 (isa.h), int32 or float32 input and the table, rows take the explicit vector path of
// log_int_softmax_simd.h instead (same values).
#include "csrc/ops/log_int_softmax.h"

#include <ATen/Parallel.h>

#include <atomic>
#include <vector>

#include "csrc/cpu/iexp_table.h"
#include "csrc/cpu/isa.h"
#include "csrc/cpu/log_int_softmax_simd.h"
#include "csrc/cpu/prefetch.h"
#include "csrc/cpu/row_buffer.h"
#include "csrc/dispatch.h"
#include "kernels/io.h"

namespace mnq {
namespace ops {
namespace cpu {
namespace {

using namespace mnq::kernels;

// Exp(x) = ibert_exp(x, p.c.ex) for n·x0 ≤ x ≤ 0. Codes are held as int32 with x = q − max clamped to n·x0
// without forming the 33-bit difference (i-exp clamps there itself); the 128-bit row sum is formed from two 64-bit
// sums of the high and low 32-bit halves (each < cols·2^32); rows with s < 2^61 use the branch-free 64-bit code
// test. The loops vectorize; every value equals kernels/log_int_softmax.h's lis_code.
template <class In, class Out, class Exp>
bool run(In in, Out out, const LogIntSoftmaxParams& p, Exp exp) {
  std::atomic<bool> all_ok{true};
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(p.cols, 1));
  const uint32_t lim = static_cast<uint32_t>(-(p.c.ex.n * p.c.ex.x0));  // n·|x0| < 2^21 in the scale range
  at::parallel_for(0, p.rows, grain, [&](int64_t r0, int64_t r1) {
    RowBuffer<int32_t> qbuf(p.cols);
    RowBuffer<u64> ebuf(p.cols);
    RowBuffer<int32_t> tbuf(p.cols);
    int32_t* tb = tbuf.data();
    int32_t* qb = qbuf.data();
    u64* eb = ebuf.data();
    // Locals, not the lambda's by-reference captures: the uint8/bool code stores may alias anything, and the
    // uint64 exponential stores any int64 (signed and unsigned variants of a type alias), so p.cols, the output
    // pointers or the table's bounds would be reloaded after every store and the loops would not vectorize.
    const int64_t cols = p.cols, lo = p.lo, hi = p.hi;
    const LogIntSoftmaxConsts c = p.c;
    const In src = in;
    const Out dst = out;
    const Exp ex = exp;
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t base = r * cols;
      int bad = 0;
      for (int64_t j = 0; j < cols; ++j) qb[j] = static_cast<int32_t>(src.load(base + j, lo, hi, bad));
      if (bad) {
        all_ok = false;
        return;
      }
      int32_t m = INT32_MIN;
      for (int64_t j = 0; j < cols; ++j) m = qb[j] > m ? qb[j] : m;
      u64 s_hi = 0, s_lo = 0;
      for (int64_t j = 0; j < cols; ++j) {
        const uint32_t d = static_cast<uint32_t>(m) - static_cast<uint32_t>(qb[j]);  // m − q, exactly
        const u64 e = static_cast<u64>(ex(-static_cast<i64>(d < lim ? d : lim)));
        eb[j] = e;
        s_hi += e >> 32;
        s_lo += e & 0xffffffffu;
      }
      const u128 s = (static_cast<u128>(s_hi) << 32) + s_lo;
      if (s < (static_cast<u128>(1) << 61)) {
        const u64 s64 = static_cast<u64>(s);
        const int bl = bit_length(s64);
        for (int64_t j = 0; j < cols; ++j) {  // exponents first (pure 64-bit arithmetic: vectorizes) ...
          const u64 e = eb[j];
          tb[j] = lis_exponent_u64(s64, bl, e | static_cast<u64>(e == 0));
        }
        for (int64_t j = 0; j < cols; ++j) {  // ... then codes
          dst.store(base + j, lis_code_from_t(tb[j], static_cast<int>(eb[j] == 0), c));
        }
      } else {
        for (int64_t j = 0; j < cols; ++j) dst.store(base + j, lis_code(s, static_cast<i64>(eb[j]), c));
      }
    }
  });
  return all_ok;
}

// The rows on the AVX-512 path; `in` and `out` point at row 0. tab: the table of i-exp on [lo, 0].
bool run_simd(const LisRowIn& in, const LisRowOut& out, const LogIntSoftmaxParams& p, const i64* tab, i64 lo) {
  std::atomic<bool> all_ok{true};
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(p.cols, 1));
  const uint32_t lim = static_cast<uint32_t>(-lo);
  const LisTableFacts facts = lis_table_facts(tab, lim, p.cols);
  at::parallel_for(0, p.rows, grain, [&](int64_t r0, int64_t r1) {
    RowBuffer<int32_t> qbuf(p.cols + 16);  // log_int_softmax_simd.h: whole steps past the end
    RowBuffer<u64> ebuf(p.cols + 16);
    const bool prefetch = p.rows * p.cols * 4 > kPrefetchMinBytes;  // the input's bytes (int32 or float32)
    if (!lis_rows(in, p, tab, lim, qbuf.data(), ebuf.data(), out, facts, r0, r1, prefetch)) all_ok = false;
  });
  return all_ok;
}

// simd_in / simd_out (int32 or float32 input): the vector path when isa() allows it and the table pays off.
template <class In, class Out>
bool run_exp(In in, Out out, const LogIntSoftmaxParams& p, const LisRowIn* simd_in = nullptr,
             const LisRowOut* simd_out = nullptr) {
  const auto direct = [&p](i64 x) { return ibert_exp(x, p.c.ex); };
  const i64 lo = p.c.ex.n * p.c.ex.x0;
  if (use_table(lo, p.rows * p.cols)) {
    const ClampedTable<i64> table(lo, direct);
    if (simd_in != nullptr && isa() == Isa::kAvx512 && lis_simd_available()) {
      return run_simd(*simd_in, *simd_out, p, table.view().v, lo);
    }
    return run(in, out, p, table.view());
  }
  return run(in, out, p, direct);
}

}  // namespace

bool log_int_softmax(const at::Tensor& in, const at::Tensor& code, const at::Tensor& mask,
                     const LogIntSoftmaxParams& p) {
  const LisCodeOut out{code.data_ptr<uint8_t>(), reinterpret_cast<uint8_t*>(mask.data_ptr<bool>())};
  if (in.scalar_type() == at::kInt) {
    const LisRowIn si{in.data_ptr<int32_t>(), nullptr, 0.0};
    const LisRowOut so{out.code, out.mask, nullptr};
    return run_exp(IntIn<int32_t>{in.data_ptr<int32_t>()}, out, p, &si, &so);
  }
  return MNQ_DISPATCH_INT(in.scalar_type(), "log_int_softmax",
                          [&] { return run_exp(IntIn<scalar_t>{in.data_ptr<scalar_t>()}, out, p); });
}

bool log_int_softmax_qat(const at::Tensor& in, const at::Tensor& value, const LogIntSoftmaxParams& p,
                         double inv_scale) {
  const LisRowIn si{nullptr, in.data_ptr<float>(), inv_scale};
  const LisRowOut so{nullptr, nullptr, value.data_ptr<float>()};
  return run_exp(FloatIn{in.data_ptr<float>(), inv_scale}, LisValueOut{value.data_ptr<float>()}, p, &si, &so);
}

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
