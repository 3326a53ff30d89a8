// The AVX2 form of requantization's float32 form onto a wide code range (requant_wide32_simd.h, whose header has the
// proof): 8 lanes per vector, the same operations in the same order, so the same values and the same tests. Float
// input on every side, every |md| ≤ 2^5 with ml exact (wide_multipliers), fl32(1/S) a normal float32 (float_recip),
// a per-tensor S_out in [2^−60, 2^60] and codes within ±2^24 (wide_store). Differences from the AVX-512 form, none in
// a value:
//   - Rounding: every operation rounds as MXCSR says; the form runs only while MXCSR rounds to nearest
//     (mxcsr_round_nearest, checked per call).
//   - max(|a|, |b|) is VANDPS and VMAXPS instead of VRANGEPS. VMAXPS returns its second operand when one is NaN, so
//     a NaN may drop out of a maximum, as it does from VRANGEPS there: a NaN input still fails, by v (NaN through
//     the clamp, whose VMAXPS / VMINPS take v second) and the ordered A == B.
// A block with an uncertified lane is redone whole by `fallback` (the int64 form), the row's tail by `tail`; once an
// eighth of at least kWideMinBlocks blocks failed, the remaining rows go to `others`.
#pragma once

#include <cstdint>

#include "csrc/cpu/requant_wide32_simd.h"
#include "csrc/cpu/simd.h"

#if defined(MNQ_HAVE_X86_SIMD)
namespace mnq {
namespace ops {
namespace cpu {

struct RequantWide32Avx2 {
  // One side of 8 lanes: the code q, its residual e, the requant r and its residual g (requant_wide32_simd.h side()).
  MNQ_TARGET_AVX2 MNQ_ALWAYS_INLINE static __m256 side(const float* x, const float* rf, const float* mh,
                                                       const float* ml, __m256& q, __m256& e, __m256& g) {
    const __m256 m = _mm256_set1_ps(RequantWide32Avx512::kMagic);
    const __m256 xv = _mm256_loadu_ps(x), rv = _mm256_loadu_ps(rf), hv = _mm256_loadu_ps(mh);
    q = _mm256_sub_ps(_mm256_fmadd_ps(xv, rv, m), m);
    e = _mm256_fmsub_ps(xv, rv, q);
    const __m256 r = _mm256_sub_ps(_mm256_fmadd_ps(q, hv, m), m);
    g = _mm256_fmadd_ps(q, _mm256_loadu_ps(ml), _mm256_fmsub_ps(q, hv, r));
    return r;
  }

  MNQ_TARGET_AVX2 MNQ_ALWAYS_INLINE static __m256 abs_max(__m256 a, __m256 b) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    return _mm256_max_ps(_mm256_and_ps(a, abs_mask), _mm256_and_ps(b, abs_mask));
  }

  // The output constants in every lane.
  struct Out8 {
    __m256 lo, hi, h, lp, lm, slope;
  };

  // Columns [c, c + 8) of the row at `base` (each side's fl32(1/S), mh, ml per column), stored whatever the tests
  // give; true when every lane is certified.
  template <bool kResidual>
  MNQ_TARGET_AVX2 MNQ_ALWAYS_INLINE static bool block8(const float* xa, const float* rfa, const float* mha,
                                                       const float* mla, const float* xb, const float* rfb,
                                                       const float* mhb, const float* mlb, int64_t base, int64_t c,
                                                       const Out8& k, float* o) {
    __m256 qa, ea, ga, v, u, gm;
    const __m256 ra = side(xa + base + c, rfa + c, mha + c, mla + c, qa, ea, ga);
    if constexpr (kResidual) {
      __m256 qb, eb, gb;
      const __m256 rb = side(xb + base + c, rfb + c, mhb + c, mlb + c, qb, eb, gb);
      u = _mm256_fmadd_ps(abs_max(qa, qb), k.slope, abs_max(ea, eb));
      gm = abs_max(ga, gb);
      v = _mm256_add_ps(ra, rb);
    } else {
      u = _mm256_fmadd_ps(abs_max(qa, qa), k.slope, abs_max(ea, ea));
      gm = abs_max(ga, ga);
      v = ra;
    }
    __m256 good = _mm256_and_ps(_mm256_cmp_ps(u, _mm256_set1_ps(kWideCodeMargin), _CMP_LT_OQ),
                                _mm256_cmp_ps(gm, _mm256_set1_ps(kWideRequantMargin), _CMP_LT_OQ));
    v = _mm256_min_ps(k.hi, _mm256_max_ps(k.lo, v));  // v second: a NaN v stays NaN
    const __m256 a = _mm256_fmadd_ps(v, k.h, _mm256_mul_ps(v, k.lp));
    const __m256 b = _mm256_fmadd_ps(v, k.h, _mm256_mul_ps(v, k.lm));
    good = _mm256_and_ps(good, _mm256_cmp_ps(a, b, _CMP_EQ_OQ));
    _mm256_storeu_ps(o + base + c, a);
    return _mm256_movemask_ps(good) == 0xff;
  }

  // Rows [r0, r1) of float input (both sides when kResidual): `fallback(base, c)` redoes a block of 8 it could not
  // certify (the output must not alias an input), `tail(base, c)` does the row's columns from c on, `others(r, r1)`
  // rows [r, r1) once the form failed on an eighth of at least kWideMinBlocks blocks. Returns false when one of those
  // reported an input without a code.
  template <bool kResidual, class Fallback, class Tail, class Others>
  MNQ_TARGET_AVX2 static bool float_rows(const float* xa, const float* rfa, const float* mha, const float* mla,
                                         const float* xb, const float* rfb, const float* mhb, const float* mlb,
                                         int64_t cols, int64_t r0, int64_t r1, kernels::i64 lo, kernels::i64 hi,
                                         float slope, const WideStore& st, float* o, const Fallback& fallback,
                                         const Tail& tail, const Others& others) {
    const Out8 k{_mm256_set1_ps(static_cast<float>(lo)), _mm256_set1_ps(static_cast<float>(hi)),
                 _mm256_set1_ps(st.h), _mm256_set1_ps(st.lp), _mm256_set1_ps(st.lm), _mm256_set1_ps(slope)};
    bool ok = true;
    int64_t tried = 0, failed = 0;
    for (int64_t r = r0; r < r1; ++r) {
      if (tried >= kWideMinBlocks && failed * 8 > tried) return others(r, r1) && ok;
      const int64_t base = r * cols;
      int64_t c = 0;
      for (; c + 8 <= cols; c += 8) {
        ++tried;
        if (!block8<kResidual>(xa, rfa, mha, mla, xb, rfb, mhb, mlb, base, c, k, o)) [[unlikely]] {
          ++failed;
          ok = cold_call_avx2(fallback, base, c) && ok;  // out of line: the loop keeps its registers (simd.h)
        }
      }
      if (c < cols) ok = tail(base, c) && ok;
    }
    return ok;
  }
};

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
#endif
