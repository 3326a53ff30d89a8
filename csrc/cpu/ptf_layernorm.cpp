// CPU PTF LayerNorm: rows in parallel; per row one pass loading the shifted codes x into an int32 row buffer while
// summing Σx and Σx², one writing the per-element output with the division-free ptf_out_fast (certified exact,
// kernels/ptf_layernorm_fast.h), and a scalar pass recomputing with ptf_out the rare elements it could not
// certify. When S_next is outside the fast path's range every element uses ptf_out. With AVX-512 (isa.h) and
// int32 or float32 input, the rows take the explicit vector path of ptf_layernorm_simd.h instead (same values),
// its short pass 2 on the rows it allows. Its per-call constants (ptf_call_consts: ptf_scaled_consts,
// ptf_scaled_consts32, ptf_inv32, ptf_out32) come from the front end, which keeps them across calls, or are made here.
#include "csrc/ops/ptf_layernorm.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <memory>
#include <vector>

#include "csrc/cpu/isa.h"
#include "csrc/cpu/ptf_layernorm_simd.h"
#include "csrc/cpu/row_buffer.h"
#include "csrc/cpu/vectorize.h"
#include "csrc/dispatch.h"
#include "kernels/layernorm_common.h"
#include "kernels/ptf_layernorm_fast.h"

