// CPU requantization with the fused residual add (kernels/quant.h requant_code), in three tiers, each equal to the
// definition element for element:
//   vector  int32 or float codes, shifts in [1, 62]: the AVX-512/AVX2 paths of requant_simd.h;
//   fast    rows × channels of the last dim when every shift allows requant64 (codes < 2^31) or requant64_wide
//           (codes < 2^62); a block with a bigger code (or NaN) is redone by the exact loop;
//   exact   requant_code per element (128-bit sum), any codes and multipliers.
//
// Compile time: the code dtype (6 of them: 5 integer types and float, for the input and, with a residual, the
// identity) enters only the small per-row copy into an int64 buffer and the exact loop. The vectorized fast loop
// works on those buffers, so it is compiled once per output (codes or fake quant) and variant, and calls the row
// copies through c10::function_ref (one indirect call per row). Templating it on the dtypes instead made
// 6 × 6 residual variants of it per output, each vectorized for the build machine, and quant.cpp took 10–40 min.
#include <ATen/Parallel.h>
#include <c10/util/FunctionRef.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <bit>
#include <memory>
#include <type_traits>
#include <vector>

#include "csrc/cpu/isa.h"
#include "csrc/cpu/requant_simd.h"
#include "csrc/cpu/row_buffer.h"
#include "csrc/ops/quant.h"

