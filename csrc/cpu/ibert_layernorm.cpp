// CPU I-BERT LayerNorm: rows in parallel; per row one pass loading the codes into an int32 row buffer while
// summing Σq and Σq², the shift search over the centred row when V(0) ≥ 2^32 (usually one pass of one sum,
// find_shift), one pass writing
// the output. All integer math is kernels/ibert_layernorm.h; the loops are written so they vectorize. With AVX-512
// (isa.h), int32 and float32 input take the explicit passes of layernorm_simd.h instead (same values): int32 rows
// in groups of 8 (rows_simd_grouped), float32 rows software-pipelined by one (rows_simd_pipelined).
#include "csrc/ops/ibert_layernorm.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <vector>
#include <bit>
#include <cmath>
#include <cstdint>

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

// V(s) of the row q centred at mean: find_shift's short pass.
MNQ_CPU_CLONES i64 shifted_sum(const int32_t* q, int32_t mean, int64_t cols, int s) {
  i64 a = 0;
  for (int64_t j = 0; j < cols; ++j) a += ibert_term(q[j] - mean, s);
  return a;
}

// (V(s − 1), V(s)) of the row q centred at mean: one pass of the shift search.
MNQ_CPU_CLONES void shifted_sums(const int32_t* q, int32_t mean, int64_t cols, int s, i64& below, i64& at) {
  i64 b = 0, a = 0;
  for (int64_t j = 0; j < cols; ++j) {
    b += ibert_term(q[j] - mean, s - 1);
    a += ibert_term(q[j] - mean, s);
  }
  below = b;
  at = a;
}

// The shift search (ibert_find_shift) with one shorter pass for the usual row: when V(0) alone proves V(s − 1) ≥
// 2^32 at the estimate s, a pass computing V(s) only (`single`) decides whenever V(s) < 2^32. The bound: with
// t = y/2^r, floor(t)² ≥ t² − 2|t|, so V(r) ≥ V(0)/4^r − 2·Σ|y|/2^r ≥ V(0)/4^r − 2·√(C·V(0))/2^r (Cauchy–
// Schwarz), evaluated in float64 with a 2^−20 relative margin (far above its rounding errors). Otherwise, and
// when V(s) ≥ 2^32, the search runs as ibert_find_shift defines it (`pair` computes (V(s − 1), V(s))).
template <class Single, class Pair>
int find_shift(i64& var, int64_t cols, const Single& single, const Pair& pair) {
  if (var >= kIbertVarLimit) {
    const int s = ibert_shift_estimate(var);
    // 1/r = 2^(1−s) from its exponent bits (1 ≤ s ≤ 15): the quotients by the powers of two r² and r are these
    // exact products, without two divisions and a libm call on the row's critical path.
    const double v0 = static_cast<double>(var);
    const double ir = std::bit_cast<double>(static_cast<uint64_t>(1023 + 1 - s) << 52);
    if (v0 * (ir * ir) - 2.0 * std::sqrt(static_cast<double>(cols) * v0) * ir >= 0x1p32 * (1.0 + 0x1p-20)) {
      const i64 at = single(s);
      if (at < kIbertVarLimit) {
        var = at;
        return s;
      }
    }
  }
  return ibert_find_shift(var, pair);
}

// Rows [r0, r1); q is a [cols] buffer. False as soon as a row holds a code outside [p.lo, p.hi].
template <class In, class Out>
MNQ_CPU_CLONES bool rows(In in, Out out, const LnParams& p, int64_t r0, int64_t r1, int32_t* q) {
  const int64_t cols = p.cols;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t base = r * cols;
    int bad = 0;
    i64 s = 0, ss = 0;
    for (int64_t j = 0; j < cols; ++j) {
      const int32_t v = static_cast<int32_t>(in.load(base + j, j, p.lo, p.hi, bad));  // |v| ≤ 2^21
      q[j] = v;
      s += v;
      ss += static_cast<i64>(v) * v;
    }
    if (bad) return false;
    const i64 mean = ln_mean(s, cols);
    i64 var = ln_centered_sumsq(s, ss, mean, cols);
    const int32_t mean32 = static_cast<int32_t>(mean);  // |mean| ≤ 2^21, so |q − mean| ≤ 2^22
    const int shift = find_shift(
        var, cols, [&](int sh) { return shifted_sum(q, mean32, cols, sh); },
        [&](int sh, i64& below, i64& at) { shifted_sums(q, mean32, cols, sh, below, at); });
    const LnFactor f = ibert_factor(var, shift);
    for (int64_t j = 0; j < cols; ++j) out.store(base + j, j, ln_affine_out(q[j] - mean32, f, p.bias_int[j]));
  }
  return true;
}

// A row after its load pass: its codes, mean and Σ(q − mean)².
struct LoadedRow {
  const int32_t* q;
  int32_t mean;  // |mean| ≤ 2^21, so |q − mean| ≤ 2^22
  i64 var;
};

