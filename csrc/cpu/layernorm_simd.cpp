// The AVX-512 row passes of the integer LayerNorms (layernorm_simd.h).
#include "csrc/cpu/layernorm_simd.h"

#include <cmath>

#include "csrc/cpu/row_codes_simd.h"
#include "csrc/cpu/simd.h"

namespace mnq {
namespace ops {
namespace cpu {
namespace {

using kernels::i64;
using kernels::LnFactor;

constexpr double kBiasMagic = 0x1.8p52;  // K = 1.5·2^52 (ln_bias_magic)

#if defined(MNQ_HAVE_X86_SIMD)
inline __mmask8 lanes8(int64_t n) { return n >= 8 ? 0xff : static_cast<__mmask8>((1u << n) - 1); }

// Σ of v's squares (16 int32 lanes) added to the int64 accumulators: two 32×32→64-bit products.
MNQ_TARGET_AVX512 void accumulate_sq(__m512i v, __m512i& s2) {
  const __m512i odd = _mm512_srli_epi64(v, 32);  // VPMULDQ reads the low 32 bits of each 64-bit lane, signed
  s2 = _mm512_add_epi64(s2, _mm512_add_epi64(_mm512_mul_epi32(v, v), _mm512_mul_epi32(odd, odd)));
}

// Rows up to kSum32Cols columns keep Σq in 16 int32 lanes: each lane adds at most 512 codes of |q| ≤ 2^21, below
// 2^30 in magnitude, instead of widening every vector to int64 (a third of the load pass's instructions). Longer
// rows widen: s1 is then 8 int64 lanes.
constexpr int64_t kSum32Cols = 8192;

// Σ of the 16 int32 lanes of v and of their squares, added to the accumulators.
MNQ_TARGET_AVX512 void accumulate(__m512i v, bool sum32, __m512i& s1, __m512i& s2) {
  if (sum32) {
    s1 = _mm512_add_epi32(s1, v);
  } else {
    s1 = _mm512_add_epi64(s1, _mm512_add_epi64(_mm512_cvtepi32_epi64(_mm512_castsi512_si256(v)),
                                               _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(v, 1))));
  }
  accumulate_sq(v, s2);
}

// accumulate() as a float_row_codes_each step (the masked-off lanes of a tail step are zero).
struct Moments {
  bool sum32;
  __m512i& s1;
  __m512i& s2;
  MNQ_TARGET_AVX512 void operator()(__m512i v, __mmask16, int64_t) const {
    accumulate(v, sum32, s1, s2);  // lanes outside k are 0 (float_row_codes_each)
  }
};

MNQ_TARGET_AVX512 i64 total(__m512i s1, bool sum32) {
  if (!sum32) return _mm512_reduce_add_epi64(s1);
  return _mm512_reduce_add_epi64(_mm512_add_epi64(_mm512_cvtepi32_epi64(_mm512_castsi512_si256(s1)),
                                                  _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(s1, 1))));
}

// I-BERT LayerNorm's 22-bit codes of float32 values in rows over 8192 columns (shorter rows take
// ibert_layernorm.cpp's offset codes; a float32 product cannot be certified beyond 2^18): q =
// rint(fl64(x·inv)) as ln_float_code, the rounding and the conversion one VCVTPD2DQ with embedded round-to-nearest-
// even (rint's rounding, whatever MXCSR says); a NaN, ±inf or a value beyond int32 converts to INT32_MIN, the
// "integer indefinite", below lo (|lo| ≤ 2^21), so the range test on the int32 codes fails exactly the values that
// ln_float_code's float64 test fails. The codes of lanes outside the row are 0 (0·inv = 0). Steps as
// float_row_codes_each's (row_codes_simd.h): two fewer compares and no VRNDSCALEPD than its float64 form.
template <class Step>
MNQ_TARGET_AVX512 bool wide_float_codes(const float* x, int64_t cols, double inv, i64 lo, i64 hi, int32_t* q,
                                        const Step& step) {
  constexpr int kNearest = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  const __m512d vinv = _mm512_set1_pd(inv);
  const __m512i vlo = _mm512_set1_epi32(static_cast<int32_t>(lo)), vhi = _mm512_set1_epi32(static_cast<int32_t>(hi));
  __mmask16 bad = 0;
  for_each_step16(cols, [&](int64_t j, __mmask16 k) MNQ_TARGET_AVX512 {
    const __m512 xv = load16_ps(k, x + j);
    const __m512d d0 = _mm512_mul_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(xv)), vinv);
    const __m512d d1 = _mm512_mul_pd(
        _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(xv), 1))), vinv);
    const __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvt_roundpd_epi32(d0, kNearest)),
                                         _mm512_cvt_roundpd_epi32(d1, kNearest), 1);
    bad |= _mm512_mask_cmplt_epi32_mask(k, v, vlo) | _mm512_mask_cmpgt_epi32_mask(k, v, vhi);
    _mm512_mask_storeu_epi32(q + j, k, v);
    step(v, k, j);
  });
  return bad == 0;
}

