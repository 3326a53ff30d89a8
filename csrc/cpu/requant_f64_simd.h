// The float64 form of requantization's AVX-512 path (requant_simd.cpp): 16 columns at a time when every code of
// the block is at most 2^22 in magnitude, which is the case of the codes requant sees in a model (8- to 22-bit
// activations, 16- and 22-bit residuals).
//
// With |q| ≤ 2^22 and |m| < 2^31, q·m has at most 53 significant bits, and md = m·2^−k (1 ≤ k ≤ 62) is a float64
// exactly (a 31-bit mantissa, exponent ≥ −62). So fl64(q · md) = q·m / 2^k exactly, and rounding it to an integer
// half to even (vrndscalepd) is requant(q, m, k) itself: one multiply and one round per lane instead of the int64
// form's multiply, two shifts, two adds and the parity mask. Every requant is then an integer below 2^53; the sum
// of two (the residual add) is exact below 2^53, and above it the rounded sum is above 2^53 too (rounding is
// monotone), so the clamp to [lo, hi] (|lo|, |hi| ≤ 2^31) gives the exact sum's clamp either way. The clamped
// value converts to int32 exactly; the fake-quant output is fl32(fl64(v·S_out)) as FakeOut::store, with v + 0.0
// first so a −0.0 from rounding a small negative product stores +0.0, as the integer v = 0 of the definition does.
// A block with a larger code (or an uncertified float lane) takes the int64 form.
#pragma once

#include <cstdint>

#include "csrc/cpu/requant_simd.h"
#include "csrc/cpu/simd.h"

#if defined(MNQ_HAVE_X86_SIMD)
namespace mnq {
namespace ops {
namespace cpu {

struct RequantF64Avx512 {
  // A float input's codes of 16 columns in float32: p = x·fl32(1/S) and quant_simd.h's certification (|p| < 2^18,
  // farther than its margin from a half-integer, so rint(p) = rint(fl64(x / S))); true when every lane passes,
  // with rint(p) in `rp`.
  MNQ_TARGET_AVX512 static bool float32_codes(const float* x, const float* rf, __m512& rp) {
    const __m512 abs_mask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
    const __m512 p = _mm512_mul_ps(_mm512_loadu_ps(x), _mm512_loadu_ps(rf));
    rp = _mm512_roundscale_ps(p, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512 ap = _mm512_and_ps(p, abs_mask);
    const __m512 h = _mm512_sub_ps(_mm512_set1_ps(0.5f), _mm512_and_ps(_mm512_sub_ps(p, rp), abs_mask));
    const __m512 t = _mm512_add_ps(_mm512_mul_ps(ap, _mm512_set1_ps(0x1p-21f)), _mm512_set1_ps(0x1p-60f));
    const __mmask16 good =
        _mm512_cmp_ps_mask(h, t, _CMP_GE_OQ) & _mm512_cmp_ps_mask(ap, _mm512_set1_ps(262144.0f), _CMP_LT_OQ);
    return good == 0xffff;
  }

  // The codes of columns [c, c + 16) (element i onward) as two float64 halves; false when one is above 2^22 in
  // magnitude (int32 input) or not certified in float32 (float input; rf null: no float32 step for this side).
  MNQ_TARGET_AVX512 static bool codes(const RequantSimdSide& s, const float* rf, int64_t i, int64_t c, __m512d& q0,
                                      __m512d& q1) {
    if (s.q != nullptr) {
      const __m512i v = _mm512_loadu_si512(s.q + i);
      // |INT32_MIN| wraps to 2^31, which the unsigned compare also rejects.
      if (_mm512_cmpgt_epu32_mask(_mm512_abs_epi32(v), _mm512_set1_epi32(1 << 22)) != 0) return false;
      q0 = _mm512_cvtepi32_pd(_mm512_castsi512_si256(v));
      q1 = _mm512_cvtepi32_pd(_mm512_extracti64x4_epi64(v, 1));
      return true;
    }
    __m512 rp;
    if (rf == nullptr || !float32_codes(s.x + i, rf + c, rp)) return false;  // certified: |rp| ≤ 2^18
    q0 = _mm512_cvtps_pd(_mm512_castps512_ps256(rp));
    q1 = _mm512_cvtps_pd(_mm512_extractf32x8_ps(rp, 1));
    return true;
  }

  // requant(q, m, k) = round-half-even(q · md) for the 8 columns' md = m·2^−k.
  MNQ_TARGET_AVX512 static __m512d requant(__m512d q, const double* md) {
    return _mm512_roundscale_pd(_mm512_mul_pd(q, _mm512_loadu_pd(md)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }

  // Columns [c, c + 16) of the row at `base`, when every code qualifies (codes()); false, with nothing stored,
  // otherwise.
  template <class Out>
  MNQ_TARGET_AVX512 static bool block16(const RequantSimdSide& in, const float* rin, const RequantSimdSide* id,
                                        const float* rid, int64_t base, int64_t c, __m512d lo, __m512d hi,
                                        __m512d so, const Out& out) {
    __m512d a0, a1, b0, b1;
    if (!codes(in, rin, base + c, c, a0, a1)) return false;
    if (id != nullptr && !codes(*id, rid, base + c, c, b0, b1)) return false;
    __m512d v0 = requant(a0, in.md + c), v1 = requant(a1, in.md + c + 8);
    if (id != nullptr) {
      v0 = _mm512_add_pd(v0, requant(b0, id->md + c));
      v1 = _mm512_add_pd(v1, requant(b1, id->md + c + 8));
    }
    v0 = _mm512_min_pd(_mm512_max_pd(v0, lo), hi);
    v1 = _mm512_min_pd(_mm512_max_pd(v1, lo), hi);
    if constexpr (Out::kPropagatesNaN) {
      const __m512d zero = _mm512_setzero_pd();
      const __m256 f0 = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_add_pd(v0, zero), so));
      const __m256 f1 = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_add_pd(v1, zero), so));
      _mm512_storeu_ps(out.p + base + c, _mm512_insertf32x8(_mm512_castps256_ps512(f0), f1, 1));
    } else {
      _mm512_storeu_si512(out.p + base + c, _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtpd_epi32(v0)),
                                                               _mm512_cvtpd_epi32(v1), 1));
    }
    return true;
  }
};

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
#endif
