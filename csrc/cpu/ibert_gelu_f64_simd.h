// I-BERT i-GELU's QAT element in float64 lanes (AVX-512), for a per-tensor scale outside ibert_gelu_simd.cpp's
// narrow form: from the float32 input to the float32 output, 8 lanes per step, equal to kernels/ibert_gelu.h with
// channel_io.h's FloatInC / FloatOutC. Every step is exact or the definition's own rounding: v = fl64(x)·(1/S) and
// q = rint(v) by adding and subtracting M = 1.5·2^52 in round-to-nearest (exact for |v| < 2^51; a larger or
// non-finite v fails the range test as the definition's code does); |t| = max(−b − |q|, 0) and p = fma(|t|, |t|, c)
// = t² + c are integers below 2^46 (kernels/ibert_gelu.h: |b| < 2^23, |c| < 2^46), so exact; sign(q)·p by XOR-ing
// q's sign into p (q = 0 is +0 here, and its output is 0 whatever p); fma(±p, 2^−14, M) rounded toward −inf is M + y,
// y = floor(±p/2^14) (M + y lies in [2^52, 2^53), spacing 1), and (M + y) − (M − one) = y + one = f exactly
// (|f| < 2^33); fma(q, f, +0) is double(q·f), the definition's int64 → float64 rounding of the exact product
// (|q·f| < 2^63), +0 for a zero product (as double(0)), and then fl32(·S_out) as FloatOutC does. ~18 operations per
// 8 elements instead of the int64 form's ~26 with its code conversions. Include only from files that compile the
// AVX-512 paths (simd.h).
#pragma once

#include <cstdint>

#include "csrc/cpu/simd.h"

#if defined(MNQ_HAVE_X86_SIMD)
namespace mnq {
namespace ops {
namespace cpu {

struct F64Consts {
  __m512d inv, m, nb, c, m_one, so, lo, hi;  // 1/S, M, −b, c, M − one, S_out, the declared range
};
MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE __m256 gelu_f64(__m256 x, __mmask8 k, const F64Consts& kc, __mmask8& bad) {
  constexpr int kNearest = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  const __m512d zero = _mm512_setzero_pd();
  const __m512d v = _mm512_mul_pd(_mm512_cvtps_pd(x), kc.inv);
  const __m512d q = _mm512_sub_round_pd(_mm512_add_round_pd(v, kc.m, kNearest), kc.m, kNearest);
  bad |= k & ~(_mm512_cmp_pd_mask(q, kc.lo, _CMP_GE_OQ) & _mm512_cmp_pd_mask(q, kc.hi, _CMP_LE_OQ));
  const __m512d nt = _mm512_max_pd(_mm512_sub_pd(kc.nb, _mm512_abs_pd(q)), zero);
  const __m512d pv = _mm512_fmadd_pd(nt, nt, kc.c);
  const __m512i sign = _mm512_set1_epi64(INT64_MIN);
  const __m512d sp = _mm512_castsi512_pd(  // p ^ (q & sign)
      _mm512_ternarylogic_epi64(_mm512_castpd_si512(pv), _mm512_castpd_si512(q), sign, 0x78));
  const __m512d my =
      _mm512_fmadd_round_pd(sp, _mm512_set1_pd(0x1p-14), kc.m, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  const __m512d out = _mm512_fmadd_pd(q, _mm512_sub_pd(my, kc.m_one), zero);
  return _mm512_cvtpd_ps(_mm512_mul_pd(out, kc.so));
}

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
#endif