MNQ_TARGET_AVX512 bool load_row(const LnRowIn& in, int64_t cols, i64 lo, i64 hi, int32_t* q, i64& sum, i64& sumsq) {
  __m512i s1 = _mm512_setzero_si512(), s2 = _mm512_setzero_si512();
  const bool sum32 = cols <= kSum32Cols;
  if (in.q != nullptr) {
    const __m512i vlo = _mm512_set1_epi32(static_cast<int32_t>(lo)), vhi = _mm512_set1_epi32(static_cast<int32_t>(hi));
    __mmask16 bad = 0;
    for_each_step16(cols, [&](int64_t j, __mmask16 k) MNQ_TARGET_AVX512 {
      const __m512i v = load16_epi32(k, in.q + j);
      bad |= _mm512_mask_cmplt_epi32_mask(k, v, vlo) | _mm512_mask_cmpgt_epi32_mask(k, v, vhi);
      accumulate(v, sum32, s1, s2);  // a code outside [lo, hi] fails the row, whatever the sums
    });
    sum = total(s1, sum32);
    sumsq = _mm512_reduce_add_epi64(s2);
    return bad == 0;
  }
  // Float values: the codes by row_codes_simd.h (certified float32, else float64), summed as they are made.
  const bool small = lo >= -(i64(1) << 18) && hi <= (i64(1) << 18);  // I-LayerNorm's 16-bit codes, not I-BERT's
  if (!small) {
    const bool ok = wide_float_codes(in.x, cols, in.inv_scale, lo, hi, q, Moments{sum32, s1, s2});
    sum = total(s1, sum32);
    sumsq = _mm512_reduce_add_epi64(s2);
    return ok;
  }
  const bool ok = float_row_codes_each(in.x, cols, ScalarInv{in.inv_scale}, lo, hi, q, Moments{sum32, s1, s2}, small);
  sum = total(s1, sum32);
  sumsq = _mm512_reduce_add_epi64(s2);
  return ok;
}

MNQ_TARGET_AVX512 void shift_sums(const int32_t* q, int32_t mean, int64_t cols, int s, i64& below, i64& at) {
  const __m512i vm = _mm512_set1_epi32(mean);
  const __m128i sb = _mm_cvtsi32_si128(s - 1), sa = _mm_cvtsi32_si128(s);
  __m512i b = _mm512_setzero_si512(), a = _mm512_setzero_si512();
  for_each_step16(cols, [&](int64_t j, __mmask16 k) MNQ_TARGET_AVX512 {
    const __m512i y = _mm512_maskz_sub_epi32(k, load16_epi32(k, q + j), vm);  // |y| ≤ 2^22; 0 past the row
    accumulate_sq(_mm512_sra_epi32(y, sb), b);  // floor(y / 2^(s−1))
    accumulate_sq(_mm512_sra_epi32(y, sa), a);
  });
  below = _mm512_reduce_add_epi64(b);
  at = _mm512_reduce_add_epi64(a);
}

MNQ_TARGET_AVX512 i64 shift_sum(const int32_t* q, int32_t mean, int64_t cols, int s) {
  const __m512i vm = _mm512_set1_epi32(mean);
  const __m128i sa = _mm_cvtsi32_si128(s);
  __m512i a = _mm512_setzero_si512();
  for_each_step16(cols, [&](int64_t j, __mmask16 k) MNQ_TARGET_AVX512 {
    accumulate_sq(_mm512_sra_epi32(_mm512_maskz_sub_epi32(k, load16_epi32(k, q + j), vm), sa), a);
  });
  return _mm512_reduce_add_epi64(a);
}

MNQ_TARGET_AVX512 void std8(const i64* var, i64* k, i64* f) {
  constexpr int kTrunc = _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC;
  const __m512d v = _mm512_cvtepi64_pd(_mm512_loadu_si512(var));
  // k_i = g(k_(i−1)) depends on k_(i−1) alone, so once k_i = k_(i−2) in every lane the sequence repeats with period
  // 1 or 2 from there: k_10 is k_i when 10 − i is even, else k_(i−1). The iteration usually settles (at ⌊√var⌋, or
  // alternating with ⌊√var⌋ + 1) after 4–6 of its 10 steps, and each step is a dependent vector division (~23
  // cycles of latency on some cores).
  __m512d before = _mm512_setzero_pd(), prev = _mm512_set1_pd(65536.0), kk = prev;
  for (int i = 1; i <= 10; ++i) {
    const __m512d q = _mm512_roundscale_pd(_mm512_div_pd(v, prev), kTrunc);
    kk = _mm512_roundscale_pd(_mm512_mul_pd(_mm512_add_pd(prev, q), _mm512_set1_pd(0.5)), kTrunc);
    if (i >= 2 && _mm512_cmp_pd_mask(kk, before, _CMP_NEQ_UQ) == 0) {
      if ((10 - i) % 2 != 0) kk = prev;
      break;
    }
    before = prev;
    prev = kk;
  }
  _mm512_storeu_si512(k, _mm512_cvtpd_epi64(kk));
  if (f != nullptr) _mm512_storeu_si512(f, _mm512_cvttpd_epi64(_mm512_div_pd(_mm512_set1_pd(2147483647.0), kk)));
}