namespace mnq {
namespace ops {
namespace cpu {
namespace {

using namespace mnq::kernels;
constexpr int64_t kGrain = 32768;

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

// Elements [i0, i1) by the exact loop; false when an input had no code.
using ExactRange = c10::function_ref<bool(int64_t i0, int64_t i1)>;

bool exact_parallel(ExactRange exact, int64_t numel) {
  std::atomic<bool> all_ok{true};
  at::parallel_for(0, numel, kGrain, [&](int64_t i0, int64_t i1) {
    if (!exact(i0, i1)) all_ok = false;
  });
  return all_ok;
}

// Fast-path row copies: one row's codes into an int64 buffer, returning nonzero when one of them is outside
// |q| < limit (or NaN), where the fast requant (requant64: 2^31, requant64_wide: 2^62) is not valid. Plain loops
// over contiguous arrays with an integer OR-reduction: they vectorize.
template <typename T>
i64 load_row(const RequantIntIn<T>& in, i64 base, i64 n, const double* /*scale*/, i64 limit, i64* __restrict out) {
  const T* __restrict src = in.p + base;
  i64 big = 0;
  for (i64 c = 0; c < n; ++c) {
    const i64 v = static_cast<i64>(src[c]);
    out[c] = v;
    big |= static_cast<i64>(v <= -limit) | static_cast<i64>(v >= limit);
  }
  return big;
}
// `s`: the per-channel input scale spread over the row (RowLoader)
i64 load_row(const RequantFloatIn& in, i64 base, i64 n, const double* __restrict s, i64 limit, i64* __restrict out) {
  const float* __restrict src = in.p + base;
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

// The row copy of one input, bound to the row length, the code limit of the path and (float codes) the input scale
// spread over the columns, so the row loop reads it with stride 1.
using RowLoad = c10::function_ref<i64(i64 base, i64* out)>;
template <class In>
class RowLoader {
 public:
  RowLoader(const In& in, const RequantSide& side, i64 cols, i64 limit) : in_(in), n_(cols), limit_(limit) {
    if constexpr (std::is_same_v<In, RequantFloatIn>) {
      const double* s = side.scale.data_ptr<double>();
      scale_.assign(static_cast<size_t>(cols), s[0]);
      if (side.scale.numel() > 1) std::copy(s, s + cols, scale_.begin());
    }
  }
  RowLoader(const RowLoader&) = delete;
  i64 operator()(i64 base, i64* out) const { return load_row(in_, base, n_, scale_.data(), limit_, out); }

 private:
  In in_;
  i64 n_, limit_;
  std::vector<double> scale_;
};

// Rows × channels of the last dim; multipliers per channel (stride 1) or per tensor (stride 0). kWide: every
// shift k is in [31, 92] and codes below 2^62 take requant64_wide; else every k is in [1, 62] and codes below
// 2^31 take requant64 (both checked by the caller). Exact in both; blocks with a bigger code are redone exactly.
template <bool kResidual, bool kWide, class Out>
bool requant_fast(RowLoad load_a, RowLoad load_b, ExactRange exact, DyadicArray d, i64 ds, DyadicArray d_id,
                  i64 dis, double out_scale, Out out, const RequantParams& p, int64_t cols) {
  std::atomic<bool> all_ok{true};
  const int64_t rows = p.numel / cols;
  const int64_t grain = std::max<int64_t>(1, kGrain / cols);
  // Per-tensor multipliers are spread over the channels, so every loop reads them with stride 1.
  std::vector<i64> spread[4];
  auto per_channel = [&](const i64* a, i64 stride, std::vector<i64>& buf) {
    if (stride == 1) return a;
    buf.assign(static_cast<size_t>(cols), a[0]);
    return static_cast<const i64*>(buf.data());
  };
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
    const double so = out_scale;
    i64 big = 0;
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t base = r * n;
      big |= load_a(base, a);
      if (kResidual) big |= load_b(base, b);
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
    if (big && !exact(r0 * cols, r1 * cols)) all_ok = false;
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

// A requant input for the vector paths (requant_simd.h), its per-channel values spread over the cols columns.
// On the stack for up to 1024 columns (every ViT width): no heap allocation per call.
struct SimdSideBuf {
  explicit SimdSideBuf(int64_t cols) : ints(3 * cols), reals(3 * cols) {}
  RowBuffer<i64, 3072> ints;      // m, k, 2^(k−1) − 1: cols each
  RowBuffer<double, 3072> reals;  // md; for float input also s, 1/s: cols each
  RequantSimdSide side;
};
// 2^e for an integer e in [−1022, 1023], exactly (ldexp's value, without its per-call cost on every column).
double pow2(int e) {
  return std::bit_cast<double>(static_cast<uint64_t>(1023 + e) << 52);
}
// Fills `b` from an input with int32 or float codes and every shift in [1, 62]; false when the vector paths do not
// apply (|m| = 2^31, beyond the 32-bit multiply's range; a scale outside the certified range).
bool fill_simd_side(const RequantSide& in, int64_t cols, SimdSideBuf& b) {
  const bool is_float = in.codes.scalar_type() == at::kFloat;
  b.side = RequantSimdSide{};  // a cached buffer (simd_side) may hold another input's pointers
  const int64_t n = in.m.numel();  // 1 (per tensor, spread over the columns) or cols
  const int64_t* m = in.m.data_ptr<int64_t>();
  const int64_t* k = in.k.data_ptr<int64_t>();
  for (int64_t c = 0; c < n; ++c) {
    if (m[c] <= -(i64(1) << 31) || m[c] >= (i64(1) << 31)) return false;  // requant_dyadic allows |m| = 2^31
  }
  if (is_float && !requant_simd_scales_ok(in.scale.data_ptr<double>(), in.scale.numel())) return false;
  i64* bm = b.ints.data();
  i64* bk = bm + cols;
  i64* bh = bk + cols;
  double* md = b.reals.data();
  // The per-channel values at [0, n), then (per tensor) the first copied over the row.
  auto spread = [&](auto* v) { std::fill(v + 1, v + cols, v[0]); };
  for (int64_t c = 0; c < n; ++c) {
    bm[c] = m[c];
    bk[c] = k[c];
    bh[c] = (i64(1) << (k[c] - 1)) - 1;
    md[c] = static_cast<double>(m[c]) * pow2(static_cast<int>(-k[c]));  // |m| < 2^31, 1 ≤ k ≤ 62: exact
  }
  if (n == 1) {
    spread(bm);
    spread(bk);
    spread(bh);
    spread(md);
  }
  b.side.m = bm;
  b.side.k = bk;
  b.side.hm1 = bh;
  b.side.md = md;
  b.side.uniform = n == 1 && (!is_float || in.scale.numel() == 1);
  if (!is_float) {
    b.side.q = in.codes.data_ptr<int32_t>();
    return true;
  }
  const double* s = in.scale.data_ptr<double>();
  double* bs = md + cols;
  double* br = bs + cols;
  const int64_t ns = in.scale.numel();  // 1 or cols, as n
  for (int64_t c = 0; c < ns; ++c) {
    bs[c] = s[c];
    br[c] = 1.0 / s[c];
  }
  if (ns == 1) {
    spread(bs);
    spread(br);
  }
  b.side.x = in.codes.data_ptr<float>();
  b.side.s = bs;
  b.side.r = br;
  return true;
}

// Per thread, the vector side of the last uniform (per-tensor) input in each slot (0: the input, 1: the identity)
// and the values it was spread from. A call with the same multiplier and scale (every call of a layer; the
// analyzer's passes) reuses its columns: spreading them (m, k, 2^(k−1) − 1, md, S, 1/S over the row) was ~0.5 µs of a
// small call with the residual at 384 columns. Only the code pointer changes; the parallel tasks of a call read the
// entry of the thread that launched them, which does not change it before they end.
struct UniformSideKey {
  bool is_float = false;
  int64_t cols = 0, m = 0, k = 0;
  uint64_t s_bits = 0;  // the scale's bits (float input only)
  bool operator==(const UniformSideKey&) const = default;
};
struct UniformSideCache {
  bool filled = false, ok = false;
  UniformSideKey key;
  std::unique_ptr<SimdSideBuf> buf;
};
thread_local UniformSideCache side_cache[2];

// The vector side of an input (in `local`, or the thread's cache for a uniform one), null where the vector paths do
// not apply (codes neither int32 nor float, a shift outside [1, 62], |m| = 2^31, a scale outside the certified
// range).
const RequantSimdSide* simd_side(const RequantSide& in, int64_t cols, SimdSideBuf& local, int slot) {
  const bool is_float = in.codes.scalar_type() == at::kFloat;
  if ((!is_float && in.codes.scalar_type() != at::kInt) || !shifts_in(in, 1, 62)) return nullptr;
  const bool uniform = in.m.numel() == 1 && (!is_float || in.scale.numel() == 1);
  if (!uniform || cols > 1024) return fill_simd_side(in, cols, local) ? &local.side : nullptr;
  UniformSideCache& e = side_cache[slot];
  const UniformSideKey key{is_float, cols, in.m.data_ptr<int64_t>()[0], in.k.data_ptr<int64_t>()[0],
                           is_float ? std::bit_cast<uint64_t>(in.scale.data_ptr<double>()[0]) : 0};
  if (!e.filled || !(e.key == key)) {
    if (!e.buf) e.buf = std::make_unique<SimdSideBuf>(1024);
    e.filled = false;  // stays so if the fill throws
    e.ok = fill_simd_side(in, cols, *e.buf);
    e.filled = true;
    e.key = key;
  }
  if (!e.ok) return nullptr;
  RequantSimdSide& side = e.buf->side;
  if (is_float) {
    side.x = in.codes.data_ptr<float>();
  } else {
    side.q = in.codes.data_ptr<int32_t>();
  }
  return &side;
}

void offset_codes(RequantSimdSide& s, int64_t n) {
  if (s.q != nullptr) s.q += n;
  if (s.x != nullptr) s.x += n;
}

// Rows of `cols` elements and, when p.numel is not a multiple of cols (a flat view of uniform sides only), one
// shorter last row: the sides' code pointers and the output moved past the full rows (their per-column values are
// uniform, so the first columns serve).
template <class Out>
bool requant_simd(Isa path, const RequantSimdSide& in, const RequantSimdSide* id, Out out, double out_scale,
                  const RequantParams& p, int64_t cols) {
  std::atomic<bool> all_ok{true};
  const int64_t rows = p.numel / cols, rest = p.numel - rows * cols;
  at::parallel_for(0, rows, std::max<int64_t>(1, kGrain / cols), [&](int64_t r0, int64_t r1) {
    if (!requant_rows(path, in, id, cols, r0, r1, p.lo, p.hi, out_scale, out)) {
      all_ok = false;
    }
  });
  if (rest > 0) {
    RequantSimdSide ra = in, rb = id != nullptr ? *id : RequantSimdSide{};
    offset_codes(ra, rows * cols);
    offset_codes(rb, rows * cols);
    Out ro = out;
    ro.p += rows * cols;
    if (!requant_rows(path, ra, id != nullptr ? &rb : nullptr, rest, 0, 1, p.lo, p.hi, out_scale, ro)) {
      all_ok = false;
    }
  }
  return all_ok;
}

// Row length of the flat view of per-tensor requants (a multiple of 16 within the side buffers' 1024 columns).
constexpr int64_t kFlatCols = 1024;
// Whether a side's multiplier and scale are one value for the whole tensor.
bool uniform(const RequantSide& s) {
  return s.m.numel() == 1 && (s.codes.scalar_type() != at::kFloat || s.scale.numel() == 1);
}

template <class Out>
bool requant_out(const RequantSide& in, const RequantSide* id, Out out, double out_scale, const RequantParams& p) {
  const int64_t cols = in.codes.dim() == 0 ? 1 : in.codes.size(-1);  // channels of the last dim (numel > 0)
  const Isa vec = isa();
  if (vec != Isa::kScalar) {
    // Per-tensor sides: every element's value is the same function of its codes wherever it sits, so a last dim
    // that is not a multiple of 16 is replaced by rows of kFlatCols values and one shorter row. With the last
    // dim's rows (attention scores: 50 or 197 columns, 49 in a Swin window) every row ended in a masked int64
    // tail: 4x the time of full blocks.
    const bool flat = cols % 16 != 0 && p.numel >= kFlatCols && uniform(in) && (id == nullptr || uniform(*id));
    const int64_t row = flat ? kFlatCols : cols;
    SimdSideBuf a(row), b(id != nullptr ? row : 0);
    const RequantSimdSide* sa = simd_side(in, row, a, 0);
    const RequantSimdSide* sb = sa != nullptr && id != nullptr ? simd_side(*id, row, b, 1) : nullptr;
    if (sa != nullptr && (id == nullptr || sb != nullptr)) return requant_simd(vec, *sa, sb, out, out_scale, p, row);
  }
  const DyadicArray d = dyadics(in);
  const bool per_channel = in.m.numel() > 1;
  return with_requant_loader(in, [&](auto in_loader) {
    if (id == nullptr) {
      auto exact = [&](int64_t i0, int64_t i1) {
        return requant_range(in_loader, in_loader, d, d, out_scale, out, p, i0, i1);
      };
      const FastPath path = fast_path(in);
      if (path == FastPath::kNone) return exact_parallel(exact, p.numel);
      const bool wide = path == FastPath::kWide;
      const RowLoader load(in_loader, in, cols, wide ? kWideCodeLimit : kFastCodeLimit);
      return wide ? requant_fast<false, true>(load, load, exact, d, per_channel, d, 0, out_scale, out, p, cols)
                  : requant_fast<false, false>(load, load, exact, d, per_channel, d, 0, out_scale, out, p, cols);
    }
    // Residual adds take the narrow path only (their codes are 16- or 22-bit).
    const DyadicArray d_id = dyadics(*id);
    const bool narrow = shifts_in(in, 1, 62) && shifts_in(*id, 1, 62);
    return with_requant_loader(*id, [&](auto id_loader) {
      auto exact = [&](int64_t i0, int64_t i1) {
        return requant_range(in_loader, id_loader, d, d_id, out_scale, out, p, i0, i1);
      };
      if (!narrow) return exact_parallel(exact, p.numel);
      const RowLoader load_a(in_loader, in, cols, kFastCodeLimit);
      const RowLoader load_b(id_loader, *id, cols, kFastCodeLimit);
      return requant_fast<true, false>(load_a, load_b, exact, d, per_channel, d_id, id->m.numel() > 1, out_scale,
                                       out, p, cols);
    });
  });
}

}  // namespace

bool requant(const RequantSide& in, const RequantSide* id, const at::Tensor& out, double out_scale,
             const RequantParams& p) {
  if (out.scalar_type() == at::kFloat) return requant_out(in, id, FakeOut{out.data_ptr<float>()}, out_scale, p);
  return requant_out(in, id, CodeOut{out.data_ptr<int32_t>()}, out_scale, p);
}

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
