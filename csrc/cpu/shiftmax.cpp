// CPU Shiftmax: rows in parallel; per row one pass loading the codes into an int32 row buffer (with the range
// check) and taking the max, one computing e into the buffer with its 64-bit sum, one writing the output. The
// loops are branch-free 32-bit integer code so they vectorize. All integer math is kernels/shiftmax.h.
#include "csrc/ops/shiftmax.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <vector>

#include "csrc/cpu/isa.h"
#include "csrc/cpu/shift_gelu_simd.h"
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
    std::vector<int32_t> buf(p.cols);
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
