// I-BERT softmax's AVX-512 row path (ibert_softmax_simd.h).
#include "csrc/cpu/ibert_softmax_simd.h"

#include <cmath>

#include "csrc/cpu/prefetch.h"
#include "csrc/cpu/row_codes_simd.h"
#include "csrc/cpu/simd.h"
#include "kernels/io.h"

namespace mnq {
namespace ops {
namespace cpu {
namespace {

using kernels::i64;
using kernels::IbertSoftmaxParams;

#if defined(MNQ_HAVE_X86_SIMD)

// out = (e·f) >> shift for 16 lanes (0 ≤ e ≤ 32767, f < 2^32): the even lanes' products by VPMULUDQ as they are,
// the odd lanes' after moving them down; each result fits 32 bits.
MNQ_TARGET_AVX512 __m512i outs(__m512i e, __m512i f, __m128i shift) {
  const __m512i lo = _mm512_srl_epi64(_mm512_mul_epu32(e, f), shift);
  const __m512i hi = _mm512_srl_epi64(_mm512_mul_epu32(_mm512_srli_epi64(e, 32), f), shift);
  return _mm512_mask_blend_epi32(0xaaaa, lo, _mm512_slli_epi64(hi, 32));
}

// Whether float32(double(v)·s) = float32(v)·float32(s) exactly for every output code v of the row (0 ≤ v ≤ 2^16:
// e ≤ s, so e·f ≤ 2^32 and v ≤ 2^(32 − shift) with shift ≥ 16): s a power of two whose products with those v stay
// normal float32 numbers (2^−126 ≤ s and 2^16·s < 2^127); then v and s are exact in float32 and so is their product,
// and both sides are that product.
bool pow2_out_scale(double s) {
  int ex = 0;
  return std::frexp(s, &ex) == 0.5 && ex - 1 >= -126 && ex - 1 <= 110;
}

MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE void write(const int32_t* e, int64_t cols, i64 f, int shift,
                                                const IbertSoftmaxRowOut& out) {
  const __m512i vf = _mm512_set1_epi64(f);
  const __m128i sh = _mm_cvtsi32_si128(shift);
  const __m512d sc = _mm512_set1_pd(out.scale);
  int32_t* const code = out.code;
  float* const value = out.value;
  if (value != nullptr && shift >= 16 && pow2_out_scale(out.scale)) {  // FloatOut in float32 lanes
    const __m512 sc32 = _mm512_set1_ps(static_cast<float>(out.scale));
    for (int64_t j = 0; j < cols; j += 16) {
      const __mmask16 k = simd_lanes16(cols - j);
      const __m512i v = outs(_mm512_loadu_si512(e + j), vf, sh);  // e: padded (lanes past cols unused)
      _mm512_mask_storeu_ps(value + j, k, _mm512_mul_ps(_mm512_cvtepi32_ps(v), sc32));
    }
    return;
  }
  for (int64_t j = 0; j < cols; j += 16) {
    const __mmask16 k = simd_lanes16(cols - j);
    const __m512i v = outs(_mm512_loadu_si512(e + j), vf, sh);  // e: padded (lanes past cols unused)
    if (code != nullptr) {
      _mm512_mask_storeu_epi32(code + j, k, v);
    } else {  // FloatOut: float(double(v)·S)
      const __m256 a = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_cvtepi32_pd(_mm512_castsi512_si256(v)), sc));
      const __m256 b = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_cvtepi32_pd(_mm512_extracti64x4_epi64(v, 1)), sc));
      _mm512_mask_storeu_ps(value + j, k, _mm512_insertf32x8(_mm512_castps256_ps512(a), b, 1));
    }
  }
}

MNQ_TARGET_AVX512 bool rows_avx512(const IbertSoftmaxRowIn& in, const IbertSoftmaxParams& p, const int32_t* tab,
                                   uint32_t lim, const SoftmaxTable16* t16, int32_t* buf, const IbertSoftmaxRowOut& out,
                                   int64_t r0, int64_t r1, bool prefetch) {
  const int64_t bytes = p.cols * 4;  // int32 or float32, in and out
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t base = r * p.cols;
    if (prefetch && r + kPrefetchRows < r1) {  // prefetch.h
      const int64_t next = base + kPrefetchRows * p.cols;
      const IbertSoftmaxRowIn ni = in.at(next);
      const IbertSoftmaxRowOut no = out.at(next);
      prefetch_lines<false>(ni.q != nullptr ? static_cast<const void*>(ni.q) : ni.x, bytes);
      prefetch_lines<true>(no.code != nullptr ? static_cast<void*>(no.code) : no.value, bytes);
    }
    const IbertSoftmaxRowIn ri = in.at(base);
    const IbertSoftmaxRowOut ro = out.at(base);
    i64 s = 0;
    if (!row_table_softmax_exps(ri.q, ri.x, ri.inv_scale, p.cols, p.lo, p.hi, tab, lim, t16, buf, s)) return false;
    const i64 f = kernels::ibert_softmax_factor(s);
    if (f < (i64(1) << 32)) {
      write(buf, p.cols, f, p.c.out_shift, ro);
    } else {
      for (int64_t j = 0; j < p.cols; ++j) {
        const i64 v = kernels::ibert_softmax_out(buf[j], f, p.c);
        if (ro.code != nullptr) {
          kernels::IntOut<int32_t>{ro.code}.store(j, v);
        } else {
          kernels::FloatOut{ro.value, ro.scale}.store(j, v);
        }
      }
    }
  }
  return true;
}
#endif

}  // namespace

SoftmaxTable16::SoftmaxTable16(const int32_t* tab, uint32_t lim, int64_t cols) {
  uint32_t mx = 0;
  for (uint32_t i = 0; i < 256; ++i) {
    const uint32_t v = static_cast<uint32_t>(tab[lim - (i < lim ? i : lim)]);
    lo[i] = static_cast<uint16_t>(v & 0xffffu);
    hi[i] = static_cast<uint16_t>(v >> 16);
    wide = wide || hi[i] != 0;
    mx = v > mx ? v : mx;
  }
  sum32 = static_cast<unsigned __int128>(mx) * static_cast<uint64_t>(cols) < (static_cast<unsigned __int128>(1) << 32);
}

bool ibert_softmax_rows(const IbertSoftmaxRowIn& in, const IbertSoftmaxParams& p, const int32_t* tab, uint32_t lim,
                        const SoftmaxTable16* t16, int32_t* buf, const IbertSoftmaxRowOut& out, int64_t r0, int64_t r1,
                        bool prefetch) {
#if defined(MNQ_HAVE_X86_SIMD)
  return rows_avx512(in, p, tab, lim, t16, buf, out, r0, r1, prefetch);
#else
  return false;
#endif
}

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
