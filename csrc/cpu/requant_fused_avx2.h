// The AVX2 form of requantization's one-rounding float32 form for fake-quant output (requant_fused_simd.h, whose
// header has the proof): 8 lanes per vector, the same operations in the same order, so the same values and the same
// certification. Float input on every side, small multipliers (fused_coefficients, the sides' largest |md| summed at
// most kFusedMaxMd), a per-tensor output scale whose float32 pair fake_store32 certified with the AVX2 instructions.
// Differences from the AVX-512 form, none in a value:
//   - Rounding: AVX2 has no embedded rounding, so every operation rounds as MXCSR says; the form runs only while
//     MXCSR rounds to nearest (mxcsr_round_nearest, checked per call).
//   - The test's max(|a|, |b|) is VANDPS (sign cleared) and VMAXPS instead of VRANGEPS. VMAXPS returns its second
//     operand when one is NaN, so a NaN lane is caught, as there, by the ordered compare of ra and rb (a NaN e comes
//     with a NaN r: e = fl(x·c − r)).
//   - The clamp is VMAXPS then VMINPS with v first: a NaN v becomes lo, a finite value, but its lane fails the test
//     and the block is redone.
// A block with an uncertified lane is redone whole by `fallback` (the AVX2 int64 form, exact), the row's tail by
// `tail`. Per 8 lanes with the residual: 19 operations (three per side for r and e, four for the test's maxima, an
// FMA and two compares, the sum, the clamp, the two-operation store) where the int64 form takes ~70 per 8 lanes.
#pragma once

#include <cstdint>

#include "csrc/cpu/fake_store_simd.h"
#include "csrc/cpu/requant_fused_simd.h"
#include "csrc/cpu/simd.h"

#if defined(MNQ_HAVE_X86_SIMD)
namespace mnq {
namespace ops {
namespace cpu {

struct RequantFusedAvx2 {
  // r = rint(x·c) and e = fl32(x·c − r) of 8 lanes (requant_fused_simd.h side(), rounded to nearest by MXCSR).
  MNQ_TARGET_AVX2 MNQ_ALWAYS_INLINE static __m256 side(const float* x, const float* c, __m256& e) {
    const __m256 xv = _mm256_loadu_ps(x), cv = _mm256_loadu_ps(c), m = _mm256_set1_ps(RequantFusedAvx512::kMagic);
    const __m256 r = _mm256_sub_ps(_mm256_fmadd_ps(xv, cv, m), m);
    e = _mm256_fmsub_ps(xv, cv, r);
    return r;
  }

  // Columns [c, c + 8) of the row at `base`, stored whatever the test gives; true when every lane is certified.
  template <bool kResidual>
  MNQ_TARGET_AVX2 MNQ_ALWAYS_INLINE static bool block8(const float* xa, const float* ca, const float* xb,
                                                       const float* cb, int64_t base, int64_t c, __m256 h, __m256 flo,
                                                       __m256 fhi, __m256 sh, __m256 sl, float* o) {
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)), k = _mm256_set1_ps(0x1p-23f);
    __m256 ea, v, good;
    const __m256 ra = side(xa + base + c, ca + c, ea);
    if constexpr (kResidual) {
      __m256 eb;
      const __m256 rb = side(xb + base + c, cb + c, eb);
      const __m256 p = _mm256_max_ps(_mm256_and_ps(ra, abs_mask), _mm256_and_ps(rb, abs_mask));
      const __m256 u = _mm256_fmadd_ps(p, k, _mm256_max_ps(_mm256_and_ps(ea, abs_mask), _mm256_and_ps(eb, abs_mask)));
      good = _mm256_and_ps(_mm256_cmp_ps(ra, rb, _CMP_ORD_Q), _mm256_cmp_ps(u, h, _CMP_LT_OQ));
      v = _mm256_add_ps(ra, rb);
    } else {
      const __m256 u = _mm256_fmadd_ps(_mm256_and_ps(ra, abs_mask), k, _mm256_and_ps(ea, abs_mask));
      good = _mm256_cmp_ps(u, h, _CMP_LT_OQ);  // NaN e: fails
      v = ra;
    }
    v = _mm256_min_ps(_mm256_max_ps(v, flo), fhi);
    _mm256_storeu_ps(o + base + c, fake_value32_signed_zero_free_avx2(v, sh, sl));
    return _mm256_movemask_ps(good) == 0xff;
  }

  // Rows [r0, r1): block8, `fallback(base, c)` to redo a block of 8 it could not certify (the output must not alias
  // the input), `tail(base, c)` for the row's columns from c on. Returns false when one of those reported an input
  // without a code.
  template <bool kResidual, class Fallback, class Tail>
  MNQ_TARGET_AVX2 static bool float_rows(const float* xa, const float* ca, const float* xb, const float* cb,
                                         int64_t cols, int64_t r0, int64_t r1, kernels::i64 lo, kernels::i64 hi,
                                         float h, const FakeStore32& st, float* o, const Fallback& fallback,
                                         const Tail& tail) {
    const __m256 vh = _mm256_set1_ps(h);
    const __m256 flo = _mm256_set1_ps(static_cast<float>(lo)), fhi = _mm256_set1_ps(static_cast<float>(hi));
    const __m256 sh = _mm256_set1_ps(st.hi), sl = _mm256_set1_ps(st.lo);
    bool ok = true;
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t base = r * cols;
      int64_t c = 0;
      for (; c + 8 <= cols; c += 8) {
        if (!block8<kResidual>(xa, ca, xb, cb, base, c, vh, flo, fhi, sh, sl, o)) [[unlikely]] {
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