bool load_simd_row(const LnRowIn& in, const LnParams& p, int64_t r, int32_t* buf, LoadedRow& row) {
  const LnRowIn ri = in.at(r * p.cols);
  i64 s = 0, ss = 0;
  if (!ln_load_row(ri, p.cols, p.lo, p.hi, buf, s, ss)) return false;
  const i64 mean = ln_mean(s, p.cols);
  row = LoadedRow{ri.codes(buf), static_cast<int32_t>(mean), ln_centered_sumsq(s, ss, mean, p.cols)};
  return true;
}

// Rows [r0, r1) on the AVX-512 passes (layernorm_simd.h); `in` and `out` point at row 0, buf is a [2, cols] buffer.
// Software-pipelined by one row: row r + 1's load pass runs between row r's shift search and its output pass, so
// that row r's scalar chain (isqrt, the 64-bit division of f) overlaps it instead of stalling the output pass, and
// row r + 1's mean division overlaps row r's output pass. (A rejected row stops the loop with rows before it
// unwritten: the caller then discards or recomputes the whole output.) Float input (the QAT form) takes this
// form: rows_simd_grouped measured 2–3% slower there (the group's codes, 12 KB at C = 384, written by its load
// passes), and prefetching the next rows from the output pass made both forms slower.
bool rows_simd_pipelined(const LnRowIn& in, const LnRowOut& out, const LnParams& p, int64_t r0, int64_t r1,
                         int32_t* buf) {
  const int64_t cols = p.cols;
  LoadedRow row{};
  if (r0 < r1 && !load_simd_row(in, p, r0, buf, row)) return false;
  for (int64_t r = r0; r < r1; ++r) {
    i64 var = row.var;
    const int32_t* const q = row.q;
    const int32_t m = row.mean;
    const int shift = find_shift(
        var, cols, [&](int sh) { return ln_shift_sum(q, m, cols, sh); },
        [&](int sh, i64& below, i64& at) { ln_shift_sums(q, m, cols, sh, below, at); });
    const LnFactor f = ibert_factor(var, shift);
    LoadedRow next{};
    if (r + 1 < r1 && !load_simd_row(in, p, r + 1, buf + ((r + 1 - r0) & 1) * cols, next)) return false;
    ln_out_row(q, m, cols, f, p.bias_int, out.at(r * cols));
    row = next;
  }
  return true;
}

// Rows [r0, r1) of int32 input on the AVX-512 passes (layernorm_simd.h), the codes read in place; `in` and `out`
// point at row 0. kGroup rows at a time: their load passes, then their shift searches and factors, then their
// output passes, so that each row's scalar chain (the mean's division, the search's square root, isqrt and the
// 64-bit division of f) overlaps the other rows' passes instead of stalling its own output pass. ~5% faster than rows_simd_pipelined on int32 input. (A
// rejected row stops the loop with its group unwritten: the caller then discards or recomputes the whole output.)
constexpr int64_t kGroup = 8;

bool rows_simd_grouped(const LnRowIn& in, const LnRowOut& out, const LnParams& p, int64_t r0, int64_t r1) {
  const int64_t cols = p.cols;
  for (int64_t r = r0; r < r1; r += kGroup) {
    const int64_t n = std::min<int64_t>(kGroup, r1 - r);
    LoadedRow row[kGroup];
    for (int64_t i = 0; i < n; ++i) {
      if (!load_simd_row(in, p, r + i, nullptr, row[i])) return false;  // int32: no buffer written
    }
    LnFactor f[kGroup];
    for (int64_t i = 0; i < n; ++i) {
      i64 var = row[i].var;
      const int32_t* const q = row[i].q;
      const int32_t m = row[i].mean;
      const int shift = find_shift(
          var, cols, [&](int sh) { return ln_shift_sum(q, m, cols, sh); },
          [&](int sh, i64& below, i64& at) { ln_shift_sums(q, m, cols, sh, below, at); });
      f[i] = ibert_factor(var, shift);
    }
    for (int64_t i = 0; i < n; ++i) {
      ln_out_row(row[i].q, row[i].mean, cols, f[i], p.bias_int, out.at((r + i) * cols));
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
    RowBuffer<int32_t> q(simd ? 2 * p.cols : p.cols);
    bool ok;
    if (!simd) {
      ok = rows(in, out, p, r0, r1, q.data());
    } else if (simd_in->x != nullptr) {
      ok = rows_simd_pipelined(*simd_in, out_simd, p, r0, r1, q.data());
    } else {
      ok = rows_simd_grouped(*simd_in, out_simd, p, r0, r1);
    }
    if (!ok) all_ok = false;
  });
  return all_ok;
}

}  // namespace

bool ibert_layernorm(const at::Tensor& in, const at::Tensor& out, const LnParams& p, double inv_scale,
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
  return MNQ_DISPATCH_INT(in.scalar_type(), "ibert_layernorm", [&] {
    return run(LnIntIn<scalar_t>{in.data_ptr<scalar_t>()}, LnIntOut{out.data_ptr<int64_t>()}, p);
  });
}

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
