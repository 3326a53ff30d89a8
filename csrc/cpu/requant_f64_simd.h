// The float64 form of requantization's AVX-512 path (requant_simd.cpp), for sides whose every shift k is at least
// 11 (every |md| = |m|·2^−k < 2^20, the case of every scale ratio below 2^20; md_fits below).
//
// md = m·2^−k (|m| < 2^31, 11 ≤ k ≤ 62) is a float64 exactly. For a code |q| ≤ 2^31 (any int32, or a float
// input's code certified in float32, below 2^19), t = q·md is below 2^51 in magnitude, and one fused multiply-add
// fl64(q·md + M) with M = 1.5·2^52 is requant(q, m, k) + M exactly: the FMA rounds the exact q·md + M once, in
// [2^52, 2^53) where float64's spacing is 1, to the nearest integer, ties to even (M is even, so M + j is even
// exactly when j is): round-half-even(q·m / 2^k), the definition (kernels/common.h requant). The rounding mode is
// the instruction's own (embedded round-to-nearest), whatever MXCSR holds. One FMA per lane instead of the int64
// form's multiply, two shifts, two adds and the parity mask.
//
// Every requant is then at most 2^51 in magnitude. With the residual, (M + b) − M = b is exact, and
// (M + a) + b = M + a + b is exact while |a + b| ≤ 2^51 (an integer in [2^52, 2^53]); beyond, the rounded sum is
// beyond too (rounding is monotone), far outside [M + lo, M + hi] (|lo|, |hi| ≤ 2^31), so the clamp gives the
// exact sum's clamp either way. The clamped w = M + v has the bit pattern of M plus v (one exponent over
// [2^52, 2^53)) and M's low 32 bits are zero, so the low 32 bits of w are the int32 code v: no conversion.
// The fake-quant output is fl32(fl64(v·S_out)) as FakeOut::store, with v itself: w − M, or with the residual
// (M + a) + fl64(q_b·md_b − M) = (M + a) + (b − M) = a + b, exact (b − M rounds once to spacing 1, in
// (−2^53, −2^52]), which saves the offset's two subtractions; v = 0 is +0.0, as the integer 0 of the definition.
//
// int32 codes need no per-element test at all (int_rows; with small multipliers the codes' sum and clamp are done
// in int32 on the words' low halves); float input is certified 16 lanes at a time in float32 (float32_codes), a
// block that fails in float64 (float64_codes, codes below 2^31), and one that fails again takes the int64 form.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "csrc/cpu/requant_simd.h"
#include "csrc/cpu/simd.h"

#if defined(MNQ_HAVE_X86_SIMD)
namespace mnq {
namespace ops {
namespace cpu {

// Whether every shift of the cols columns of a side is in [11, 62]: |md| < 2^20, the float64 form's bound.
inline bool md_fits(const RequantSimdSide& s, int64_t cols) {
  bool ok = true;
  for (int64_t c = 0; c < s.distinct(cols); ++c) ok &= s.k[c] >= 11 && s.k[c] <= 62;
  return ok;
}

// The largest |md| of the cols columns of a side.
inline double md_max(const RequantSimdSide& s, int64_t cols) {
  double v = 0.0;
  for (int64_t c = 0; c < s.distinct(cols); ++c) v = std::max(v, std::fabs(s.md[c]));
  return v;
}

struct RequantF64Avx512 {
  static constexpr double kMagic = 0x1.8p52;  // M = 1.5·2^52

