// CPU quantizers: elementwise loops in parallel chunks over the scalar math of kernels/quant.h. The PtfAct
// statistic is parallel over channels, each summing its rows in order (the same order as the CUDA kernel).
#include "csrc/ops/quant.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <vector>

#include "csrc/cpu/isa.h"
#include "csrc/cpu/quant_simd.h"
#include "csrc/cpu/requant_simd.h"
#include "csrc/dispatch.h"

namespace mnq {
namespace ops {
namespace cpu {
namespace {

using namespace mnq::kernels;
constexpr int64_t kGrain = 32768;

// The vector paths (quant_simd.h) for a per-tensor scale or per-channel scales of the last dim, when they apply;
// else the scalar definition per element (channel (i / inner) % C).
template <class Out>
bool quantize_loop(const float* x, const double* scale, Out out, const QuantizeParams& p) {
  std::atomic<bool> all_ok{true};
  const ChannelLayout layout = p.layout;
  const bool last_dim = layout.C > 1 && layout.inner == 1;
  const Isa path = (layout.C == 1 || last_dim) && quantize_simd_ok(scale, layout.C, p.hi) ? isa() : Isa::kScalar;
  std::vector<float> recip(static_cast<size_t>(layout.C));
  for (int64_t c = 0; c < layout.C; ++c) recip[c] = static_cast<float>(1.0 / scale[c]);
  if (last_dim) {
    // Rows × channels: the channel is the column index instead of a modulo per element.
    const int64_t C = layout.C, rows = p.numel / C;
    at::parallel_for(0, rows, std::max<int64_t>(1, kGrain / C), [&](int64_t r0, int64_t r1) {
      int bad = 0;
      for (int64_t r = r0; r < r1; ++r) bad |= quantize_span(path, QuantSpan{x, r * C, C, scale, recip.data(), true, p.lo, p.hi}, out);
      if (bad && !Out::kPropagatesNaN) all_ok = false;
    });
    return all_ok;
  }
  at::parallel_for(0, p.numel, kGrain, [&](int64_t i0, int64_t i1) {
    int bad = 0;
    if (layout.C == 1) {
      bad = quantize_span(path, QuantSpan{x, i0, i1 - i0, scale, recip.data(), false, p.lo, p.hi}, out);
    } else {
      const Out o = out;  // locals: see requant_fast
      for (int64_t i = i0; i < i1; ++i) quantize_one(x, scale[layout.channel(i)], p.lo, p.hi, o, i, bad);
    }
    if (bad && !Out::kPropagatesNaN) all_ok = false;
  });
  return all_ok;
}

// The exact loop over elements [i0, i1): any codes, any multipliers (128-bit requant).
template <class In, class IdIn, class Out>
bool requant_range(In in, IdIn id, DyadicArray d, DyadicArray d_id, double out_scale, Out out,
                   const RequantParams& p, int64_t i0, int64_t i1) {
  bool ok = true;
  for (int64_t i = i0; i < i1; ++i) {
      const i64 c = p.in_layout.channel(i);
      const i64 cid = p.id_layout.channel(i);
      i64 q = 0, qid = 0;
      const bool have = in.load(i, c, q) && (!p.has_identity || id.load(i, cid, qid));
      if (!have) {
        ok = no_code(out, i) && ok;
        continue;
      }
      const i64 r = p.has_identity ? requant_code(q, d.at(c), qid, d_id.at(cid), p.lo, p.hi)
                                   : requant_code(q, d.at(c), p.lo, p.hi);
      out.store(i, r, out_scale);
  }
  return ok;
}

// Fast-path row loaders: copy one row's codes into an int64 buffer and return nonzero when one of them is outside
// |q| < limit (or NaN), where the fast requant (requant64: 2^31, requant64_wide: 2^62) is not valid. Plain loops
// over contiguous arrays with an integer OR-reduction: they vectorize.
template <typename T>
struct FastIntIn {
  const T* p;
  i64 load_row(i64 base, i64 n, const double* /*scale*/, i64 limit, i64* __restrict out) const {
    const T* __restrict src = p + base;
    i64 big = 0;
    for (i64 c = 0; c < n; ++c) {
      const i64 v = static_cast<i64>(src[c]);
      out[c] = v;
      big |= static_cast<i64>(v <= -limit) | static_cast<i64>(v >= limit);
    }
    return big;
  }
};
struct FastFloatIn {
  const float* p;
  const double* scale;
  i64 stride;  // of `scale`: 1 per channel, 0 per tensor (spread_scale makes it a per-channel array)
  // `s`: the per-channel input scale (spread_scale)
  i64 load_row(i64 base, i64 n, const double* __restrict s, i64 limit, i64* __restrict out) const {
    const float* __restrict src = p + base;
    const double lim = static_cast<double>(limit);  // a power of two: exact
    i64 big = 0;
    for (i64 c = 0; c < n; ++c) {
      const double v = rint(static_cast<double>(src[c]) / s[c]);  // as RequantFloatIn; NaN fails both tests
      const bool fits = (v > -lim) & (v < lim);
      out[c] = fits ? static_cast<i64>(v) : 0;
      big |= static_cast<i64>(!fits);
    }
    return big;
  }
};

// The input scale as a per-channel array (integer inputs have none).
template <typename T>
const double* spread_scale(const FastIntIn<T>&, i64, std::vector<double>&) {
  return nullptr;
}
const double* spread_scale(const FastFloatIn& f, i64 cols, std::vector<double>& buf) {
  if (f.stride == 1) return f.scale;
  buf.assign(static_cast<size_t>(cols), f.scale[0]);
  return buf.data();
}

// Rows × channels of the last dim; multipliers per channel (stride 1) or per tensor (stride 0). kWide: every
// shift k is in [31, 92] and codes below 2^62 take requant64_wide; else every k is in [1, 62] and codes below
// 2^31 take requant64 (both checked by the caller). Exact in both; blocks with a bigger code are redone exactly.
template <bool kResidual, bool kWide, class FIn, class FIdIn, class In, class IdIn, class Out>
bool requant_fast(FIn fin, FIdIn fid, In in, IdIn id, DyadicArray d, i64 ds, DyadicArray d_id, i64 dis,
                  double out_scale, Out out, const RequantParams& p, int64_t cols) {
  std::atomic<bool> all_ok{true};
  const int64_t rows = p.numel / cols;
  const int64_t grain = std::max<int64_t>(1, kGrain / cols);
  // Per-tensor multipliers and scales are spread over the channels, so every loop reads them with stride 1.
  std::vector<i64> spread[4];
  auto per_channel = [&](const i64* a, i64 stride, std::vector<i64>& buf) {
    if (stride == 1) return a;
    buf.assign(static_cast<size_t>(cols), a[0]);
    return static_cast<const i64*>(buf.data());
  };
  std::vector<double> s_in, s_id;
  const double* s_a = spread_scale(fin, cols, s_in);
  const double* s_b = kResidual ? spread_scale(fid, cols, s_id) : s_a;
  const i64* dm = per_channel(d.m, ds, spread[0]);
  const i64* dk = per_channel(d.k, ds, spread[1]);
  const i64* dim = kResidual ? per_channel(d_id.m, dis, spread[2]) : dm;
  const i64* dik = kResidual ? per_channel(d_id.k, dis, spread[3]) : dk;
  at::parallel_for(0, rows, grain, [&](int64_t r0, int64_t r1) {
    std::vector<i64> qa(static_cast<size_t>(cols)), qb(kResidual ? static_cast<size_t>(cols) : 0);
    // Locals, not the lambda's by-reference captures: the output stores could alias those.
    const Out o = out;
    const i64* __restrict m = dm;
    const i64* __restrict k = dk;
    const i64* __restrict mi = dim;
    const i64* __restrict ki = dik;
    i64* __restrict a = qa.data();
    i64* __restrict b = kResidual ? qb.data() : qa.data();
    const i64 lo = p.lo, hi = p.hi, n = cols;
    const i64 limit = kWide ? kWideCodeLimit : kFastCodeLimit;
    const double so = out_scale;
    i64 big = 0;
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t base = r * n;
      big |= fin.load_row(base, n, s_a, limit, a);
      if (kResidual) big |= fid.load_row(base, n, s_b, limit, b);
      for (int64_t c = 0; c < n; ++c) {
        // Each requant is below 2^62 in magnitude, so the sum cannot overflow. Two one-sided clamps: GCC does
        // not vectorize the nested select of the wide form.
        i64 v = kWide ? requant64_wide(a[c], m[c], k[c]) : requant64(a[c], m[c], k[c]);
        if (kResidual) v += kWide ? requant64_wide(b[c], mi[c], ki[c]) : requant64(b[c], mi[c], ki[c]);
        v = v < lo ? lo : v;
        v = v > hi ? hi : v;
        o.store(base + c, v, so);
      }
    }
    if (big && !requant_range(in, id, d, d_id, out_scale, out, p, r0 * cols, r1 * cols)) all_ok = false;
  });
  return all_ok;
}

template <class In, class IdIn, class Out>
bool exact_parallel(In in, IdIn id, DyadicArray d, DyadicArray d_id, double out_scale, Out out,
                    const RequantParams& p) {
  std::atomic<bool> all_ok{true};
  at::parallel_for(0, p.numel, kGrain, [&](int64_t i0, int64_t i1) {
    if (!requant_range(in, id, d, d_id, out_scale, out, p, i0, i1)) all_ok = false;
  });
  return all_ok;
}

bool shifts_in(const RequantSide& s, int64_t lo, int64_t hi) {
  const int64_t* k = s.k.data_ptr<int64_t>();
  for (int64_t c = 0; c < s.k.numel(); ++c) {
    if (k[c] < lo || k[c] > hi) return false;
  }
  return true;
}

// Which fast path applies: wide (codes < 2^62, every k in [31, 92]: multipliers below 1), narrow (codes < 2^31,
// every k in [1, 62]) or none (exact 128-bit path for every element).
enum class FastPath { kNone, kNarrow, kWide };
FastPath fast_path(const RequantSide& in) {
  if (shifts_in(in, 31, kWideMaxShift)) return FastPath::kWide;
  return shifts_in(in, 1, 62) ? FastPath::kNarrow : FastPath::kNone;
}

template <class F>
auto with_fast_loader(const RequantSide& s, F&& f) {
  if (s.codes.scalar_type() == at::kFloat) {
    return f(FastFloatIn{s.codes.data_ptr<float>(), s.scale.data_ptr<double>(), s.scale.numel() > 1 ? 1 : 0});
  }
  return MNQ_DISPATCH_INT(s.codes.scalar_type(), "requant", [&] { return f(FastIntIn<scalar_t>{s.codes.data_ptr<scalar_t>()}); });
}

// A requant input for the vector paths (requant_simd.h), its per-channel values spread over the cols columns;
// false when they do not apply (codes neither int32 nor float, a shift outside [1, 62], a scale outside the
// certified range).
struct SimdSideBuf {
  std::vector<i64> m, k, hm1;
  std::vector<double> s, r;
  RequantSimdSide side;
};
bool simd_side(const RequantSide& in, int64_t cols, SimdSideBuf& b) {
  const bool is_float = in.codes.scalar_type() == at::kFloat;
  if ((!is_float && in.codes.scalar_type() != at::kInt) || !shifts_in(in, 1, 62)) return false;
  const int64_t n = in.m.numel();
  const int64_t* m = in.m.data_ptr<int64_t>();
  const int64_t* k = in.k.data_ptr<int64_t>();
  b.m.resize(cols);
  b.k.resize(cols);
  b.hm1.resize(cols);
  for (int64_t c = 0; c < cols; ++c) {
    b.m[c] = m[n == 1 ? 0 : c];
    b.k[c] = k[n == 1 ? 0 : c];
    b.hm1[c] = (i64(1) << (b.k[c] - 1)) - 1;
  }
  b.side.m = b.m.data();
  b.side.k = b.k.data();
  b.side.hm1 = b.hm1.data();
  if (!is_float) {
    b.side.q = in.codes.data_ptr<int32_t>();
    return true;
  }
  const double* s = in.scale.data_ptr<double>();
  if (!requant_simd_scales_ok(s, in.scale.numel())) return false;
  b.s.resize(cols);
  b.r.resize(cols);
  for (int64_t c = 0; c < cols; ++c) {
    b.s[c] = s[in.scale.numel() == 1 ? 0 : c];
    b.r[c] = 1.0 / b.s[c];
  }
  b.side.x = in.codes.data_ptr<float>();
  b.side.s = b.s.data();
  b.side.r = b.r.data();
  return true;
}

template <class Out>
bool requant_simd(Isa path, const SimdSideBuf& in, const SimdSideBuf* id, Out out, double out_scale,
                  const RequantParams& p, int64_t cols) {
  std::atomic<bool> all_ok{true};
  at::parallel_for(0, p.numel / cols, std::max<int64_t>(1, kGrain / cols), [&](int64_t r0, int64_t r1) {
    if (!requant_rows(path, in.side, id != nullptr ? &id->side : nullptr, cols, r0, r1, p.lo, p.hi, out_scale, out)) {
      all_ok = false;
    }
  });
  return all_ok;
}

template <class Out>
bool requant_out(const RequantSide& in, const RequantSide* id, Out out, double out_scale, const RequantParams& p) {
  const int64_t cols = in.codes.dim() == 0 ? 1 : in.codes.size(-1);  // channels of the last dim (numel > 0)
  const Isa vec = isa();
  if (vec != Isa::kScalar) {
    SimdSideBuf a, b;
    if (simd_side(in, cols, a) && (id == nullptr || simd_side(*id, cols, b))) {
      return requant_simd(vec, a, id != nullptr ? &b : nullptr, out, out_scale, p, cols);
    }
  }
  return with_requant_loader(in, [&](auto in_loader) {
    if (id == nullptr) {
      const FastPath path = fast_path(in);
      if (path == FastPath::kNone) {
        return exact_parallel(in_loader, in_loader, dyadics(in), dyadics(in), out_scale, out, p);
      }
      return with_fast_loader(in, [&](auto fin) {
        const bool per_channel = in.m.numel() > 1;
        if (path == FastPath::kWide) {
          return requant_fast<false, true>(fin, fin, in_loader, in_loader, dyadics(in), per_channel, dyadics(in), 0,
                                           out_scale, out, p, cols);
        }
        return requant_fast<false, false>(fin, fin, in_loader, in_loader, dyadics(in), per_channel, dyadics(in), 0,
                                          out_scale, out, p, cols);
      });
    }
    // Residual adds take the narrow path only (their codes are 16- or 22-bit; one variant keeps the number of
    // instantiations over the input × identity code types down).
    const bool narrow = shifts_in(in, 1, 62) && shifts_in(*id, 1, 62);
    return with_requant_loader(*id, [&](auto id_loader) {
      if (narrow) {
        return with_fast_loader(in, [&](auto fin) {
          return with_fast_loader(*id, [&](auto fid) {
            return requant_fast<true, false>(fin, fid, in_loader, id_loader, dyadics(in), in.m.numel() > 1,
                                             dyadics(*id), id->m.numel() > 1, out_scale, out, p, cols);
          });
        });
      }
      return exact_parallel(in_loader, id_loader, dyadics(in), dyadics(*id), out_scale, out, p);
    });
  });
}

}  // namespace

bool quantize(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& out, const QuantizeParams& p) {
  const float* xp = x.data_ptr<float>();
  const double* sp = scale.data_ptr<double>();
  if (out.scalar_type() == at::kFloat) return quantize_loop(xp, sp, FakeOut{out.data_ptr<float>()}, p);
  return quantize_loop(xp, sp, CodeOut{out.data_ptr<int32_t>()}, p);
}

bool requant(const RequantSide& in, const RequantSide* id, const at::Tensor& out, double out_scale,
             const RequantParams& p) {
  if (out.scalar_type() == at::kFloat) return requant_out(in, id, FakeOut{out.data_ptr<float>()}, out_scale, p);
  return requant_out(in, id, CodeOut{out.data_ptr<int32_t>()}, out_scale, p);
}

void ptf_alpha_error(const at::Tensor& x, double s_base, int64_t lo, int64_t hi, const at::Tensor& err) {
  const int64_t C = x.size(-1);
  const int64_t rows = C == 0 ? 0 : x.numel() / C;
  const float* xp = x.data_ptr<float>();
  double* ep = err.data_ptr<double>();
  // Channels in parallel; rows in order within each channel (row-major sweep over a block of channels, so the
  // reads stay contiguous while every channel's sum keeps the CUDA kernel's order).
  at::parallel_for(0, C, 64, [&](int64_t c0, int64_t c1) {
    std::vector<double> acc(static_cast<size_t>(c1 - c0) * 4, 0.0);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = c0; c < c1; ++c) {
        const float v = xp[r * C + c];
        for (int a = 0; a < 4; ++a) {
          acc[(c - c0) * 4 + a] += quant_sq_error(v, s_base * static_cast<double>(1 << a), lo, hi);
        }
      }
    }
    for (int64_t j = 0; j < (c1 - c0) * 4; ++j) ep[c0 * 4 + j] = acc[j];
  });
}

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
