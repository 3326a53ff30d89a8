// The epilogue of mnq::quant_linear's CPU path (csrc/ops/quant_linear.h): y = fl32(fl64(acc + qb)·s) per element.
//
// acc (int32) and qb (an integer of at most 32 bits, held in float64) convert to float64 exactly and their sum is
// exact (|acc + qb| < 2^33 < 2^53), so every path rounds once for the product and once for the float32 store: the
// AVX-512 loop (16 values a step, two vectors of eight float64) and the scalar loop compute the same IEEE
// operations in the same order (no contraction: the sum is not a product).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "csrc/cpu/isa.h"
#include "csrc/cpu/quant_simd.h"
#include "csrc/cpu/simd.h"  // GCC 12's false "maybe uninitialized" in its AVX-512 headers, silenced
#include "csrc/ops/quant_linear.h"

namespace mnq {
namespace ops {
namespace cpu {
namespace {

// y may be a's memory (the op writes its output over the int32 sums): each value goes through memcpy, read before
// its slot is written, so no int32 / float32 lvalue aliases the other.
void row_scalar(const int32_t* a, const double* qb, const double* s, int64_t n0, int64_t N, float* y) {
  for (int64_t n = n0; n < N; ++n) {
    int32_t v;
    std::memcpy(&v, a + n, sizeof v);
    const float r = static_cast<float>((static_cast<double>(v) + qb[n]) * s[n]);
    std::memcpy(y + n, &r, sizeof r);
  }
}

#if defined(__AVX512F__)
void row_avx512(const int32_t* a, const double* qb, const double* s, int64_t N, float* y) {
  int64_t n = 0;
  for (; n + 16 <= N; n += 16) {
    const __m512i v = _mm512_loadu_si512(a + n);
    const __m512d lo = _mm512_mul_pd(_mm512_add_pd(_mm512_cvtepi32_pd(_mm512_castsi512_si256(v)),
                                                   _mm512_loadu_pd(qb + n)), _mm512_loadu_pd(s + n));
    const __m512d hi = _mm512_mul_pd(_mm512_add_pd(_mm512_cvtepi32_pd(_mm512_extracti64x4_epi64(v, 1)),
                                                   _mm512_loadu_pd(qb + n + 8)), _mm512_loadu_pd(s + n + 8));
    _mm256_storeu_ps(y + n, _mm512_cvtpd_ps(lo));
    _mm256_storeu_ps(y + n + 8, _mm512_cvtpd_ps(hi));
  }
  row_scalar(a, qb, s, n, N, y);
}
#endif

// out[i] = in[i] as int8; false when some in[i] lies outside [−128, 127]: then out is not all written.
bool narrow_codes(const int32_t* in, int8_t* out, int64_t n) {
  int64_t i = 0;
  bool ok = true;
#if defined(__AVX512F__)
  if (isa() == Isa::kAvx512) {
    __m512i lo = _mm512_setzero_si512(), hi = _mm512_setzero_si512();
    for (; i + 16 <= n; i += 16) {
      const __m512i v = _mm512_loadu_si512(in + i);
      lo = _mm512_min_epi32(lo, v);
      hi = _mm512_max_epi32(hi, v);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm512_cvtsepi32_epi8(v));
    }
    ok = _mm512_reduce_min_epi32(lo) >= -128 && _mm512_reduce_max_epi32(hi) <= 127;
  }
#endif
  for (; i < n; ++i) {
    ok &= in[i] >= -128 && in[i] <= 127;
    out[i] = static_cast<int8_t>(in[i]);
  }
  return ok;
}

// out[k] = rint(fl64(w[k]) / s) for k in [k0, K) (kernels/quant.h quantize_code); false at the first outside
// [−128, 127] or NaN.
bool weight_row_scalar(const float* w, double s, int64_t k0, int64_t K, int8_t* out) {
  for (int64_t k = k0; k < K; ++k) {
    const double q = std::rint(static_cast<double>(w[k]) / s);
    if (!(q >= -128.0 && q <= 127.0)) return false;  // false for NaN
    out[k] = static_cast<int8_t>(q);
  }
  return true;
}

#if defined(__AVX512F__)
// The same, 16 lanes a step: vdivpd is IEEE division (the scalar's fl64(w) / s, correctly rounded) and vrndscalepd
// to nearest even is rint under the default rounding mode (the scalar's); the ordered compares reject NaN.
bool weight_row_avx512(const float* w, double s, int64_t K, int8_t* out) {
  constexpr int kNear = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  const __m512d vs = _mm512_set1_pd(s), lo = _mm512_set1_pd(-128.0), hi = _mm512_set1_pd(127.0);
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    const __m512 v = _mm512_loadu_ps(w + k);
    const __m512d q0 = _mm512_roundscale_pd(_mm512_div_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(v)), vs), kNear);
    const __m512d q1 = _mm512_roundscale_pd(
        _mm512_div_pd(_mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))), vs), kNear);
    const __mmask8 in0 = _mm512_cmp_pd_mask(q0, lo, _CMP_GE_OQ) & _mm512_cmp_pd_mask(q0, hi, _CMP_LE_OQ);
    const __mmask8 in1 = _mm512_cmp_pd_mask(q1, lo, _CMP_GE_OQ) & _mm512_cmp_pd_mask(q1, hi, _CMP_LE_OQ);
    if ((in0 & in1) != 0xff) return false;
    const __m512i q = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtpd_epi32(q0)), _mm512_cvtpd_epi32(q1), 1);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + k), _mm512_cvtepi32_epi8(q));
  }
  return weight_row_scalar(w, s, k, K, out);
}
#endif

}  // namespace

