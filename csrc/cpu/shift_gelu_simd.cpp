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

MNQ_TARGET_AVX512 void lookup_values(const int32_t* q, int64_t cols, int32_t m, const float* vtab, float* out) {
  const __m512i vm = _mm512_set1_epi32(m);
  for (int64_t j = 0; j < cols; j += 16) {
    const __mmask16 k = simd_lanes16(cols - j);
    const __m512i t = _mm512_sub_epi32(vm, _mm512_maskz_loadu_epi32(k, q + j));
    _mm512_mask_storeu_ps(out + j, k, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), k, t, vtab, 4));
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

void shift_gelu_lookup(const int32_t* q, int64_t cols, int32_t m, const float* vtab, float* out) {
#if defined(MNQ_HAVE_X86_SIMD)
  lookup_values(q, cols, m, vtab, out);
#endif
}

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
