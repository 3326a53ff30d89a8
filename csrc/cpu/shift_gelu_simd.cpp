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

// sig of the entries [t, t + 16) (lanes of k) of shift_gelu_tables.
MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE __m512i table_sig(const int32_t* e1p, int64_t t, __mmask16 k, __m512i ve2,
                                                      __m128i shift) {
  const __m512i e1 = _mm512_maskz_loadu_epi32(k, e1p + t);
  // e1 + e2 < 2^32 as unsigned, then min with 2^31 − 1 (sat_add): s ∈ [1, 2^31 − 1]
  const __m512i s = _mm512_min_epu32(_mm512_add_epi32(e1, ve2), _mm512_set1_epi32(0x7fffffff));
  // a masked-off lane has e1 = 0 and s = e2 (or 0): its quotient (even 1/0 = inf) is never stored
  const __m512d num = _mm512_set1_pd(2147483647.0);
  const __m256i f_lo = _mm512_cvttpd_epi32(_mm512_div_pd(num, _mm512_cvtepu32_pd(_mm512_castsi512_si256(s))));
  const __m256i f_hi = _mm512_cvttpd_epi32(_mm512_div_pd(num, _mm512_cvtepu32_pd(_mm512_extracti64x4_epi64(s, 1))));
  const __m512i f = _mm512_inserti64x4(_mm512_castsi256_si512(f_lo), f_hi, 1);
  return _mm512_srl_epi32(_mm512_mullo_epi32(e1, f), shift);
}

// The float32 output values of the codes m − t − lane with those sig: (m − t)·sig, |·| < 2^30, through float64.
MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE __m512 table_values(int64_t t, __m512i sig, __m512i vm, __m512d s_out) {
  const __m512i lane = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int32_t>(t)),
                                        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
  const __m512i out = _mm512_mullo_epi32(_mm512_sub_epi32(vm, lane), sig);
  const __m256 lo = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_cvtepi32_pd(_mm512_castsi512_si256(out)), s_out));
  const __m256 hi = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_cvtepi32_pd(_mm512_extracti64x4_epi64(out, 1)), s_out));
  return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_castps256_ps512(lo)), _mm256_castps_pd(hi), 1));
}

// The table entries [t0, t1) of one row max m, 16 at a time: store(t, k, sig, values) with `values()` the QAT
// values of those lanes (computed only when the store asks for them).
template <class Store>
MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE void table_steps(const int32_t* e1, int64_t t0, int64_t t1, int64_t e2,
                                                     int out_shift, int32_t m, double s_out, const Store& store) {
  const __m512i ve2 = _mm512_set1_epi32(static_cast<int32_t>(static_cast<uint32_t>(e2)));
  const __m128i shift = _mm_cvtsi32_si128(out_shift);
  const __m512i vm = _mm512_set1_epi32(m);
  const __m512d so = _mm512_set1_pd(s_out);
  for (int64_t t = t0; t < t1; t += 16) {
    const __mmask16 k = simd_lanes16(t1 - t);
    const __m512i sig = table_sig(e1, t, k, ve2, shift);
    store(t, k, sig, [&]() MNQ_TARGET_AVX512 { return table_values(t, sig, vm, so); });
  }
}

MNQ_TARGET_AVX512 void tables(const int32_t* e1, int64_t t0, int64_t t1, int64_t e2, int out_shift, int32_t m,
                              double s_out, int32_t* tab, float* vtab) {
  table_steps(e1, t0, t1, e2, out_shift, m, s_out,
              [&](int64_t t, __mmask16 k, __m512i sig, const auto& values) MNQ_TARGET_AVX512 {
                _mm512_mask_storeu_epi32(tab + t, k, sig);
                if (vtab != nullptr) _mm512_mask_storeu_ps(vtab + t, k, values());
              });
}

// 16 int32 lanes truncated to their low 16 bits, stored in the lanes of k.
MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE void store16(uint16_t* p, __mmask16 k, __m512i v) {
  _mm256_mask_storeu_epi16(p, k, _mm512_cvtepi32_epi16(v));
}