MNQ_TARGET_AVX512 void out_row(const int32_t* q, int32_t mean, int64_t cols, LnFactor f, const i64* bias,
                               const LnRowOut& out) {
  const __m512i vm = _mm512_set1_epi32(mean);
  const __m512i half = _mm512_set1_epi64(f.half), odd = _mm512_set1_epi64(f.odd_mask);
  int64_t* const code = out.code;  // locals: the int64 stores could alias the struct's members
  float* const value = out.value;
  const double* const s_out = out.s_out;
  // f = 2·half + odd below 2^31 (every row but a near-constant I-BERT one, std = 1) fits a signed 32-bit lane:
  // then yn = floor(y·f / 2) is one 32×32→64-bit product shifted right (|y·f| < 2^53 exact in int64).
  const i64 f_full = 2 * static_cast<i64>(f.half) + (f.odd_mask & 1);
  const bool narrow = f_full < (i64(1) << 31);
  const __m512i vf = _mm512_set1_epi64(narrow ? f_full : 0);
  if (value != nullptr && out.bias_m != nullptr) {  // ln_bias_magic's form (layernorm_simd.h)
    constexpr int kDown = _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC;
    const __m512d fh = _mm512_set1_pd(static_cast<double>(f_full) * 0.5), magic = _mm512_set1_pd(kBiasMagic);
    const double* const bias_m = out.bias_m;
    // 16 codes a step without masks (one 512-bit load and subtraction, two float64 halves), the tail masked by 8s.
    int64_t j = 0;
    for (; j + 16 <= cols; j += 16) {
      const __m512i y = _mm512_sub_epi32(_mm512_loadu_si512(q + j), vm);
      const __m512d y0 = _mm512_cvtepi32_pd(_mm512_castsi512_si256(y));
      const __m512d y1 = _mm512_cvtepi32_pd(_mm512_extracti64x4_epi64(y, 1));
      const __m512d r0 = _mm512_fmadd_round_pd(y0, fh, _mm512_loadu_pd(bias_m + j), kDown);
      const __m512d r1 = _mm512_fmadd_round_pd(y1, fh, _mm512_loadu_pd(bias_m + j + 8), kDown);
      _mm256_storeu_ps(value + j, _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_sub_pd(r0, magic), _mm512_loadu_pd(s_out + j))));
      _mm256_storeu_ps(value + j + 8,
                       _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_sub_pd(r1, magic), _mm512_loadu_pd(s_out + j + 8))));
    }
    for (; j < cols; j += 8) {
      const __mmask8 k = lanes8(cols - j);
      const __m512d y = _mm512_cvtepi32_pd(_mm256_sub_epi32(_mm256_maskz_loadu_epi32(k, q + j), _mm512_castsi512_si256(vm)));
      const __m512d r = _mm512_fmadd_round_pd(y, fh, _mm512_maskz_loadu_pd(k, bias_m + j), kDown);
      const __m512d d = _mm512_mul_pd(_mm512_sub_pd(r, magic), _mm512_maskz_loadu_pd(k, s_out + j));
      _mm256_mask_storeu_ps(value + j, k, _mm512_cvtpd_ps(d));
    }
    return;
  }
  // y·half + (floor(y / 2) & odd_mask) + bias_int[c] (ln_affine_out): |y| ≤ 2^22, half ≤ 2^30
  auto code_of = [&](__m512i y, __m512i b) MNQ_TARGET_AVX512 {
    const __m512i yn = narrow ? _mm512_srai_epi64(_mm512_mul_epi32(y, vf), 1)
                              : _mm512_add_epi64(_mm512_mul_epi32(y, half), _mm512_and_si512(_mm512_srai_epi64(y, 1), odd));
    return _mm512_add_epi64(yn, b);
  };
  int64_t j = 0;
  if (code != nullptr) {  // 16 codes a step without masks (the float form below is the rare one: no ln_bias_magic)
    for (; j + 16 <= cols; j += 16) {
      const __m512i y = _mm512_sub_epi32(_mm512_loadu_si512(q + j), vm);
      const __m512i y0 = _mm512_cvtepi32_epi64(_mm512_castsi512_si256(y));
      const __m512i y1 = _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(y, 1));
      _mm512_storeu_si512(code + j, code_of(y0, _mm512_loadu_si512(bias + j)));
      _mm512_storeu_si512(code + j + 8, code_of(y1, _mm512_loadu_si512(bias + j + 8)));
    }
  }
  for (; j < cols; j += 8) {
    const __mmask8 k = lanes8(cols - j);
    const __m256i qv = _mm256_maskz_loadu_epi32(k, q + j);
    const __m512i y = _mm512_cvtepi32_epi64(_mm256_sub_epi32(qv, _mm512_castsi512_si256(vm)));
    const __m512i v = code_of(y, _mm512_maskz_loadu_epi64(k, bias + j));
    if (code != nullptr) {
      _mm512_mask_storeu_epi64(code + j, k, v);
    } else {
      const __m512d d = _mm512_mul_pd(_mm512_cvtepi64_pd(v), _mm512_maskz_loadu_pd(k, s_out + j));
      _mm256_mask_storeu_ps(value + j, k, _mm512_cvtpd_ps(d));
    }
  }
}
#endif

}  // namespace

