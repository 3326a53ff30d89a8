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
// time where it applies, else the wide-range float32 form, their uncertified blocks in the int64 form
// (requant_avx2.cpp).
#include "csrc/cpu/requant_simd.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "csrc/cpu/requant_f32_simd.h"
#include "csrc/cpu/requant_f64_simd.h"
#include "csrc/cpu/requant_lanes.h"
#include "csrc/cpu/requant_fused_simd.h"
#include "csrc/cpu/requant_wide32_simd.h"
#include "csrc/cpu/row_buffer.h"
#include "csrc/cpu/simd.h"

namespace mnq {
namespace ops {
namespace cpu {
namespace {

using kernels::CodeOut;
using kernels::FakeOut;
using kernels::i64;
using namespace requant_lanes;

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

#endif

template <class Out>
bool rows(Isa path, const RequantSimdSide& in, const RequantSimdSide* id, int64_t cols, int64_t r0, int64_t r1, i64 lo,
          i64 hi, double out_scale, const Out& out) {
#if defined(MNQ_HAVE_X86_SIMD)
  if (path == Isa::kAvx512) return Avx512::rows(in, id, cols, r0, r1, lo, hi, out_scale, out);
  if (path == Isa::kAvx2) return requant_rows_avx2(in, id, cols, r0, r1, lo, hi, out_scale, out);
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
