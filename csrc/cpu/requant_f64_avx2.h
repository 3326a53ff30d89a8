// The AVX2 form of requant_f64_simd.h's float64 requantization of int32 codes (requant_avx2.cpp Avx2::rows): the
// same arithmetic, 4 lanes per vector. M + requant(q, m, k) = fl64(q·md + M) with M = 1.5·2^52 for every int32 code
// when every shift is at least 11 (md_fits; the proof is requant_f64_simd.h's), the residual (M + a) + ((M + b) − M),
// the clamp to [M + lo, M + hi] and the int32 code as the low half of each word. AVX2's FMA has no embedded
// rounding: it rounds as MXCSR says, so the form applies only while MXCSR rounds to nearest (the default; checked
// per call); FMA itself is there wherever the AVX2 paths run (isa.cpp requires it). The row's last cols % 4
// columns are masked loads and stores of the same form, the others plain ones.
#pragma once

#include <cstdint>

#include "csrc/cpu/requant_f64_simd.h"
#include "csrc/cpu/simd.h"

#if defined(MNQ_HAVE_X86_SIMD)
namespace mnq {
namespace ops {
namespace cpu {

struct RequantF64Avx2 {
  // Whether the form applies now: MXCSR rounds to nearest (FMA: isa.cpp takes AVX2 only with it).
  static bool usable() { return mxcsr_round_nearest(); }

  // M + requant of the 4 int32 codes at q with multipliers md: all four (kMasked false: plain loads), or the lanes
  // of `mask` (the others read 0). The masked forms (VMASKMOV) only for the row's tail: on AMD's cores a masked
  // store is a long microcoded sequence.
  template <bool kMasked>
  MNQ_TARGET_AVX2 MNQ_ALWAYS_INLINE static __m256d half(const int32_t* q, const double* md, __m128i mask) {
    const __m256d m = kMasked ? _mm256_maskload_pd(md, _mm256_cvtepi32_epi64(mask)) : _mm256_loadu_pd(md);
    const __m256d x = _mm256_cvtepi32_pd(kMasked ? _mm_maskload_epi32(q, mask)
                                                 : _mm_loadu_si128(reinterpret_cast<const __m128i*>(q)));
    return _mm256_fmadd_pd(x, m, _mm256_set1_pd(RequantF64Avx512::kMagic));
  }

  // Columns [c, c + 4) of the row at `base`: all four, or (kMasked) the lanes of `mask`.
  template <bool kResidual, bool kMasked, class Out>
  MNQ_TARGET_AVX2 MNQ_ALWAYS_INLINE static void block4(const int32_t* qa, const double* ma, const int32_t* qb,
                                                       const double* mb, int64_t base, int64_t c, __m128i mask,
                                                       __m256d wlo, __m256d whi, __m256d so, const Out& out) {
    const __m256d mg = _mm256_set1_pd(RequantF64Avx512::kMagic);
    __m256d w = half<kMasked>(qa + base + c, ma + c, mask);
    if constexpr (kResidual) w = _mm256_add_pd(w, _mm256_sub_pd(half<kMasked>(qb + base + c, mb + c, mask), mg));
    w = _mm256_min_pd(_mm256_max_pd(w, wlo), whi);
    if constexpr (Out::kPropagatesNaN) {
      const __m128 v = _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_sub_pd(w, mg), so));
      if constexpr (kMasked) {
        _mm_maskstore_ps(out.p + base + c, mask, v);
      } else {
        _mm_storeu_ps(out.p + base + c, v);
      }
    } else {
      const __m256i pick_low = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
      const __m128i v = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(_mm256_castpd_si256(w), pick_low));
      if constexpr (kMasked) {
        _mm_maskstore_epi32(out.p + base + c, mask, v);
      } else {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out.p + base + c), v);
      }
    }
  }

  // Rows [r0, r1) of int32 codes (both sides when there is a residual).
  template <bool kResidual, class Out>
  MNQ_TARGET_AVX2 static void int_rows(const RequantSimdSide& in, const RequantSimdSide* id, int64_t cols,
                                       int64_t r0, int64_t r1, kernels::i64 lo, kernels::i64 hi, double out_scale,
                                       const Out& out) {
    const int32_t* qa = in.q;
    const double* ma = in.md;
    const int32_t* qb = kResidual ? id->q : nullptr;
    const double* mb = kResidual ? id->md : nullptr;
    const __m256d wlo = _mm256_set1_pd(RequantF64Avx512::kMagic + static_cast<double>(lo));
    const __m256d whi = _mm256_set1_pd(RequantF64Avx512::kMagic + static_cast<double>(hi));
    const __m256d so = _mm256_set1_pd(out_scale);
    const Out o = out;  // a local: the stores could alias a reference's target
    const __m128i all = _mm_set1_epi32(-1);
    const __m128i tail = _mm_cmpgt_epi32(_mm_set1_epi32(static_cast<int>(cols % 4)), _mm_setr_epi32(0, 1, 2, 3));
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t base = r * cols;
      int64_t c = 0;
      for (; c + 4 <= cols; c += 4) block4<kResidual, false>(qa, ma, qb, mb, base, c, all, wlo, whi, so, o);
      if (c < cols) block4<kResidual, true>(qa, ma, qb, mb, base, c, tail, wlo, whi, so, o);
    }
  }
};

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
#endif
