// Requantization's vector paths (requant_simd.h): AVX-512 (8 int64 lanes) and AVX2 (4 lanes), intrinsics in
// functions compiled for their instruction set only; isa.h picks one at run time. Uncertified lanes and tails go
// through requant_one, the scalar definition (the loaders of kernels/quant.h and requant_code).
//
// The AVX-512 path reads float input in float32 first, 16 lanes at once, with quant_simd.h's certification
// (|p| < 2^19, fl32(1/S) normal: rint(fl32(x·fl32(1/S))) = rint(fl64(x / S)) when p is farther than its margin from
// every half-integer), and takes the float64 form of requant_simd.h for a vector it cannot certify whole. When every
// shift is at least 11 (requant_f64_simd.h md_fits), int32 codes are requantized in float64 by one FMA per lane, all
// of them, and float input in blocks of 16 columns whose codes float32 certifies; the other blocks, and every block
// of a side with a smaller shift, in int64; lanes the int64 form's loads could not certify are redone exactly in
// vector form (Avx512::redo8). Fake-quant output of float input with small multipliers tries the one-rounding
// float32 form first (requant_fused_simd.h), a block it cannot certify the two-rounding one (requant_f32_simd.h);
// with an output range fake_store32 cannot certify (16-bit codes), the float32 form with per-lane certified stores
// (requant_wide32_simd.h), a block it cannot certify the float64 one. On AVX2 the same one-rounding form 8 lanes at a
// time (requant_fused_avx2.h) where it applies, else the wide-range float32 form (requant_wide32_avx2.h), their
// uncertified blocks in the int64 form.
#include "csrc/cpu/requant_simd.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "csrc/cpu/requant_f32_simd.h"
#include "csrc/cpu/requant_f64_avx2.h"
#include "csrc/cpu/requant_f64_simd.h"
#include "csrc/cpu/requant_fused_avx2.h"
#include "csrc/cpu/requant_fused_simd.h"
#include "csrc/cpu/requant_wide32_avx2.h"
#include "csrc/cpu/requant_wide32_simd.h"
#include "csrc/cpu/row_buffer.h"
#include "csrc/cpu/simd.h"