MNQ_TARGET_AVX512 void tables16(const int32_t* e1, int64_t t0, int64_t t1, int64_t e2, int out_shift, int32_t m,
                                double s_out, uint16_t* sig16, uint16_t* vlo, uint16_t* vhi) {
  table_steps(e1, t0, t1, e2, out_shift, m, s_out,
              [&](int64_t t, __mmask16 k, __m512i sig, const auto& values) MNQ_TARGET_AVX512 {
                if (sig16 != nullptr) store16(sig16 + t, k, sig);  // 0 ≤ sig < 2^15
                if (vlo != nullptr) {
                  const __m512i bits = _mm512_castps_si512(values());
                  store16(vlo + t, k, bits);
                  store16(vhi + t, k, _mm512_srli_epi32(bits, 16));
                }
              });
}

// The steps of the int output: q·sig.
struct IntSteps {
  const Table16& tab;
  int32_t* out;
  MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE void operator()(const Step32& s, int64_t j, __mmask16 k0, __mmask16 k1) const {
    const __m512i sig = tab.look(s.t, s.b6, s.b7), zero = _mm512_setzero_si512();  // 0 ≤ sig < 2^15: zero-extended
    store_step(out + j, _mm512_mullo_epi32(s.v0, _mm512_unpacklo_epi16(sig, zero)),
               _mm512_mullo_epi32(s.v1, _mm512_unpackhi_epi16(sig, zero)), k0, k1);
  }
};

// The steps of the float output: the two 16-bit halves of each value, interleaved into float32 lanes.
struct ValueSteps {
  const Table16 &lo, &hi;
  float* out;
  MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE void operator()(const Step32& s, int64_t j, __mmask16 k0, __mmask16 k1) const {
    const __m512i l = lo.look(s.t, s.b6, s.b7), h = hi.look(s.t, s.b6, s.b7);
    store_step(out + j, _mm512_unpacklo_epi16(l, h), _mm512_unpackhi_epi16(l, h), k0, k1);  // float32 bits
  }
};

MNQ_TARGET_AVX512 void lookup16_int(const int32_t* q, int64_t cols, int32_t m, const uint16_t* sig16, int32_t* out) {
  const Table16 tab(sig16);
  steps32(q, cols, m, IntSteps{tab, out});
}

MNQ_TARGET_AVX512 void lookup16_values(const int32_t* q, int64_t cols, int32_t m, const uint16_t* vlo,
                                       const uint16_t* vhi, float* out) {
  const Table16 lo(vlo), hi(vhi);
  steps32(q, cols, m, ValueSteps{lo, hi, out});
}
#endif

}  // namespace

void shift_gelu_tables(const int32_t* e1, int64_t t0, int64_t t1, int64_t e2, int out_shift, int32_t m, double s_out,
                       int32_t* tab, float* vtab) {
#if defined(MNQ_HAVE_X86_SIMD)
  tables(e1, t0, t1, e2, out_shift, m, s_out, tab, vtab);
#endif
}

void shift_gelu_tables16(const int32_t* e1, int64_t t0, int64_t t1, int64_t e2, int out_shift, int32_t m,
                         double s_out, uint16_t* sig16, uint16_t* vlo, uint16_t* vhi) {
#if defined(MNQ_HAVE_X86_SIMD)
  tables16(e1, t0, t1, e2, out_shift, m, s_out, sig16, vlo, vhi);
#endif
}

void shift_gelu_lookup16(const int32_t* q, int64_t cols, int32_t m, const uint16_t* sig16, int32_t* out) {
#if defined(MNQ_HAVE_X86_SIMD)
  lookup16_int(q, cols, m, sig16, out);
#endif
}

void shift_gelu_lookup16(const int32_t* q, int64_t cols, int32_t m, const uint16_t* vlo, const uint16_t* vhi,
                         float* out) {
#if defined(MNQ_HAVE_X86_SIMD)
  lookup16_values(q, cols, m, vlo, vhi, out);
#endif
}

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