  // A float input's codes of 16 columns in float32, p = x·fl32(1/S) as quant_simd.h's certified form (|p − vd| ≤
  // E = 2^−22·|p| + 2^−140 for the definition's vd = fl64(x / S)); true when every lane is certified, with rint(p)
  // in `rp`. One vreduceps gives e = p − rint(p) exactly (0 for ±inf, NaN for NaN) and rint(p) = p − e (a zero code
  // may come out +0.0 where rint gives −0.0, which no caller sees: requant's M + 0·md is M, the int64 form converts
  // to an integer). A lane is certified when u = fl(2^−20·|p| + |e|) < 1/2: rounding is monotone and 1/2 a float, so
  // then 2^−20·|p| + |e| < 1/2, hence |p| < 2^19 and p is farther than 2^−20·|p| from every half-integer, which is
  // more than E for |p| ≥ 2^−118 (below, |e| = |p| and the distance is almost 1/2): rint(p) = rint(vd), the code.
  // NaN and ±inf fail (u is NaN or inf).
  MNQ_TARGET_AVX512 static bool float32_codes(const float* x, const float* rf, __m512& rp) {
    const __m512 p = _mm512_mul_ps(_mm512_loadu_ps(x), _mm512_loadu_ps(rf));
    const __m512 e = _mm512_reduce_ps(p, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    rp = _mm512_sub_ps(p, e);
    return rint_margin_lanes(p, e, 0x1p-20f) == 0xffff;
  }

  // A float input's codes of 8 columns in float64, p = fl64(x·fl64(1/S)), within E = 2^−51·|p| + 2^−1000 of the
  // definition's vd = fl64(x / S) (requant_simd.h: S and 1/S in [2^−1000, 2^1000]). With e = p − rint(p) (vreducepd,
  // exact), u = fl(2^−50·|p| + |e|) < 1/2 implies that p is farther than 2^−50·|p| from every half-integer, more
  // than E for |p| ≥ 2^−949 (below, |e| = |p| and the distance is almost 1/2): rint(p) = rint(vd), the code. With
  // |p| < 2^31 too, the code is within the FMA form's bound |q| ≤ 2^31. For codes beyond float32_codes' 2^19 (I-BERT
  // GELU's outputs, ~2^30 on their tiny scale); NaN and ±inf fail.
  MNQ_TARGET_AVX512 static bool float64_codes(const float* x, const double* r, __m512d& q) {
    const __m512d abs_mask = _mm512_castsi512_pd(_mm512_set1_epi64(0x7fffffffffffffffLL));
    const __m512d p = _mm512_mul_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x)), _mm512_loadu_pd(r));
    const __m512d e = _mm512_reduce_pd(p, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512d ap = _mm512_and_pd(p, abs_mask);
    const __m512d u = _mm512_fmadd_pd(ap, _mm512_set1_pd(0x1p-50), _mm512_and_pd(e, abs_mask));
    q = _mm512_sub_pd(p, e);
    return (_mm512_cmp_pd_mask(u, _mm512_set1_pd(0.5), _CMP_LT_OQ) &
            _mm512_cmp_pd_mask(ap, _mm512_set1_pd(0x1p31), _CMP_LT_OQ)) == 0xff;
  }