namespace mnq {
namespace ops {
namespace cpu {
namespace {

using kernels::CodeOut;
using kernels::Dyadic;
using kernels::FakeOut;
using kernels::i64;

// The code of element i (column c) of one side, as the exact path loads it; false without a code.
bool load_one(const RequantSimdSide& s, int64_t i, int64_t c, i64& q) {
  if (s.q != nullptr) return kernels::RequantIntIn<int32_t>{s.q}.load(i, c, q);
  return kernels::RequantFloatIn{s.x, s.s}.load(i, c, q);
}

// The scalar definition for element i of column c (csrc/cpu/requant.cpp requant_range, one element).
template <class Out>
bool requant_one(const RequantSimdSide& in, const RequantSimdSide* id, int64_t i, int64_t c, i64 lo, i64 hi,
                 double out_scale, const Out& out) {
  i64 q = 0, qid = 0;
  if (!load_one(in, i, c, q) || (id != nullptr && !load_one(*id, i, c, qid))) return kernels::no_code(out, i);
  const Dyadic d{in.m[c], static_cast<int>(in.k[c])};
  const i64 v = id != nullptr ? kernels::requant_code(q, d, qid, Dyadic{id->m[c], static_cast<int>(id->k[c])}, lo, hi)
                              : kernels::requant_code(q, d, lo, hi);
  out.store(i, v, out_scale);
  return true;
}

template <class Out>
bool scalar_cols(const RequantSimdSide& in, const RequantSimdSide* id, int64_t base, int64_t c0, int64_t c1, i64 lo,
                 i64 hi, double out_scale, const Out& out) {
  bool ok = true;
  for (int64_t c = c0; c < c1; ++c) ok = requant_one(in, id, base + c, c, lo, hi, out_scale, out) && ok;
  return ok;
}

template <class Out>
bool redo_lanes(const RequantSimdSide& in, const RequantSimdSide* id, int64_t base, int64_t c, unsigned lanes, i64 lo,
                i64 hi, double out_scale, const Out& out) {
  bool ok = true;
  while (lanes != 0) {
    const int l = __builtin_ctz(lanes);
    lanes &= lanes - 1;
    ok = requant_one(in, id, base + c + l, c + l, lo, hi, out_scale, out) && ok;
  }
  return ok;
}

// fl32(1/S) per column of a float input when every 1/|S| is in [2^−100, 2^100] (a normal float32, the range of
// quant_simd.h's certification); else null (int input, or a scale outside: the float64 loader only).
const float* float_recip(const RequantSimdSide& s, int64_t cols, RowBuffer<float, 1024>& buf) {
  if (s.q != nullptr) return nullptr;
  const int64_t n = s.distinct(cols);
  for (int64_t c = 0; c < n; ++c) {
    const double a = std::fabs(s.r[c]);
    if (!(a >= 0x1p-100 && a <= 0x1p100)) return nullptr;
    buf.data()[c] = static_cast<float>(s.r[c]);
  }
  if (n < cols) std::fill(buf.data() + n, buf.data() + cols, buf.data()[0]);
  return buf.data();
}

// fl32(md) per column (requant_f32_simd.h: md_fits holds, so each is 0 or a normal float32).
const float* float_md(const RequantSimdSide& s, int64_t cols, RowBuffer<float, 1024>& buf) {
  const int64_t n = s.distinct(cols);
  for (int64_t c = 0; c < n; ++c) buf.data()[c] = static_cast<float>(s.md[c]);
  if (n < cols) std::fill(buf.data() + n, buf.data() + cols, buf.data()[0]);
  return buf.data();
}

#if defined(MNQ_HAVE_X86_SIMD)
// ---- AVX-512: 8 lanes of int64 ----
struct Avx512 {
  // The codes of columns [c, c + 8) of one side and the mask of lanes whose code is certified (float input). Only
  // the lanes of `lanes` are read (the row's tail; the others load 0, a certified code).
  MNQ_TARGET_AVX512 static __m512i load(const RequantSimdSide& s, int64_t i, int64_t c, __mmask8& ok,
                                        __mmask8 lanes = 0xff) {
    if (s.q != nullptr) return _mm512_cvtepi32_epi64(_mm256_maskz_loadu_epi32(lanes, s.q + i));
    const __m512d abs_mask = _mm512_castsi512_pd(_mm512_set1_epi64(0x7fffffffffffffffLL));
    const __m512d p =
        _mm512_mul_pd(_mm512_cvtps_pd(_mm256_maskz_loadu_ps(lanes, s.x + i)), _mm512_maskz_loadu_pd(lanes, s.r + c));
    const __m512d rp = _mm512_roundscale_pd(p, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512d ap = _mm512_and_pd(p, abs_mask);
    const __m512d h = _mm512_sub_pd(_mm512_set1_pd(0.5), _mm512_and_pd(_mm512_sub_pd(p, rp), abs_mask));
    const __m512d t = _mm512_add_pd(_mm512_mul_pd(ap, _mm512_set1_pd(0x1p-50)), _mm512_set1_pd(0x1p-100));
    ok &= _mm512_cmp_pd_mask(h, t, _CMP_GE_OQ) & _mm512_cmp_pd_mask(ap, _mm512_set1_pd(2147483647.0), _CMP_LT_OQ);
    return _mm512_cvtpd_epi64(rp);
  }
  // The codes of columns [c, c + 16) as two 8-lane halves. A float input first tries float32, p = x·fl32(1/S),
  // 16 lanes at once: when the certification (requant_f64_simd.h float32_codes) passes every lane (|p| < 2^19,
  // farther than its margin from a half-integer, so rint(p) = rint(fl64(x / S))), rint(p) are the codes; else each
  // half takes load().
  MNQ_TARGET_AVX512 static void load16(const RequantSimdSide& s, const float* rf, int64_t i, int64_t c, __m512i& q0,
                                       __m512i& q1, __mmask8& ok0, __mmask8& ok1) {
    if (s.q != nullptr) {
      const __m512i v = _mm512_loadu_si512(s.q + i);
      q0 = _mm512_cvtepi32_epi64(_mm512_castsi512_si256(v));
      q1 = _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(v, 1));
      return;
    }
    __m512 rp;
    if (rf != nullptr && RequantF64Avx512::float32_codes(s.x + i, rf + c, rp)) {
      const __m512i v = _mm512_cvtps_epi32(rp);
      q0 = _mm512_cvtepi32_epi64(_mm512_castsi512_si256(v));
      q1 = _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(v, 1));
      return;
    }
    q0 = load(s, i, c, ok0);
    q1 = load(s, i + 8, c + 8, ok1);
  }
  // round-half-even(q·m / 2^k) for the columns' (m, k, 2^(k−1) − 1).
  MNQ_TARGET_AVX512 static __m512i requant(__m512i q, const RequantSimdSide& s, int64_t c, __mmask8 lanes = 0xff) {
    const __m512i k = _mm512_maskz_loadu_epi64(lanes, s.k + c);
    const __m512i p = _mm512_mul_epi32(q, _mm512_maskz_loadu_epi64(lanes, s.m + c));
    const __m512i odd = _mm512_and_si512(_mm512_srav_epi64(p, k), _mm512_set1_epi64(1));
    return _mm512_srav_epi64(_mm512_add_epi64(_mm512_add_epi64(p, _mm512_maskz_loadu_epi64(lanes, s.hm1 + c)), odd),
                             k);
  }
  // The exact redo of the lanes `lanes` of columns [c, c + 8) that the certified loads left out (float codes at or
  // above 2^31 − 1 in magnitude, near-ties of x / S, NaN): their codes as the loader computes them, rint(x / S) by
  // vdivpd and vroundpd (the same IEEE operations), then requant with int64 vector arithmetic:
  //   −2^31 ≤ q < 2^31: requant() above (any k in [1, 62]);
  //   k ≥ 31 and |q| < 2^62: requant64_wide (kernels/quant.h; its bounds |m| ≤ 2^31, 31 ≤ k ≤ 92 hold), whose two
  //     products are signed 32×32-bit ones: q & (2^31 − 1) is in [0, 2^31), q >> 31 in [−2^31, 2^31), |m| < 2^31.
  // Each requant is then below 2^62 in magnitude, so the residual sum and the clamp are exact in int64. Returns the
  // lanes it could not do (NaN, |q| ≥ 2^62, k < 31 with q outside int32), left to requant_one.
  MNQ_TARGET_AVX512 static __m512i exact_codes(const RequantSimdSide& s, int64_t i, int64_t c, __mmask8 lanes,
                                               __mmask8& ok) {
    if (s.q != nullptr) return _mm512_cvtepi32_epi64(_mm256_maskz_loadu_epi32(lanes, s.q + i));
    const __m512d x = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(lanes, s.x + i));
    const __m512d v = _mm512_roundscale_pd(_mm512_div_pd(x, _mm512_mask_loadu_pd(_mm512_set1_pd(1.0), lanes, s.s + c)),
                                           _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512d av = _mm512_and_pd(v, _mm512_castsi512_pd(_mm512_set1_epi64(0x7fffffffffffffffLL)));
    const __mmask8 fits = _mm512_cmp_pd_mask(av, _mm512_set1_pd(0x1p62), _CMP_LT_OQ);  // NaN fails
    ok &= fits;
    return _mm512_maskz_cvtpd_epi64(fits, v);
  }
  MNQ_TARGET_AVX512 static __m512i requant_any(__m512i q, const RequantSimdSide& s, int64_t c, __mmask8 lanes,
                                               __mmask8& ok) {
    const __m512i k = _mm512_maskz_loadu_epi64(lanes, s.k + c);
    const __m512i m = _mm512_maskz_loadu_epi64(lanes, s.m + c);
    const __mmask8 wide = _mm512_cmpge_epi64_mask(k, _mm512_set1_epi64(31));
    // q in [−2^31, 2^31): a signed 32-bit value, the operand requant()'s 32×32-bit multiply takes (|q·m| < 2^62)
    const __mmask8 small = _mm512_cmplt_epu64_mask(_mm512_add_epi64(q, _mm512_set1_epi64(0x80000000LL)),
                                                   _mm512_set1_epi64(0x100000000LL));
    ok &= wide | small;
    const __m512i narrow = requant(q, s, c, lanes);
    const __m512i low = _mm512_set1_epi64(0x7fffffff), one = _mm512_set1_epi64(1);
    const __m512i b = _mm512_mul_epi32(_mm512_and_si512(q, low), m);
    const __m512i t = _mm512_add_epi64(_mm512_mul_epi32(_mm512_srai_epi64(q, 31), m), _mm512_srai_epi64(b, 31));
    const __m512i j = _mm512_sub_epi64(k, _mm512_set1_epi64(31));
    const __m512i fl = _mm512_srav_epi64(t, j);
    const __m512i z = _mm512_add_epi64(
        _mm512_slli_epi64(_mm512_sub_epi64(t, _mm512_sllv_epi64(fl, j)), 1),
        _mm512_srai_epi64(_mm512_sub_epi64(_mm512_add_epi64(_mm512_and_si512(b, low), _mm512_and_si512(fl, one)), one),
                          30));
    const __m512i w = _mm512_add_epi64(fl, _mm512_srai_epi64(_mm512_add_epi64(_mm512_srav_epi64(z, j), one), 1));
    return _mm512_mask_blend_epi64(wide, narrow, w);
  }
  template <class Out>
  MNQ_TARGET_AVX512 static bool redo8(const RequantSimdSide& in, const RequantSimdSide* id, int64_t base, int64_t c,
                                      __mmask8 lanes, __m512i vlo, __m512i vhi, i64 lo, i64 hi, __m512d so,
                                      double out_scale, const Out& out) {
    __mmask8 ok = lanes;
    __m512i v = requant_any(exact_codes(in, base + c, c, lanes, ok), in, c, lanes, ok);
    if (id != nullptr) {
      v = _mm512_add_epi64(v, requant_any(exact_codes(*id, base + c, c, lanes, ok), *id, c, lanes, ok));
    }
    v = _mm512_min_epi64(_mm512_max_epi64(v, vlo), vhi);
    if constexpr (Out::kPropagatesNaN) {
      _mm256_mask_storeu_ps(out.p + base + c, ok, _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_cvtepi64_pd(v), so)));
    } else {
      _mm256_mask_storeu_epi32(out.p + base + c, ok, _mm512_cvtepi64_epi32(v));
    }
    const unsigned rest = static_cast<unsigned>(lanes & ~ok) & 0xffu;
    return rest == 0 || redo_lanes(in, id, base, c, rest, lo, hi, out_scale, out);
  }
  // The int64 form of columns [c, c + 16) of the row at `base` (out of line: the float64 form's loop keeps its
  // constants in registers).
  template <class Out>
  MNQ_TARGET_AVX512 __attribute__((noinline)) static bool int64_block16(const RequantSimdSide& in, const float* rin,
                                                                        const RequantSimdSide* id, const float* rid,
                                                                        int64_t base, int64_t c, i64 lo, i64 hi,
                                                                        double out_scale, const Out& out) {
    const __m512i vlo = _mm512_set1_epi64(lo), vhi = _mm512_set1_epi64(hi);
    const __m512d so = _mm512_set1_pd(out_scale);
    __mmask8 g0 = 0xff, g1 = 0xff;
    __m512i a0, a1, b0, b1;
    load16(in, rin, base + c, c, a0, a1, g0, g1);
    __m512i v0 = requant(a0, in, c), v1 = requant(a1, in, c + 8);
    if (id != nullptr) {
      load16(*id, rid, base + c, c, b0, b1, g0, g1);
      v0 = _mm512_add_epi64(v0, requant(b0, *id, c));
      v1 = _mm512_add_epi64(v1, requant(b1, *id, c + 8));
    }
    v0 = _mm512_min_epi64(_mm512_max_epi64(v0, vlo), vhi);
    v1 = _mm512_min_epi64(_mm512_max_epi64(v1, vlo), vhi);
    if constexpr (Out::kPropagatesNaN) {
      const __m256 f0 = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_cvtepi64_pd(v0), so));
      const __m256 f1 = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_cvtepi64_pd(v1), so));
      _mm512_storeu_ps(out.p + base + c, _mm512_insertf32x8(_mm512_castps256_ps512(f0), f1, 1));
    } else {
      _mm512_storeu_si512(out.p + base + c, _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(v0)),
                                                               _mm512_cvtepi64_epi32(v1), 1));
    }
    bool ok = true;
    if (g0 != 0xff) ok = redo8(in, id, base, c, ~g0, vlo, vhi, lo, hi, so, out_scale, out) && ok;
    if (g1 != 0xff) ok = redo8(in, id, base, c + 8, ~g1, vlo, vhi, lo, hi, so, out_scale, out) && ok;
    return ok;
  }
  // The int64 form of columns [c0, cols) of the row at `base`, 8 lanes at a time, the last step masked.
  template <class Out>
  MNQ_TARGET_AVX512 __attribute__((noinline)) static bool tail(const RequantSimdSide& in, const RequantSimdSide* id,
                                                               int64_t cols, int64_t base, int64_t c0, i64 lo, i64 hi,
                                                               double out_scale, const Out& out) {
    const __m512i vlo = _mm512_set1_epi64(lo), vhi = _mm512_set1_epi64(hi);
    const __m512d so = _mm512_set1_pd(out_scale);
    bool ok = true;
    for (int64_t c = c0; c < cols; c += 8) {
      const __mmask8 lanes = cols - c >= 8 ? 0xff : static_cast<__mmask8>((1u << (cols - c)) - 1);
      __mmask8 good = 0xff;
      __m512i v = requant(load(in, base + c, c, good, lanes), in, c, lanes);
      if (id != nullptr) v = _mm512_add_epi64(v, requant(load(*id, base + c, c, good, lanes), *id, c, lanes));
      v = _mm512_min_epi64(_mm512_max_epi64(v, vlo), vhi);
      if constexpr (Out::kPropagatesNaN) {
        _mm256_mask_storeu_ps(out.p + base + c, lanes, _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_cvtepi64_pd(v), so)));
      } else {
        _mm256_mask_storeu_epi32(out.p + base + c, lanes, _mm512_cvtepi64_epi32(v));
      }
      const __mmask8 redo = ~good & lanes;
      if (redo != 0) ok = redo8(in, id, base, c, redo, vlo, vhi, lo, hi, so, out_scale, out) && ok;
    }
    return ok;
  }
  template <class Out>
  MNQ_TARGET_AVX512 static bool rows(const RequantSimdSide& in, const RequantSimdSide* id, int64_t cols, int64_t r0,
                                     int64_t r1, i64 lo, i64 hi, double out_scale, const Out& out) {
    // The float64 form (requant_f64_simd.h) where every shift allows it: int32 codes whole, float input per block.
    const bool f64 = md_fits(in, cols) && (id == nullptr || md_fits(*id, cols));
    if (f64 && in.q != nullptr && (id == nullptr || id->q != nullptr)) {
      if (id != nullptr) {
        RequantF64Avx512::int_rows<true>(in, id, cols, r0, r1, lo, hi, out_scale, out);
      } else {
        RequantF64Avx512::int_rows<false>(in, id, cols, r0, r1, lo, hi, out_scale, out);
      }
      return true;
    }
    RowBuffer<float, 1024> rf_in(cols), rf_id(id != nullptr ? cols : 0);
    const float* rin = float_recip(in, cols, rf_in);
    const float* rid = id != nullptr ? float_recip(*id, cols, rf_id) : nullptr;
    const Out o = out;  // a local: the stores could alias a reference's target
    if (f64 && rin != nullptr && (id == nullptr || rid != nullptr)) {  // float input on every side: its own loop
      const __m512d so = _mm512_set1_pd(out_scale);
      const __m512d dlo = _mm512_set1_pd(RequantF64Avx512::kMagic + static_cast<double>(lo));
      const __m512d dhi = _mm512_set1_pd(RequantF64Avx512::kMagic + static_cast<double>(hi));
      // A block float32 cannot certify: the float64 form with float64-certified codes, else the int64 form.
      auto other = [&](int64_t base, int64_t c) {
        return RequantF64Avx512::block16<false>(in, rin, id, rid, base, c, dlo, dhi, so, o) ||
               int64_block16(in, rin, id, rid, base, c, lo, hi, out_scale, o);
      };
      auto rest = [&](int64_t base, int64_t c) { return tail(in, id, cols, base, c, lo, hi, out_scale, o); };
      if constexpr (Out::kPropagatesNaN) {
        // Fake quant with a certified float32 store: the float32 form (requant_f32_simd.h), its uncertified blocks
        // in float64 where that form takes them, else in int64.
        const FakeStore32 st = fake_store32(Isa::kAvx512, out_scale, lo, hi);
        if (st.ok) {
          RowBuffer<float, 1024> mf_in(cols), mf_id(id != nullptr ? cols : 0);
          const float* min32 = float_md(in, cols, mf_in);
          const float* mid32 = id != nullptr ? float_md(*id, cols, mf_id) : nullptr;
          // Small multipliers: the one-rounding form first (requant_fused_simd.h), a block it cannot certify in the
          // two-rounding one, then `other`.
          RowBuffer<float, 1024> cf_in(cols), cf_id(id != nullptr ? cols : 0);
          double md_in = 0.0, md_id = 0.0;
          if (fused_coefficients(in, cols, cf_in, md_in) &&
              (id == nullptr || fused_coefficients(*id, cols, cf_id, md_id)) && md_in + md_id <= kFusedMaxMd) {
            const float h = fused_threshold(std::max(md_in, md_id));
            const float* xb = id != nullptr ? id->x : nullptr;
            const float* cb = id != nullptr ? cf_id.data() : nullptr;
            const __m512 flo = _mm512_set1_ps(static_cast<float>(lo)), fhi = _mm512_set1_ps(static_cast<float>(hi));
            const __m512 sh = _mm512_set1_ps(st.hi), sl = _mm512_set1_ps(st.lo);
            auto run = [&](auto residual) {
              constexpr bool kResidual = decltype(residual)::value;
              auto fallback = [&](int64_t base, int64_t c) {
                return RequantF32Avx512::block16<kResidual>(in.x, rin, min32, xb, rid, mid32, base, c, flo, fhi, sh,
                                                            sl, o.p) ||
                       other(base, c);
              };
              return RequantFusedAvx512::float_rows<kResidual>(in.x, cf_in.data(), xb, cb, cols, r0, r1, lo, hi, h,
                                                               st, o.p, fallback, rest);
            };
            return id != nullptr ? run(std::true_type{}) : run(std::false_type{});
          }
          return id != nullptr ? RequantF32Avx512::float_rows<true>(in, rin, min32, id, rid, mid32, cols, r0, r1, lo,
                                                                     hi, st, o, other, rest)
                               : RequantF32Avx512::float_rows<false>(in, rin, min32, id, rid, mid32, cols, r0, r1, lo,
                                                                      hi, st, o, other, rest);
        }
        // A wide code range (or a store fake_store32 did not certify): the float32 form with certified stores per
        // lane (requant_wide32_simd.h), a block it cannot certify in `other`.
        const WideStore ws = wide_store(out_scale, lo, hi);
        if (ws.ok) {
          const int64_t id_cols = id != nullptr ? cols : 0;
          RowBuffer<float, 1024> mh_in(cols), ml_in(cols), mh_id(id_cols), ml_id(id_cols);
          if (wide_multipliers(in, cols, mh_in, ml_in) &&
              (id == nullptr || wide_multipliers(*id, cols, mh_id, ml_id))) {
            const float* xb = id != nullptr ? id->x : nullptr;
            const float* mhb = id != nullptr ? mh_id.data() : nullptr;
            const float* mlb = id != nullptr ? ml_id.data() : nullptr;
            const bool uniform = in.uniform && (id == nullptr || id->uniform);
            const float slope = wide_code_slope(std::max(md_max(in, cols), id != nullptr ? md_max(*id, cols) : 0.0));
            auto run = [&](auto residual, auto same) {
              constexpr bool kResidual = decltype(residual)::value;
              // Rows the form mostly fails on (codes beyond 2^21): the float64 form's rows.
              auto others = [&](int64_t ra, int64_t rb) {
                return RequantF64Avx512::float_rows<kResidual>(in, rin, id, rid, cols, ra, rb, lo, hi, out_scale, o,
                                                               other, rest);
              };
              return RequantWide32Avx512::float_rows<kResidual, decltype(same)::value>(
                  in.x, rin, mh_in.data(), ml_in.data(), xb, rid, mhb, mlb, cols, r0, r1, lo, hi, slope, ws, o.p, other,
                  rest, others);
            };
            if (id != nullptr) {
              return uniform ? run(std::true_type{}, std::true_type{}) : run(std::true_type{}, std::false_type{});
            }
            return uniform ? run(std::false_type{}, std::true_type{}) : run(std::false_type{}, std::false_type{});
          }
        }
      }
      return id != nullptr ? RequantF64Avx512::float_rows<true>(in, rin, id, rid, cols, r0, r1, lo, hi, out_scale, o,
                                                                 other, rest)
                           : RequantF64Avx512::float_rows<false>(in, rin, id, rid, cols, r0, r1, lo, hi, out_scale, o,
                                                                  other, rest);
    }
    const __m512d so = _mm512_set1_pd(out_scale);
    const __m512d dlo = _mm512_set1_pd(RequantF64Avx512::kMagic + static_cast<double>(lo));
    const __m512d dhi = _mm512_set1_pd(RequantF64Avx512::kMagic + static_cast<double>(hi));
    bool ok = true;
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t base = r * cols;
      int64_t c = 0;
      for (; c + 16 <= cols; c += 16) {
        if (f64 && RequantF64Avx512::block16(in, rin, id, rid, base, c, dlo, dhi, so, o)) continue;
        ok = int64_block16(in, rin, id, rid, base, c, lo, hi, out_scale, o) && ok;
      }
      if (c < cols) ok = tail(in, id, cols, base, c, lo, hi, out_scale, o) && ok;
    }
    return ok;
  }
};

