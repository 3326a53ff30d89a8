// CPU I-LayerNorm: rows in parallel; per row one pass loading the codes into an int32 row buffer while summing
// Σq and Σq², one writing the output. All integer math is kernels/ilayernorm.h; the loops are written so they
// vectorize (32-bit codes, 32×32→64-bit products, an int range flag). With AVX-512 (isa.h), int32 and float32
// input take the explicit passes of layernorm_simd.h instead (same values).
#include "csrc/ops/ilayernorm.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <vector>

#include "csrc/cpu/isa.h"
#include "csrc/cpu/layernorm_simd.h"
#include "csrc/cpu/row_buffer.h"
#include "csrc/cpu/vectorize.h"
#include "csrc/dispatch.h"
#include "kernels/layernorm_common.h"

namespace mnq {
namespace ops {
namespace cpu {
namespace {

using namespace mnq::kernels;

// Rows [r0, r1); q is a [cols] buffer. False as soon as a row holds a code outside [p.lo, p.hi].
template <class In, class Out>
MNQ_CPU_CLONES bool rows(In in, Out out, const LnParams& p, int64_t r0, int64_t r1, int32_t* q) {
  const int64_t cols = p.cols;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t base = r * cols;
    int bad = 0;
    i64 s = 0, ss = 0;
    for (int64_t j = 0; j < cols; ++j) {
      const int32_t v = static_cast<int32_t>(in.load(base + j, j, p.lo, p.hi, bad));  // |v| ≤ 2^15
      q[j] = v;
      s += v;
      ss += static_cast<i64>(v) * v;
    }
    if (bad) return false;
    i64 mean = 0;
    const LnFactor f = ilayernorm_factor(s, ss, cols, mean);
    const int32_t mean32 = static_cast<int32_t>(mean);  // |mean| ≤ 2^15
    for (int64_t j = 0; j < cols; ++j) out.store(base + j, j, ln_affine_out(q[j] - mean32, f, p.bias_int[j]));
  }
  return true;
}

// Rows [r0, r1) on the AVX-512 passes (layernorm_simd.h), 8 at a time so that their square roots share vector
// divisions (ilayernorm_std8); `in` and `out` point at row 0, q is an [8, cols] buffer.
bool rows_simd(const LnRowIn& in, const LnRowOut& out, const LnParams& p, int64_t r0, int64_t r1, int32_t* q) {
  for (int64_t r = r0; r < r1; r += 8) {
    const int64_t n = std::min<int64_t>(8, r1 - r);
    // Lanes past the last row: var = 2^32, whose iteration stays at 2^16 (ilayernorm_std8 then stops early).
    constexpr i64 kIdle = i64(1) << 32;
    i64 mean[8], var[8] = {kIdle, kIdle, kIdle, kIdle, kIdle, kIdle, kIdle, kIdle}, k[8], f[8];
    const int32_t* codes[8];
    for (int64_t i = 0; i < n; ++i) {
      i64 s = 0, ss = 0;
      const LnRowIn ri = in.at((r + i) * p.cols);
      if (!ln_load_row(ri, p.cols, p.lo, p.hi, q + i * p.cols, s, ss)) return false;
      codes[i] = ri.codes(q + i * p.cols);
      mean[i] = ln_mean(s, p.cols);
      var[i] = ln_centered_sumsq(s, ss, mean[i], p.cols);
    }
    ilayernorm_std8(var, k, f);  // f = floor((2^31 − 1) / k): ilayernorm_factor's, from the same std
    for (int64_t i = 0; i < n; ++i) {
      const int32_t m = static_cast<int32_t>(mean[i]);  // |mean| ≤ 2^15
      ln_out_row(codes[i], m, p.cols, ln_factor(f[i]), p.bias_int, out.at((r + i) * p.cols));
    }
  }
  return true;
}

// simd_in / simd_out (int32 or float32 input): the AVX-512 passes when isa() allows them.
template <class In, class Out>
bool run(In in, Out out, const LnParams& p, const LnRowIn* simd_in = nullptr, const LnRowOut* simd_out = nullptr) {
  std::atomic<bool> all_ok{true};
  const int64_t grain = std::max<int64_t>(1, 16384 / p.cols);
  const bool simd = simd_in != nullptr && isa() == Isa::kAvx512;
  // Float output: the float64 form of the output pass when every |bias_int| ≤ 2^50 (ln_bias_magic).
  std::vector<double> bias_m(simd && simd_out->value != nullptr ? p.cols : 0);
  LnRowOut out_simd = simd_out != nullptr ? *simd_out : LnRowOut{};
  if (!bias_m.empty() && ln_bias_magic(p.bias_int, p.cols, bias_m.data())) out_simd.bias_m = bias_m.data();
  at::parallel_for(0, p.rows, grain, [&](int64_t r0, int64_t r1) {
    RowBuffer<int32_t> q(simd ? 8 * p.cols : p.cols);
    const bool ok = simd ? rows_simd(*simd_in, out_simd, p, r0, r1, q.data()) : rows(in, out, p, r0, r1, q.data());
    if (!ok) all_ok = false;
  });
  return all_ok;
}

}  // namespace

bool ilayernorm(const at::Tensor& in, const at::Tensor& out, const LnParams& p, double inv_scale,
                const at::Tensor& s_out) {
  if (in.scalar_type() == at::kFloat) {
    const LnRowIn si{nullptr, in.data_ptr<float>(), inv_scale};
    const LnRowOut so{nullptr, out.data_ptr<float>(), s_out.data_ptr<double>()};
    return run(LnFloatIn{in.data_ptr<float>(), inv_scale},
               LnChannelFloatOut{out.data_ptr<float>(), s_out.data_ptr<double>()}, p, &si, &so);
  }
  if (in.scalar_type() == at::kInt) {
    const LnRowIn si{in.data_ptr<int32_t>(), nullptr, 0.0};
    const LnRowOut so{out.data_ptr<int64_t>(), nullptr, nullptr};
    return run(LnIntIn<int32_t>{in.data_ptr<int32_t>()}, LnIntOut{out.data_ptr<int64_t>()}, p, &si, &so);
  }
  return MNQ_DISPATCH_INT(in.scalar_type(), "ilayernorm", [&] {
    return run(LnIntIn<scalar_t>{in.data_ptr<scalar_t>()}, LnIntOut{out.data_ptr<int64_t>()}, p);
  });
}

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
