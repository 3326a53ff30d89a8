// ShiftGELU's AVX-512 lookup (shift_gelu_simd.h).
#include "csrc/cpu/shift_gelu_simd.h"

#include "csrc/cpu/row_codes_simd.h"
#include "csrc/cpu/simd.h"

namespace mnq {
namespace ops {
namespace cpu {
namespace {

#if defined(MNQ_HAVE_X86_SIMD)

// q·tab[m − q] for the lanes of k (the others 0).
MNQ_TARGET_AVX512 __m512i products(const int32_t* q, __m512i vm, const int32_t* tab, __mmask16 k) {
  const __m512i v = _mm512_maskz_loadu_epi32(k, q);
  const __m512i sig = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), k, _mm512_sub_epi32(vm, v), tab, 4);
  return _mm512_mullo_epi32(v, sig);
}

MNQ_TARGET_AVX512 void lookup_int(const int32_t* q, int64_t cols, int32_t m, const int32_t* tab, int32_t* out) {
  const __m512i vm = _mm512_set1_epi32(m);
  int64_t j = 0;
  for (; j + 16 <= cols; j += 16) _mm512_storeu_si512(out + j, products(q + j, vm, tab, 0xffff));
  if (j < cols) {
    const __mmask16 k = simd_lanes16(cols - j);
    _mm512_mask_storeu_epi32(out + j, k, products(q + j, vm, tab, k));
  }
}

MNQ_TARGET_AVX512 void lookup_float(const int32_t* q, int64_t cols, int32_t m, const int32_t* tab, double scale,
                                    float* out) {
  const __m512i vm = _mm512_set1_epi32(m);
  const __m512d s = _mm512_set1_pd(scale);
  for (int64_t j = 0; j < cols; j += 16) {
    const __mmask16 k = simd_lanes16(cols - j);
    const __m512i v = products(q + j, vm, tab, k);
    const __m256 lo = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_cvtepi32_pd(_mm512_castsi512_si256(v)), s));
    const __m256 hi = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_cvtepi32_pd(_mm512_extracti64x4_epi64(v, 1)), s));
    _mm512_mask_storeu_ps(out + j, k, _mm512_insertf32x8(_mm512_castps256_ps512(lo), hi, 1));
  }
}
#endif

}  // namespace

bool shift_gelu_max_min(const int32_t* q, int64_t cols, int32_t lo, int32_t hi, int32_t& mx, int32_t& mn) {
#if defined(MNQ_HAVE_X86_SIMD)
  return int_row_max_min(q, cols, lo, hi, mx, mn);
#else
  return false;
#endif
}

bool shift_gelu_codes(const float* x, int64_t cols, double inv_scale, int32_t lo, int32_t hi, int32_t* q, int32_t& mx,
                      int32_t& mn) {
#if defined(MNQ_HAVE_X86_SIMD)
  return float_row_codes(x, cols, inv_scale, lo, hi, q, mx, mn);
#else
  return false;
#endif
}

void shift_gelu_lookup(const int32_t* q, int64_t cols, int32_t m, const int32_t* tab, int32_t* out) {
#if defined(MNQ_HAVE_X86_SIMD)
  lookup_int(q, cols, m, tab, out);
#endif
}

void shift_gelu_lookup(const int32_t* q, int64_t cols, int32_t m, const int32_t* tab, double scale, float* out) {
#if defined(MNQ_HAVE_X86_SIMD)
  lookup_float(q, cols, m, tab, scale, out);
#endif
}

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