// ---- AVX2: 4 lanes of int64 (no 64-bit arithmetic shift, min/max or int64 conversions: emulated); int32 codes
// with every shift ≥ 11 take the float64 form with FMA instead (requant_f64_avx2.h), fake quant of float input
// the float32 forms (requant_fused_avx2.h, requant_wide32_avx2.h) where they apply ----
struct Avx2 {
  MNQ_TARGET_AVX2 static __m256i load(const RequantSimdSide& s, int64_t i, int64_t c, unsigned& ok) {
    if (s.q != nullptr) return _mm256_cvtepi32_epi64(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s.q + i)));
    const __m256d abs_mask = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7fffffffffffffffLL));
    const __m256d p = _mm256_mul_pd(_mm256_cvtps_pd(_mm_loadu_ps(s.x + i)), _mm256_loadu_pd(s.r + c));
    const __m256d rp = _mm256_round_pd(p, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256d ap = _mm256_and_pd(p, abs_mask);
    const __m256d h = _mm256_sub_pd(_mm256_set1_pd(0.5), _mm256_and_pd(_mm256_sub_pd(p, rp), abs_mask));
    const __m256d t = _mm256_add_pd(_mm256_mul_pd(ap, _mm256_set1_pd(0x1p-50)), _mm256_set1_pd(0x1p-100));
    const __m256d good =
        _mm256_and_pd(_mm256_cmp_pd(h, t, _CMP_GE_OQ), _mm256_cmp_pd(ap, _mm256_set1_pd(2147483647.0), _CMP_LT_OQ));
    ok &= static_cast<unsigned>(_mm256_movemask_pd(good));
    return _mm256_cvtepi32_epi64(_mm256_cvtpd_epi32(rp));  // |rp| < 2^31 where certified
  }
  // floor(v / 2^k) per lane, 0 ≤ k ≤ 63: a logical shift of v or of its complement.
  MNQ_TARGET_AVX2 static __m256i sra(__m256i v, __m256i k) {
    const __m256i neg = _mm256_cmpgt_epi64(_mm256_setzero_si256(), v);
    return _mm256_xor_si256(_mm256_srlv_epi64(_mm256_xor_si256(v, neg), k), neg);
  }
  MNQ_TARGET_AVX2 static __m256i requant(__m256i q, const RequantSimdSide& s, int64_t c) {
    const __m256i k = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s.k + c));
    const __m256i p = _mm256_mul_epi32(q, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s.m + c)));
    const __m256i odd = _mm256_and_si256(sra(p, k), _mm256_set1_epi64x(1));
    const __m256i hm1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s.hm1 + c));
    return sra(_mm256_add_epi64(_mm256_add_epi64(p, hm1), odd), k);
  }
  template <class Out>
  MNQ_TARGET_AVX2 static bool rows(const RequantSimdSide& in, const RequantSimdSide* id, int64_t cols, int64_t r0,
                                   int64_t r1, i64 lo, i64 hi, double out_scale, const Out& out) {
    // int32 codes whose every shift allows it: the float64 form with FMA (requant_f64_avx2.h).
    if (in.q != nullptr && (id == nullptr || id->q != nullptr) && md_fits(in, cols) &&
        (id == nullptr || md_fits(*id, cols)) && RequantF64Avx2::usable()) {
      if (id != nullptr) {
        RequantF64Avx2::int_rows<true>(in, id, cols, r0, r1, lo, hi, out_scale, out);
      } else {
        RequantF64Avx2::int_rows<false>(in, id, cols, r0, r1, lo, hi, out_scale, out);
      }
      return true;
    }
    const Out o = out;  // a local: the stores could alias a reference's target
    // Fake quant of float input with small multipliers onto a range whose float32 store fake_store32 certifies: the
    // one-rounding float32 form (requant_fused_avx2.h), a block of 8 it cannot certify in the int64 form below.
    if constexpr (Out::kPropagatesNaN) {
      // (Every shift in [11, 62] as on AVX-512, whose float forms run under md_fits too.)
      if (in.x != nullptr && (id == nullptr || id->x != nullptr) && mxcsr_round_nearest() && md_fits(in, cols) &&
          (id == nullptr || md_fits(*id, cols))) {
        // A block of 8 a float32 form could not certify, and the row's tail: the int64 form.
        auto fallback = [&](int64_t base, int64_t c) { return columns(in, id, base, c, c + 8, lo, hi, out_scale, o); };
        auto rest = [&](int64_t base, int64_t c) { return columns(in, id, base, c, cols, lo, hi, out_scale, o); };
        const FakeStore32 st = fake_store32(Isa::kAvx2, out_scale, lo, hi);
        RowBuffer<float, 1024> cf_in(cols), cf_id(id != nullptr ? cols : 0);
        double md_in = 0.0, md_id = 0.0;
        if (st.ok && fused_coefficients(in, cols, cf_in, md_in) &&
            (id == nullptr || fused_coefficients(*id, cols, cf_id, md_id)) && md_in + md_id <= kFusedMaxMd) {
          const float h = fused_threshold(std::max(md_in, md_id));
          const float* xb = id != nullptr ? id->x : nullptr;
          const float* cb = id != nullptr ? cf_id.data() : nullptr;
          return id != nullptr ? RequantFusedAvx2::float_rows<true>(in.x, cf_in.data(), xb, cb, cols, r0, r1, lo, hi,
                                                                     h, st, o.p, fallback, rest)
                               : RequantFusedAvx2::float_rows<false>(in.x, cf_in.data(), xb, cb, cols, r0, r1, lo, hi,
                                                                      h, st, o.p, fallback, rest);
        }
        // A wide code range (16-bit outputs) or larger multipliers: the float32 form with per-lane certified stores
        // (requant_wide32_avx2.h), a block it cannot certify in the int64 form.
        const WideStore ws = wide_store(out_scale, lo, hi);
        const int64_t id_cols = id != nullptr ? cols : 0;
        RowBuffer<float, 1024> rf_in(cols), rf_id(id_cols), mh_in(cols), ml_in(cols), mh_id(id_cols), ml_id(id_cols);
        const float* rin = float_recip(in, cols, rf_in);
        const float* rid = id != nullptr ? float_recip(*id, cols, rf_id) : nullptr;
        if (ws.ok && rin != nullptr && (id == nullptr || rid != nullptr) && wide_multipliers(in, cols, mh_in, ml_in) &&
            (id == nullptr || wide_multipliers(*id, cols, mh_id, ml_id))) {
          const float slope = wide_code_slope(std::max(md_max(in, cols), id != nullptr ? md_max(*id, cols) : 0.0));
          auto others = [&](int64_t ra, int64_t rb) {
            bool ok = true;
            for (int64_t r = ra; r < rb; ++r) ok = columns(in, id, r * cols, 0, cols, lo, hi, out_scale, o) && ok;
            return ok;
          };
          const float* xb = id != nullptr ? id->x : nullptr;
          return id != nullptr
                     ? RequantWide32Avx2::float_rows<true>(in.x, rin, mh_in.data(), ml_in.data(), xb, rid,
                                                           mh_id.data(), ml_id.data(), cols, r0, r1, lo, hi, slope, ws,
                                                           o.p, fallback, rest, others)
                     : RequantWide32Avx2::float_rows<false>(in.x, rin, mh_in.data(), ml_in.data(), xb, rid, nullptr,
                                                            nullptr, cols, r0, r1, lo, hi, slope, ws, o.p, fallback,
                                                            rest, others);
        }
      }
    }
    bool ok = true;
    for (int64_t r = r0; r < r1; ++r) ok = columns(in, id, r * cols, 0, cols, lo, hi, out_scale, o) && ok;
    return ok;
  }
  // The int64 form of columns [c0, c1) of the row at `base`: 4 lanes at a time, the rest by the scalar definition.
  template <class Out>
  MNQ_TARGET_AVX2 static bool columns(const RequantSimdSide& in, const RequantSimdSide* id, int64_t base, int64_t c0,
                                      int64_t c1, i64 lo, i64 hi, double out_scale, const Out& out) {
    const __m256i vlo = _mm256_set1_epi64x(lo), vhi = _mm256_set1_epi64x(hi);
    const __m256i pick_low = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
    const __m256d so = _mm256_set1_pd(out_scale);
    bool ok = true;
    int64_t c = c0;
    for (; c + 4 <= c1; c += 4) {
      unsigned good = 0xf;
      __m256i v = requant(load(in, base + c, c, good), in, c);
      if (id != nullptr) v = _mm256_add_epi64(v, requant(load(*id, base + c, c, good), *id, c));
      v = _mm256_blendv_epi8(v, vhi, _mm256_cmpgt_epi64(v, vhi));
      v = _mm256_blendv_epi8(v, vlo, _mm256_cmpgt_epi64(vlo, v));
      // The clamped values fit int32 (lo, hi are a bit range of at most 32 bits): keep the low halves.
      const __m128i v32 = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(v, pick_low));
      if constexpr (Out::kPropagatesNaN) {
        _mm_storeu_ps(out.p + base + c, _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_cvtepi32_pd(v32), so)));
      } else {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out.p + base + c), v32);
      }
      if (good != 0xf) ok = redo_lanes(in, id, base, c, ~good & 0xfu, lo, hi, out_scale, out) && ok;
    }
    return scalar_cols(in, id, base, c, c1, lo, hi, out_scale, out) && ok;
  }
};
#endif

