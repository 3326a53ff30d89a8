// CPU Shiftmax: rows in parallel; per row one pass loading the codes into an int32 row buffer (with the range
// check) and taking the max, one computing e into the buffer with its 64-bit sum, one writing the output. The
// loops are branch-free 32-bit integer code so they vectorize. All integer math is kernels/shiftmax.h. With
// AVX-512 (isa.h), int32 or float32 input and a table of e of at most 2^16 entries, rows take the explicit vector
// path of shiftmax_simd.h instead (same values).
#include "csrc/ops/shiftmax.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <climits>

#include "csrc/cpu/iexp_table.h"
#include "csrc/cpu/isa.h"
#include "csrc/cpu/row_buffer.h"
#include "csrc/cpu/shift_gelu_simd.h"
#include "csrc/cpu/shiftmax_simd.h"
#include "csrc/dispatch.h"
#include "kernels/io.h"

namespace mnq {
namespace ops {
namespace cpu {
namespace {

using namespace mnq::kernels;

// The float values behind a QAT loader (nullptr for integer input).
inline const FloatIn* float_in(const FloatIn& in) { return &in; }
template <class In>
const FloatIn* float_in(const In&) { return nullptr; }

template <class In, class Out>
bool run(In in, Out out, const ShiftmaxParams& p) {
  std::atomic<bool> all_ok{true};
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(p.cols, 1));
  // Float input with AVX-512: the first pass is row_codes_simd.h's (certified float32 codes, else float64; the same
  // codes and range test as FloatIn), which ShiftGELU's vector path exports as shift_gelu_codes.
  const FloatIn* fin = isa() == Isa::kAvx512 ? float_in(in) : nullptr;
  const int32_t lo = static_cast<int32_t>(std::max<int64_t>(p.lo, INT32_MIN));
  const int32_t hi = static_cast<int32_t>(std::min<int64_t>(p.hi, INT32_MAX));
  at::parallel_for(0, p.rows, grain, [&](int64_t r0, int64_t r1) {
    RowBuffer<int32_t> buf(p.cols);
    int32_t* b = buf.data();
    bool ok = true;
    for (int64_t r = r0; r < r1 && ok; ++r) {
      const int64_t base = r * p.cols;
      int32_t m = INT32_MIN;
      if (fin != nullptr) {
        int32_t mn = 0;
        ok = shift_gelu_codes(fin->p + base, p.cols, fin->inv_scale, lo, hi, b, m, mn);
        if (!ok) break;
      } else {
        int bad = 0;
        for (int64_t j = 0; j < p.cols; ++j) {
          b[j] = static_cast<int32_t>(in.load(base + j, p.lo, p.hi, bad));  // in int32 range when !bad
        }
        ok = bad == 0;
        if (!ok) break;
        for (int64_t j = 0; j < p.cols; ++j) m = b[j] > m ? b[j] : m;
      }
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

// The rows on the AVX-512 path; `in` and `out` point at row 0. tab: shift_exp32 on [x_lo, 0] (shiftmax_simd.h).
bool run_simd(const IbertSoftmaxRowIn& in, const IbertSoftmaxRowOut& out, const ShiftmaxParams& p, const int32_t* tab) {
  std::atomic<bool> all_ok{true};
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(p.cols, 1));
  const uint32_t lim = static_cast<uint32_t>(-p.c.se.x_lo);
  const SoftmaxTable16 t16(tab, lim, p.cols);
  at::parallel_for(0, p.rows, grain, [&](int64_t r0, int64_t r1) {
    RowBuffer<int32_t> buf(p.cols + 32);  // shiftmax_simd.h: whole steps past the end
    if (!shiftmax_rows(in, p, tab, lim, &t16, buf.data(), out, r0, r1)) all_ok = false;
  });
  return all_ok;
}

// The vector path's table pays off at any size of the input once it is small: x_lo ≈ n·x0 / 1.4375 gives 170
// entries at n = 15 and the S = 8/127 of 8-bit attention scores (a few microseconds to build); up to 2^16 entries
// (scales down to ~1e-3 at n = 15) it is built when the input has at least 4 elements per entry (iexp_table.h).
bool simd_table_ok(const ShiftmaxParams& p) {
  const int64_t size = 1 - static_cast<int64_t>(p.c.se.x_lo);
  return isa() == Isa::kAvx512 && (size <= 4096 || use_table(p.c.se.x_lo, p.rows * p.cols));
}

}  // namespace

bool shiftmax(const at::Tensor& in, const at::Tensor& out, const ShiftmaxParams& p, double inv_scale,
              double out_scale) {
  if (simd_table_ok(p) && (in.scalar_type() == at::kFloat || in.scalar_type() == at::kInt)) {
    const ShiftExp32 se = p.c.se;
    const ClampedTable<int32_t> table(se.x_lo, [&se](int64_t x) { return shift_exp32(static_cast<int32_t>(x), se); });
    if (in.scalar_type() == at::kFloat) {
      return run_simd(IbertSoftmaxRowIn{nullptr, in.data_ptr<float>(), inv_scale},
                      IbertSoftmaxRowOut{nullptr, out.data_ptr<float>(), out_scale}, p, table.view().v);
    }
    return run_simd(IbertSoftmaxRowIn{in.data_ptr<int32_t>(), nullptr, 0.0},
                    IbertSoftmaxRowOut{out.data_ptr<int32_t>(), nullptr, 0.0}, p, table.view().v);
  }
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
