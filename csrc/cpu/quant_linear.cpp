// The epilogue of mnq::quant_linear's CPU path (csrc/ops/quant_linear.h): y = fl32(fl64(acc + qb)·s) per element.
//
// acc (int32) and qb (an integer of at most 32 bits, held in float64) convert to float64 exactly and their sum is
// exact (|acc + qb| < 2^33 < 2^53), so every path rounds once for the product and once for the float32 store: the
// AVX-512 loop (16 values a step, two vectors of eight float64) and the scalar loop compute the same IEEE
// operations in the same order (no contraction: the sum is not a product).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "csrc/cpu/isa.h"
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

}  // namespace

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

bool weight_codes_t(const float* w, const double* s, int64_t N, int64_t K, int8_t* out) {
  bool ok = true;
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t k = 0; k < K; ++k) {
      const double q = std::rint(static_cast<double>(w[n * K + k]) / s[n]);  // kernels/quant.h quantize_code
      ok &= q >= -128.0 && q <= 127.0;                                       // false for NaN
      out[k * N + n] = static_cast<int8_t>(ok ? q : 0.0);
    }
  }
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