bool ln_load_row(const LnRowIn& in, int64_t cols, i64 lo, i64 hi, int32_t* q, i64& sum, i64& sumsq) {
#if defined(MNQ_HAVE_X86_SIMD)
  return load_row(in, cols, lo, hi, q, sum, sumsq);
#else
  return false;
#endif
}

void ln_shift_sums(const int32_t* q, int32_t mean, int64_t cols, int s, i64& below, i64& at) {
#if defined(MNQ_HAVE_X86_SIMD)
  shift_sums(q, mean, cols, s, below, at);
#endif
}

i64 ln_shift_sum(const int32_t* q, int32_t mean, int64_t cols, int s) {
#if defined(MNQ_HAVE_X86_SIMD)
  return shift_sum(q, mean, cols, s);
#else
  return 0;
#endif
}

void ilayernorm_std8(const i64* var, i64* k, i64* f) {
#if defined(MNQ_HAVE_X86_SIMD)
  std8(var, k, f);
#endif
}

void ln_out_row(const int32_t* q, int32_t mean, int64_t cols, LnFactor f, const i64* bias_int, const LnRowOut& out) {
#if defined(MNQ_HAVE_X86_SIMD)
  out_row(q, mean, cols, f, bias_int, out);
#endif
}

bool ln_bias_magic(const i64* bias_int, int64_t cols, double* bias_m) {
  int bad = 0;
  for (int64_t c = 0; c < cols; ++c) {
    const i64 b = bias_int[c];
    bad |= (b > (i64(1) << 50)) | (b < -(i64(1) << 50));
    bias_m[c] = static_cast<double>(b) + kBiasMagic;  // exact for |b| ≤ 2^51: an integer in (2^52, 2^53)
  }
  return bad == 0;
}

namespace {

// ln_affine_channel without branches (so that the loop vectorizes): the same quotients, floor and tests.
constexpr double kMaxBiasInt = static_cast<double>(kernels::kLnMaxBiasInt);

template <class G, class B>
bool affine_consts(const G* g, const B* b, int64_t cols, double sy, i64* bias_int, double* s_out) {
  int bad = 0;
  for (int64_t c = 0; c < cols; ++c) {
    const double gamma = static_cast<double>(g[c]), beta = static_cast<double>(b[c]);  // float32 widens exactly
    const double bi = std::floor((beta / gamma) / sy);
    const bool ok = (gamma - gamma == 0.0) & (gamma != 0.0) & (std::fabs(bi) <= kMaxBiasInt);
    bias_int[c] = static_cast<i64>(ok ? bi : 0.0);
    s_out[c] = sy * gamma;
    bad |= !ok;
  }
  return bad == 0;
}

template <class G>
bool affine_consts_g(const G* g, const float* b32, const double* b64, int64_t cols, double sy, i64* bias_int,
                     double* s_out) {
  return b32 != nullptr ? affine_consts(g, b32, cols, sy, bias_int, s_out)
                        : affine_consts(g, b64, cols, sy, bias_int, s_out);
}

}  // namespace

bool ln_affine_consts(const float* g32, const double* g64, const float* b32, const double* b64, int64_t cols,
                      double sy, i64* bias_int, double* s_out) {
  return g32 != nullptr ? affine_consts_g(g32, b32, b64, cols, sy, bias_int, s_out)
                        : affine_consts_g(g64, b32, b64, cols, sy, bias_int, s_out);
}

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