template <class Out>
bool rows(Isa path, const RequantSimdSide& in, const RequantSimdSide* id, int64_t cols, int64_t r0, int64_t r1, i64 lo,
          i64 hi, double out_scale, const Out& out) {
#if defined(MNQ_HAVE_X86_SIMD)
  if (path == Isa::kAvx512) return Avx512::rows(in, id, cols, r0, r1, lo, hi, out_scale, out);
  if (path == Isa::kAvx2) return Avx2::rows(in, id, cols, r0, r1, lo, hi, out_scale, out);
#endif
  bool ok = true;
  for (int64_t r = r0; r < r1; ++r) ok = scalar_cols(in, id, r * cols, 0, cols, lo, hi, out_scale, out) && ok;
  return ok;
}

}  // namespace

bool requant_rows(Isa path, const RequantSimdSide& in, const RequantSimdSide* id, int64_t cols, int64_t r0, int64_t r1,
                  i64 lo, i64 hi, double out_scale, const CodeOut& out) {
  return rows(path, in, id, cols, r0, r1, lo, hi, out_scale, out);
}
bool requant_rows(Isa path, const RequantSimdSide& in, const RequantSimdSide* id, int64_t cols, int64_t r0, int64_t r1,
                  i64 lo, i64 hi, double out_scale, const FakeOut& out) {
  return rows(path, in, id, cols, r0, r1, lo, hi, out_scale, out);
}

bool requant_simd_scales_ok(const double* s, int64_t count) {
  for (int64_t c = 0; c < count; ++c) {
    const double a = std::fabs(s[c]);
    if (!(a >= 0x1p-1000 && a <= 0x1p1000)) return false;
  }
  return true;
}

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