namespace mnq {
namespace ops {
namespace cpu {
namespace {

using namespace mnq::kernels;

// LnFloatOut's value fl32(fl64(v)·S) for the generic row loops, with + 0.0f: there the int64 v comes from
// rint(·) (ptf_out_fast, ptf_out) in the same inlined expression, and GCC with -fno-trapping-math folds
// (double)(int64)r into trunc(r) = r (match.pd's (float)(fix_trunc x) → trunc), which keeps rint's −0.0 where the
// integer 0 gives +0.0. The sum turns that −0.0 into +0.0 and changes nothing else (a nonzero float plus 0 is
// itself; S > 0). (A + 0.0 on fl64(v) itself is folded away: GCC knows an integer's conversion is never −0.0.)
struct PtfFloatOut {
  float* p;
  double scale;
  void store(i64 i, i64 /*c*/, i64 v) const { p[i] = static_cast<float>(static_cast<double>(v) * scale) + 0.0f; }
};

// Rows [r0, r1); x and flag are [cols] buffers. False as soon as a row holds a code outside [p.lo, p.hi].
double max_abs(const double* v, int64_t n) {
  double m = 0.0;
  for (int64_t j = 0; j < n; ++j) m = std::max(m, std::fabs(v[j]));
  return m;
}

template <class In, class Out>
MNQ_CPU_CLONES bool rows(In in, Out out, const PtfParams& p, int64_t r0, int64_t r1, int32_t* x, int32_t* flag) {
  const int64_t cols = p.cols;
  const bool fast = ptf_fast_ok(p.scale_next);
  const double inv_sn = 1.0 / p.scale_next;
  const double max_cgamma = max_abs(p.cgamma, cols);
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t base = r * cols;
    int bad = 0;
    i64 sx = 0, sxx = 0;
    for (int64_t j = 0; j < cols; ++j) {
      const int32_t v = static_cast<int32_t>(ptf_x(in.load(base + j, j, p.lo, p.hi, bad), p.shift[j]));  // ≤ 2^18
      x[j] = v;
      sx += v;
      sxx += static_cast<i64>(v) * v;
    }
    if (bad) return false;
    const PtfRow row = ptf_row(sx, sxx, cols, p.scale_next);
    int any_exact = !fast;
    if (fast) {
      const PtfRowFast rf = ptf_row_fast(row, cols, inv_sn, max_cgamma);
      for (int64_t j = 0; j < cols; ++j) {
        int exact = 0;
        out.store(base + j, j, ptf_out_fast(x[j], j, rf, row.sx, p, exact));
        flag[j] = exact;
        any_exact |= exact;
      }
    }
    if (any_exact) {
      for (int64_t j = 0; j < cols; ++j) {
        if (!fast || flag[j]) out.store(base + j, j, ptf_out(x[j], j, row, p));
      }
    }
  }
  return true;
}

// Rows [r0, r1) on the AVX-512 path (requires ptf_fast_ok(p.scale_next)); `in` and `out` point at row 0, x is a
// [kGroup, cols] buffer. kGroup rows at a time: their pass 1, then their row values (ptf_row's 128-bit isqrt,
// ptf_row_fast's divisions: a latency chain per row), then their pass 2, so that the chains overlap the other rows'
// passes instead of each stalling its own pass 2. (On a rejected row nothing of its group is written: the caller
// discards or recomputes the whole output then.)
constexpr int64_t kGroup = 8;

bool rows_simd(const PtfRowIn& in, const PtfRowOut& out, const PtfParams& p, const PtfScaled& sc, int64_t r0,
               int64_t r1, int32_t* x) {
  const int64_t cols = p.cols;
  const double inv_sn = 1.0 / p.scale_next;
  for (int64_t r = r0; r < r1; r += kGroup) {
    const int64_t n = std::min<int64_t>(kGroup, r1 - r);
    i64 sx[kGroup], sxx[kGroup];
    for (int64_t i = 0; i < n; ++i) {
      sx[i] = sxx[i] = 0;
      if (!ptf_load_row(in.at((r + i) * cols), p, x + i * cols, sx[i], sxx[i])) return false;
    }
    PtfRow row[kGroup];
    PtfRowFast rf[kGroup];
    for (int64_t i = 0; i < n; ++i) {
      row[i] = ptf_row(sx[i], sxx[i], cols, p.scale_next);
      rf[i] = ptf_row_fast(row[i], cols, inv_sn, sc.max_cg);
    }
    for (int64_t i = 0; i < n; ++i) ptf_out_row(x + i * cols, row[i], rf[i], p, out.at((r + i) * cols), &sc);
  }
  return true;
}

// The rows in parallel; `simd` (int32 or float32 input): the vector path when isa() allows it, with the call
// constants k (computed here when nullptr).
template <class In, class Out>
bool run(In in, Out out, const PtfParams& p, const PtfCallConsts* k, const PtfRowIn* simd_in = nullptr,
         const PtfRowOut* simd_out = nullptr) {
  std::atomic<bool> all_ok{true};
  const int64_t grain = std::max<int64_t>(1, 16384 / p.cols);
  const bool simd = simd_in != nullptr && isa() == Isa::kAvx512 && ptf_fast_ok(p.scale_next);
  std::shared_ptr<const PtfCallConsts> own;
  if (simd && (k == nullptr || !k->simd)) {
    own = ptf_call_consts(p, simd_in->inv_scale);
    k = own.get();
  }
  PtfRowIn in_simd = simd_in != nullptr ? *simd_in : PtfRowIn{};
  PtfRowOut out_simd = simd_out != nullptr ? *simd_out : PtfRowOut{};
  if (simd) {
    if (in_simd.x != nullptr && k->inv32_ok) in_simd.inv32 = k->inv32.data();
    if (out_simd.value != nullptr && k->out32.ok && out_simd.scale == p.scale_next) {
      out_simd.out32 = true;
      out_simd.s_hi = k->out32.hi;
      out_simd.s_lo = k->out32.lo;
    }
  }
  at::parallel_for(0, p.rows, grain, [&](int64_t r0, int64_t r1) {
    RowBuffer<int32_t> x(simd ? kGroup * p.cols : p.cols);
    bool ok;
    if (simd) {
      ok = rows_simd(in_simd, out_simd, p, k->sc, r0, r1, x.data());
    } else {
      RowBuffer<int32_t> flag(p.cols);
      ok = rows(in, out, p, r0, r1, x.data(), flag.data());
    }
    if (!ok) all_ok = false;
  });
  return all_ok;
}

}  // namespace

std::shared_ptr<const PtfCallConsts> ptf_call_consts(const PtfParams& p, const double* inv_scale) {
  auto k = std::make_shared<PtfCallConsts>();
  k->simd = isa() == Isa::kAvx512 && ptf_fast_ok(p.scale_next) && p.cols > 0;
  if (!k->simd) return k;
  k->scaled.resize(2 * p.cols);
  k->sc = ptf_scaled_consts(p, k->scaled.data());
  k->scaled32.resize(5 * p.cols);
  ptf_scaled_consts32(p, k->sc, k->scaled32.data());
  k->inv32.resize(p.cols);
  k->inv32_ok = ptf_inv32(inv_scale, p.cols, k->inv32.data());
  k->out32 = ptf_out32(k->sc, p.scale_next);
  return k;
}

bool ptf_layernorm(const at::Tensor& in, const at::Tensor& out, const PtfParams& p, const at::Tensor& inv_scale,
                   double out_scale, const PtfCallConsts* k) {
  if (in.scalar_type() == at::kFloat) {
    const PtfRowIn si{nullptr, in.data_ptr<float>(), inv_scale.data_ptr<double>()};
    const PtfRowOut so{nullptr, out.data_ptr<float>(), out_scale};
    return run(LnChannelFloatIn{in.data_ptr<float>(), inv_scale.data_ptr<double>()},
               PtfFloatOut{out.data_ptr<float>(), out_scale}, p, k, &si, &so);
  }
  if (in.scalar_type() == at::kInt) {
    const PtfRowIn si{in.data_ptr<int32_t>(), nullptr, nullptr};
    const PtfRowOut so{out.data_ptr<int64_t>(), nullptr, 0.0};
    return run(LnIntIn<int32_t>{in.data_ptr<int32_t>()}, LnIntOut{out.data_ptr<int64_t>()}, p, k, &si, &so);
  }
  return MNQ_DISPATCH_INT(in.scalar_type(), "ptf_layernorm", [&] {
    return run(LnIntIn<scalar_t>{in.data_ptr<scalar_t>()}, LnIntOut{out.data_ptr<int64_t>()}, p, k);
  });
}

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