  // The codes of columns [c, c + 16) (element i onward) as two float64 halves: int32 codes always; a float input's
  // when float32_codes certifies all 16, or else float64_codes both halves (false otherwise; rf null: no float32
  // step for this side).
  template <bool kTry32 = true>
  MNQ_TARGET_AVX512 static bool codes(const RequantSimdSide& s, const float* rf, int64_t i, int64_t c, __m512d& q0,
                                      __m512d& q1) {
    if (s.q != nullptr) {
      q0 = _mm512_cvtepi32_pd(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s.q + i)));
      q1 = _mm512_cvtepi32_pd(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s.q + i + 8)));
      return true;
    }
    __m512 rp;
    if (kTry32 && rf != nullptr && float32_codes(s.x + i, rf + c, rp)) {  // certified: |rp| < 2^19
      q0 = _mm512_cvtps_pd(_mm512_castps512_ps256(rp));
      q1 = _mm512_cvtps_pd(_mm512_extractf32x8_ps(rp, 1));
      return true;
    }
    return float64_codes(s.x + i, s.r + c, q0) && float64_codes(s.x + i + 8, s.r + c + 8, q1);
  }

  // M + requant(q, m, k) = fl64(q·md + M), one rounding to nearest even (the header's comment).
  MNQ_TARGET_AVX512 static __m512d requant(__m512d q, __m512d md) {
    return _mm512_fmadd_round_pd(q, md, _mm512_set1_pd(kMagic), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  // requant(q, m, k) − M = fl64(q·md − M): the same single rounding, in (−2^53, −2^52] (spacing 1; M is even).
  MNQ_TARGET_AVX512 static __m512d requant_neg(__m512d q, __m512d md) {
    return _mm512_fmadd_round_pd(q, md, _mm512_set1_pd(-kMagic), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  // (M + a) + ((M + b) − M): M + a + b, exact.
  MNQ_TARGET_AVX512 static __m512d add(__m512d wa, __m512d wb) {
    return _mm512_add_pd(wa, _mm512_sub_pd(wb, _mm512_set1_pd(kMagic)));
  }

  // Stores the clamped M + v of 16 lanes (two halves; `lanes` of them) at p: the int32 codes (the low halves of the
  // float64 words) or fl32(fl64(v·S_out)).
  MNQ_TARGET_AVX512 static void store(const kernels::CodeOut& out, int64_t i, __m512d w0, __m512d w1, __m512d,
                                      __mmask16 lanes) {
    _mm512_mask_storeu_epi32(out.p + i, lanes, low_halves(w0, w1));
  }
  // fl32(fl64(v·S_out)) of 16 clamped values v (two halves), as FakeOut::store; v = +0.0 for a zero code.
  MNQ_TARGET_AVX512 static void store_value(const kernels::FakeOut& out, int64_t i, __m512d v0, __m512d v1,
                                            __m512d so) {
    const __m256 f0 = _mm512_cvtpd_ps(_mm512_mul_pd(v0, so));
    const __m256 f1 = _mm512_cvtpd_ps(_mm512_mul_pd(v1, so));
    _mm512_storeu_ps(out.p + i, _mm512_insertf32x8(_mm512_castps256_ps512(f0), f1, 1));
  }
  MNQ_TARGET_AVX512 static void store(const kernels::FakeOut& out, int64_t i, __m512d w0, __m512d w1, __m512d so,
                                      __mmask16 lanes) {
    const __m512d mg = _mm512_set1_pd(kMagic);
    const __m256 f0 = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_sub_pd(w0, mg), so));
    const __m256 f1 = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_sub_pd(w1, mg), so));
    _mm512_mask_storeu_ps(out.p + i, lanes, _mm512_insertf32x8(_mm512_castps256_ps512(f0), f1, 1));
  }

  // Columns [c, c + 16) of the row at `base`, when every code qualifies (codes()); false, with nothing stored,
  // otherwise. lo, hi: M + the code range.
  // kTry32 = false: float input straight to float64_codes (a caller whose float32 step failed on this block).
  template <bool kTry32 = true, class Out>
  MNQ_TARGET_AVX512 static bool block16(const RequantSimdSide& in, const float* rin, const RequantSimdSide* id,
                                        const float* rid, int64_t base, int64_t c, __m512d lo, __m512d hi,
                                        __m512d so, const Out& out) {
    __m512d a0, a1, b0, b1;
    if (!codes<kTry32>(in, rin, base + c, c, a0, a1)) return false;
    if (id != nullptr && !codes<kTry32>(*id, rid, base + c, c, b0, b1)) return false;
    __m512d v0 = requant(a0, _mm512_loadu_pd(in.md + c)), v1 = requant(a1, _mm512_loadu_pd(in.md + c + 8));
    if (id != nullptr) {
      v0 = add(v0, requant(b0, _mm512_loadu_pd(id->md + c)));
      v1 = add(v1, requant(b1, _mm512_loadu_pd(id->md + c + 8)));
    }
    store(out, base + c, _mm512_min_pd(_mm512_max_pd(v0, lo), hi), _mm512_min_pd(_mm512_max_pd(v1, lo), hi), so,
          0xffff);
    return true;
  }

  // The clamp range as M + lo, M + hi (offset values) and lo, hi (plain values), and S_out, in every lane.
  struct Bounds {
    __m512d wlo, whi, vlo, vhi, so;
    int32_t ilo, ihi;  // lo, hi: a bit range of at most 32 bits
  };
  MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE static Bounds bounds(kernels::i64 lo, kernels::i64 hi, double out_scale) {
    const double dlo = static_cast<double>(lo), dhi = static_cast<double>(hi);
    return Bounds{_mm512_set1_pd(kMagic + dlo), _mm512_set1_pd(kMagic + dhi), _mm512_set1_pd(dlo), _mm512_set1_pd(dhi),
                  _mm512_set1_pd(out_scale), static_cast<int32_t>(lo), static_cast<int32_t>(hi)};
  }

  // Rows [r0, r1) of float input (both sides when there is a residual; rfa, rfb: fl32(1/S) per column), in blocks of
  // 16 columns that float32_codes certifies whole; `other(base, c)` does a block it cannot (the int64 form) and
  // `tail(base, c)` the row's columns from c on. The pointers are locals, so the loop keeps them and its constants
  // in registers across those (rare, out-of-line) calls.
  template <bool kResidual, class Out, class Other, class Tail>
  MNQ_TARGET_AVX512 static bool float_rows(const RequantSimdSide& in, const float* rfa, const RequantSimdSide* id,
                                           const float* rfb, int64_t cols, int64_t r0, int64_t r1, kernels::i64 lo,
                                           kernels::i64 hi, double out_scale, const Out& out, const Other& other,
                                           const Tail& tail) {
    const float* xa = in.x;
    const double* ma = in.md;
    const float* xb = kResidual ? id->x : nullptr;
    const double* mb = kResidual ? id->md : nullptr;
    const Bounds b = bounds(lo, hi, out_scale);
    const __m512d wlo = b.wlo, whi = b.whi, vlo = b.vlo, vhi = b.vhi, so = b.so;
    const Out o = out;
    bool ok = true;
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t base = r * cols;
      int64_t c = 0;
      for (; c + 16 <= cols; c += 16) {
        __m512 qa, qb;
        if (!float32_codes(xa + base + c, rfa + c, qa) || (kResidual && !float32_codes(xb + base + c, rfb + c, qb)))
            [[unlikely]] {
          ok = cold_call_avx512(other, base, c) && ok;
          continue;
        }
        const __m512d a0 = _mm512_cvtps_pd(_mm512_castps512_ps256(qa));
        const __m512d a1 = _mm512_cvtps_pd(_mm512_extractf32x8_ps(qa, 1));
        __m512d v0 = requant(a0, _mm512_loadu_pd(ma + c)), v1 = requant(a1, _mm512_loadu_pd(ma + c + 8));
        if constexpr (Out::kPropagatesNaN) {
          // Fake quant needs v itself: (M + a) + (b − M) = a + b, exact, and no M to take off before the store.
          if constexpr (kResidual) {
            const __m512d b0 = _mm512_cvtps_pd(_mm512_castps512_ps256(qb));
            const __m512d b1 = _mm512_cvtps_pd(_mm512_extractf32x8_ps(qb, 1));
            v0 = _mm512_add_pd(v0, requant_neg(b0, _mm512_loadu_pd(mb + c)));
            v1 = _mm512_add_pd(v1, requant_neg(b1, _mm512_loadu_pd(mb + c + 8)));
          } else {
            v0 = _mm512_sub_pd(v0, _mm512_set1_pd(kMagic));
            v1 = _mm512_sub_pd(v1, _mm512_set1_pd(kMagic));
          }
          store_value(o, base + c, _mm512_min_pd(_mm512_max_pd(v0, vlo), vhi),
                      _mm512_min_pd(_mm512_max_pd(v1, vlo), vhi), so);
          continue;
        }
        if constexpr (kResidual) {
          v0 = add(v0, requant(_mm512_cvtps_pd(_mm512_castps512_ps256(qb)), _mm512_loadu_pd(mb + c)));
          v1 = add(v1, requant(_mm512_cvtps_pd(_mm512_extractf32x8_ps(qb, 1)), _mm512_loadu_pd(mb + c + 8)));
        }
        store(o, base + c, _mm512_min_pd(_mm512_max_pd(v0, wlo), whi), _mm512_min_pd(_mm512_max_pd(v1, wlo), whi),
              so, 0xffff);
      }
      if (c < cols) ok = tail(base, c) && ok;
    }
    return ok;
  }

  // M + requant of the 8 int32 codes at q (`l` of them) with multipliers md: each half of a 16-column block from its
  // own load (the conversion's memory form: no 256-bit extract).
  MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE static __m512d int_half(const int32_t* q, const double* md, __mmask8 l) {
    return requant(_mm512_cvtepi32_pd(_mm256_maskz_loadu_epi32(l, q)), _mm512_maskz_loadu_pd(l, md));
  }

  // The low 32 bits of the 16 words of two halves, as int32 lanes: v mod 2^32 for words M + v.
  MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE static __m512i low_halves(__m512d w0, __m512d w1) {
    const __m512i low = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    return _mm512_permutex2var_epi32(_mm512_castpd_si512(w0), low, _mm512_castpd_si512(w1));
  }

  // 16 columns at c of the row at `base` of int32 codes, `lanes` of them (masked loads: the others read 0 and are
  // not stored). kPacked (codes out, small multipliers: int_rows): the sum and the clamp in int32 on the words' low
  // halves; else in float64 on M + v against wlo, whi = M + the code range.
  template <bool kResidual, bool kPacked, class Out>
  MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE static void int_block(const int32_t* qa, const double* ma, const int32_t* qb,
                                                            const double* mb, int64_t base, int64_t c,
                                                            __mmask16 lanes, const Bounds& b, const Out& out) {
    const __mmask8 l0 = static_cast<__mmask8>(lanes), l1 = static_cast<__mmask8>(lanes >> 8);
    if constexpr (kPacked) {
      __m512i v = low_halves(int_half(qa + base + c, ma + c, l0), int_half(qa + base + c + 8, ma + c + 8, l1));
      if constexpr (kResidual) {
        const __m512d w0 = int_half(qb + base + c, mb + c, l0), w1 = int_half(qb + base + c + 8, mb + c + 8, l1);
        v = _mm512_add_epi32(v, low_halves(w0, w1));
      }
      v = _mm512_min_epi32(_mm512_max_epi32(v, _mm512_set1_epi32(b.ilo)), _mm512_set1_epi32(b.ihi));
      _mm512_mask_storeu_epi32(out.p + base + c, lanes, v);
    } else {
      __m512d v0 = int_half(qa + base + c, ma + c, l0), v1 = int_half(qa + base + c + 8, ma + c + 8, l1);
      if constexpr (kResidual) {
        v0 = add(v0, int_half(qb + base + c, mb + c, l0));
        v1 = add(v1, int_half(qb + base + c + 8, mb + c + 8, l1));
      }
      store(out, base + c, _mm512_min_pd(_mm512_max_pd(v0, b.wlo), b.whi),
            _mm512_min_pd(_mm512_max_pd(v1, b.wlo), b.whi), b.so, lanes);
    }
  }

  // Rows [r0, r1) of int32 codes (both sides when there is a residual), every column in this form: no per-element
  // test, the row's tail by masked loads and stores. When the largest |md| of the two sides sum to at most 1/2
  // (every requant ratio of a model's residual add), |a| + |b| ≤ 2^31·(1/2) + 1 < 2^31 for any int32 codes: the
  // codes (CodeOut) take the words' low halves, a and b mod 2^32, add them in int32 (exact: no wrap) and clamp there,
  // four operations per 16 lanes fewer than the float64 sum, clamp and offset.
  template <bool kResidual, class Out>
  MNQ_TARGET_AVX512 static void int_rows(const RequantSimdSide& in, const RequantSimdSide* id, int64_t cols,
                                         int64_t r0, int64_t r1, kernels::i64 lo, kernels::i64 hi, double out_scale,
                                         const Out& out) {
    const bool packed = !Out::kPropagatesNaN && md_max(in, cols) + (kResidual ? md_max(*id, cols) : 0.0) <= 0.5;
    if (packed) {
      int_rows_as<kResidual, !Out::kPropagatesNaN>(in, id, cols, r0, r1, bounds(lo, hi, out_scale), out);
    } else {
      int_rows_as<kResidual, false>(in, id, cols, r0, r1, bounds(lo, hi, out_scale), out);
    }
  }
  template <bool kResidual, bool kPacked, class Out>
  MNQ_TARGET_AVX512 static void int_rows_as(const RequantSimdSide& in, const RequantSimdSide* id, int64_t cols,
                                            int64_t r0, int64_t r1, const Bounds& bounds, const Out& out) {
    const int32_t* qa = in.q;
    const double* ma = in.md;
    const int32_t* qb = kResidual ? id->q : nullptr;
    const double* mb = kResidual ? id->md : nullptr;
    const Bounds b = bounds;
    const Out o = out;  // a local: the stores could alias a reference's target
    const __mmask16 tail = static_cast<__mmask16>((1u << (cols % 16)) - 1);
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t base = r * cols;
      int64_t c = 0;
      for (; c + 16 <= cols; c += 16) int_block<kResidual, kPacked>(qa, ma, qb, mb, base, c, 0xffff, b, o);
      if (c < cols) int_block<kResidual, kPacked>(qa, ma, qb, mb, base, c, tail, b, o);
    }
  }
};

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
#endif
