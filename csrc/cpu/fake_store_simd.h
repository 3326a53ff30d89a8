// FakeOut::store (kernels/quant.h) in float32 for the AVX-512 and AVX2 fake-quant paths: quantize's (quant_simd.cpp)
// and requant's (requant_f32_simd.h, requant_fused_simd.h, requant_fused_avx2.h).
#pragma once

#include <cstdint>

#include "csrc/cpu/isa.h"
#include "csrc/cpu/simd.h"
#include "kernels/quant.h"

namespace mnq {
namespace ops {
namespace cpu {

// FakeOut::store's value fl32(fl64(q)·S) in float32 arithmetic, for a per-tensor scale S > 0: with hi = fl32(S)
// and lo = fl32(S − hi), v = fma(q, hi, fl32(q·lo)) with the sign bit of q or-ed in (fake_value32). v is the exact
// q·S within about 2^−47·|q·S|, so it rounds like the definition except near a float32 rounding boundary; instead of
// a bound, fake_store32 evaluates both for every integer code of the clamp range (at most kFakeStoreMaxCodes, 16
// per vector step, with the kernels' own instructions) and sets `ok` only when all agree bit for bit. The sign
// or-ing gives a −0.0 code (vrndscaleps of a small negative p) the −0.0 that fl32(−0.0·S) has for S > 0; a code
// q ≠ 0 has the sign of q·S already. Two operations per 16 lanes instead of the float64 product's eight.
struct FakeStore32 {
  float hi = 0.0f, lo = 0.0f;
  bool ok = false;
};
constexpr kernels::i64 kFakeStoreMaxCodes = 1024;  // bits ≤ 10: at most 64 vector steps per call
// The pair for scale s and codes [lo, hi] on `path`: ok only on AVX-512, or on AVX2 while MXCSR rounds to nearest
// (the check then runs the AVX2 instructions the kernels store with, under the MXCSR they run under), for S > 0 and
// a range of at most kFakeStoreMaxCodes codes within ±2^24, when every code agrees.
FakeStore32 fake_store32(Isa path, double s, kernels::i64 lo, kernels::i64 hi);

#if defined(MNQ_HAVE_X86_SIMD)
// fake_store32's value of 16 codes q (integers in float32, or −0.0): v | (q's sign bit) (vpternlogd 0xF8: a | (b & c)).
MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE __m512 fake_value32(__m512 q, __m512 hi, __m512 lo) {
  const __m512 v = _mm512_fmadd_ps(q, hi, _mm512_mul_ps(q, lo));
  return _mm512_castsi512_ps(_mm512_ternarylogic_epi32(_mm512_castps_si512(v), _mm512_castps_si512(q),
                                                       _mm512_set1_epi32(INT32_MIN), 0xF8));
}
// The same for codes that are never −0.0 (requant's float32 form): the or-ing changes nothing then (a nonzero code's
// value has its sign already; +0.0 gives fma(+0, hi, ±0) = +0.0), so it is left out.
MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE __m512 fake_value32_signed_zero_free(__m512 q, __m512 hi, __m512 lo) {
  return _mm512_fmadd_ps(q, hi, _mm512_mul_ps(q, lo));
}
// The AVX2 forms of the two above, 8 lanes (the same IEEE operations, rounded to nearest by MXCSR:
// mxcsr_round_nearest).
MNQ_TARGET_AVX2 MNQ_ALWAYS_INLINE __m256 fake_value32_avx2(__m256 q, __m256 hi, __m256 lo) {
  const __m256 v = _mm256_fmadd_ps(q, hi, _mm256_mul_ps(q, lo));
  return _mm256_or_ps(v, _mm256_and_ps(q, _mm256_castsi256_ps(_mm256_set1_epi32(INT32_MIN))));
}
MNQ_TARGET_AVX2 MNQ_ALWAYS_INLINE __m256 fake_value32_signed_zero_free_avx2(__m256 q, __m256 hi, __m256 lo) {
  return _mm256_fmadd_ps(q, hi, _mm256_mul_ps(q, lo));
}
#endif

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