bool activation_codes(const float* x, double s, int64_t n, int8_t* out) {
  // The codes clamped to ±2^18, the certified float32 quantizer's range (csrc/cpu/quant_simd.h): any beyond int8
  // fail the narrowing anyway.
  constexpr kernels::i64 kLo = -(kernels::i64(1) << 18), kHi = (kernels::i64(1) << 18) - 1;
  constexpr int64_t kChunk = 2048;  // int32 codes in an L1-resident buffer, then narrowed
  const bool certified = quantize_simd_ok(&s, 1, kLo, kHi);
  const Isa path = isa();  // the float64 form (exact) where the scale is not certified
  const float r = static_cast<float>(1.0 / s);
  std::atomic<bool> ok{true};
  at::parallel_for(0, (n + kChunk - 1) / kChunk, std::max<int64_t>(1, at::internal::GRAIN_SIZE / kChunk),
                   [&](int64_t c0, int64_t c1) {
                     int32_t buf[kChunk];
                     for (int64_t c = c0; c < c1 && ok.load(std::memory_order_relaxed); ++c) {
                       const int64_t i0 = c * kChunk, len = std::min(kChunk, n - i0);
                       const QuantSpan sp{x + i0, 0, len, &s, &r, false, kLo, kHi, !certified};
                       if (quantize_span(path, sp, kernels::CodeOut{buf}) != 0 || !narrow_codes(buf, out + i0, len)) {
                         ok = false;
                       }
                     }
                   });
  return ok;
}

bool weight_codes(const float* w, const double* s, int64_t N, int64_t K, int8_t* out) {
#if defined(__AVX512F__)
  const bool wide = isa() == Isa::kAvx512;
#endif
  std::atomic<bool> ok{true};
  at::parallel_for(0, N, std::max<int64_t>(1, at::internal::GRAIN_SIZE / std::max<int64_t>(K, 1)),
                   [&](int64_t n0, int64_t n1) {
                     for (int64_t n = n0; n < n1 && ok.load(std::memory_order_relaxed); ++n) {
#if defined(__AVX512F__)
                       if (wide) {
                         if (!weight_row_avx512(w + n * K, s[n], K, out + n * K)) ok = false;
                         continue;
                       }
#endif
                       if (!weight_row_scalar(w + n * K, s[n], 0, K, out + n * K)) ok = false;
                     }
                   });
  return ok;
}

void quant_linear_epilogue(const at::Tensor& acc, const double* qb, const double* s, const at::Tensor& y) {
  const int64_t M = acc.size(0), N = acc.size(1);
  const int32_t* a = acc.data_ptr<int32_t>();
  float* out = y.data_ptr<float>();
#if defined(__AVX512F__)
  const bool wide = isa() == Isa::kAvx512;
#endif
  at::parallel_for(0, M, std::max<int64_t>(1, at::internal::GRAIN_SIZE / std::max<int64_t>(N, 1)),
                   [&](int64_t m0, int64_t m1) {
                     for (int64_t m = m0; m < m1; ++m) {
#if defined(__AVX512F__)
                       if (wide) {
                         row_avx512(a + m * N, qb, s, N, out + m * N);
                         continue;
                       }
#endif
                       row_scalar(a + m * N, qb, s, 0, N, out + m * N);
                     }
                   });
}

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
