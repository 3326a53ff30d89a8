// The row epilogues of the deploy engine's fused CPU paths (int_fused.cpp, int_attention.cpp; compiled with
// -march=native): the requantization kernels/int_requant.h describes, 16 values per step.
//
//   out[j] = clamp(round((in[j] + bias[j])·m_j / 2^k_j), lo, hi)        round: half to even (SPEC §0)
//
// The product v·m is taken exactly in 64 bits with |v|, |m| < 2^31 (so |p| < 2^62) and rounded by
// kernels::round_shr_fast ((p + 2^(k−1) − 1 + ((p >> k) & 1)) >> k, proved exact there for 1 ≤ k ≤ 62). With
// AVX-512 the 16 values sit in int32 lanes: vpmuldq multiplies the low dword of each qword (the even values), and
// again after a 32-bit shift (the odd ones), giving two vectors of eight exact int64 products; each is rounded
// and clamped in int64 lanes (a rounded value may exceed int32 before the clamp), and the odd results go back into
// the high dwords (blend), so a step loads 16 codes with one load and stores them with one store. Values that do
// come as int64 (I-ViT / I-BERT LayerNorm codes reach 2^30 + β) take 64-bit lanes (row16 of int64 below); a step
// holding a value beyond 2^32 goes value by value, with the exact 128-bit kernels/common.h requant. Elsewhere (no
// AVX-512) the scalar loop computes the same.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "csrc/deploy/int_layers.h"
#include "kernels/common.h"
#include "kernels/int_requant.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512DQ__)
#include <immintrin.h>
#define MNQ_EPILOGUE_AVX512 1
#endif

namespace mnq {
namespace deploy {
namespace epilogue {

constexpr int64_t kFast = int64_t(1) << 31;  // |v| bound of the fast path

// A Requant's pairs as int32 (every fusable() pair: |m| < 2^31, 1 ≤ k ≤ 62), one or one per channel.
struct Pairs {
  std::vector<int32_t> m, k;
  bool per_channel = false;
  int64_t lo = 0, hi = 0;  // the clamp range of the output codes
};

inline Pairs pairs_of(const Requant& r) {
  Pairs p;
  const int64_t n = r.m.numel();
  const int64_t* m = r.m.data_ptr<int64_t>();
  const int64_t* k = r.k.data_ptr<int64_t>();
  p.m.assign(m, m + n);
  p.k.assign(k, k + n);
  p.per_channel = n > 1;
  p.lo = -(int64_t(1) << (r.bits - 1));
  p.hi = (int64_t(1) << (r.bits - 1)) - 1;
  return p;
}

// Values j0 .. j0+n−1 one by one (with bias: the caller keeps in + bias in int32, see row): the 64-bit formula
// where |v| < 2^31, the exact 128-bit requant (kernels/common.h) beyond.
template <typename TI, typename TO>
void scalar(const TI* in, const int32_t* bias, const Pairs& r, int64_t j0, int64_t n, TO* out) {
  for (int64_t j = j0; j < j0 + n; ++j) {
    const int64_t v = int64_t(in[j]) + (bias ? bias[j] : 0);
    const size_t c = r.per_channel ? size_t(j) : 0;
    const int64_t q = v < kFast && v > -kFast ? kernels::round_shr_fast(v * r.m[c], r.k[c])
                                              : kernels::requant(v, kernels::Dyadic{r.m[c], int(r.k[c])});
    out[j] = static_cast<TO>(std::clamp(q, r.lo, r.hi));
  }
}

#ifdef MNQ_EPILOGUE_AVX512
// GCC 12's AVX-512 intrinsics start some results from _mm512_undefined (GCC PR 105593), which -O3 reports as
// maybe-uninitialized: a false positive, silenced for these helpers only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
inline __mmask16 tail16(int64_t left) { return left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1); }

// round_shr_fast of eight int64 lanes by k (int64 lanes).
inline __m512i round_shr8(__m512i p, __m512i k) {
  const __m512i one = _mm512_set1_epi64(1);
  const __m512i half_m1 = _mm512_sub_epi64(_mm512_sllv_epi64(one, _mm512_sub_epi64(k, one)), one);
  const __m512i odd = _mm512_and_si512(_mm512_srav_epi64(p, k), one);
  return _mm512_srav_epi64(_mm512_add_epi64(_mm512_add_epi64(p, half_m1), odd), k);
}

struct Wide16 {
  __m512i even, odd;  // int64 lanes: the results of values 0, 2, …, 14 and of 1, 3, …, 15
};

// round(v·m / 2^k) of 16 int32 lanes (m, k int32 lanes), unclamped.
inline Wide16 scale16(__m512i v, __m512i m, __m512i k) {
  const __m512i low = _mm512_set1_epi64(0xffffffffLL);
  return {round_shr8(_mm512_mul_epi32(v, m), _mm512_and_si512(k, low)),
          round_shr8(_mm512_mul_epi32(_mm512_srli_epi64(v, 32), _mm512_srli_epi64(m, 32)), _mm512_srli_epi64(k, 32))};
}

// clamp to [lo, hi] (int64 lanes) and back to 16 int32 lanes in order.
inline __m512i clamp_pack(const Wide16& q, __m512i lo, __m512i hi) {
  const __m512i e = _mm512_max_epi64(_mm512_min_epi64(q.even, hi), lo);
  const __m512i o = _mm512_max_epi64(_mm512_min_epi64(q.odd, hi), lo);
  return _mm512_mask_blend_epi32(__mmask16(0xAAAA), e, _mm512_slli_epi64(o, 32));
}

// 16 values as int32 lanes.
inline __m512i load16(const int8_t* p, __mmask16 m) { return _mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, p)); }
inline __m512i load16(const int32_t* p, __mmask16 m) { return _mm512_maskz_loadu_epi32(m, p); }
inline void store16(int8_t* o, __mmask16 m, __m512i q) { _mm_mask_storeu_epi8(o, m, _mm512_cvtepi32_epi8(q)); }
inline void store16(int32_t* o, __mmask16 m, __m512i q) { _mm512_mask_storeu_epi32(o, m, q); }

template <bool kPerChannel, typename TI, typename TO>
void row16(const TI* in, const int32_t* bias, const Pairs& r, int64_t n, TO* out) {
  const __m512i lo = _mm512_set1_epi64(r.lo), hi = _mm512_set1_epi64(r.hi);
  const __m512i m0 = _mm512_set1_epi32(r.m[0]), k0 = _mm512_set1_epi32(r.k[0]);
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 mask = tail16(n - j);
    __m512i v = load16(in + j, mask);
    if (bias) v = _mm512_add_epi32(v, _mm512_maskz_loadu_epi32(mask, bias + j));
    const __m512i m = kPerChannel ? _mm512_maskz_loadu_epi32(mask, r.m.data() + j) : m0;
    const __m512i k = kPerChannel ? _mm512_mask_loadu_epi32(k0, mask, r.k.data() + j) : k0;
    store16(out + j, mask, clamp_pack(scale16(v, m, k), lo, hi));
  }
}
// int64 input (LayerNorm codes): |v| < 2^32 and |m| < 2^31 keep p = v·m below 2^63 (vpmullq, exact), and the
// rounding is taken without the + 2^(k−1) that could overflow there: floor f = p >> k, remainder p & (2^k − 1)
// against the half 2^(k−1), ties to the even f. A step with a larger value goes value by value (scalar).
inline __m512i round_half_even8(__m512i p, __m512i k) {
  const __m512i one = _mm512_set1_epi64(1);
  const __m512i half = _mm512_sllv_epi64(one, _mm512_sub_epi64(k, one));
  const __m512i f = _mm512_srav_epi64(p, k);
  const __m512i rem = _mm512_and_si512(p, _mm512_sub_epi64(_mm512_add_epi64(half, half), one));
  const __mmask8 up = _mm512_cmpgt_epi64_mask(rem, half) |
                      (_mm512_cmpeq_epi64_mask(rem, half) & _mm512_test_epi64_mask(f, one));
  return _mm512_mask_add_epi64(f, up, f, one);
}

template <bool kPerChannel, typename TO>
void row16(const int64_t* in, const int32_t*, const Pairs& r, int64_t n, TO* out) {
  const __m512i lo = _mm512_set1_epi64(r.lo), hi = _mm512_set1_epi64(r.hi);
  const __m512i m0 = _mm512_set1_epi64(r.m[0]), k0 = _mm512_set1_epi64(r.k[0]);
  const __m512i limit = _mm512_set1_epi64((int64_t(1) << 32) - 1);
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 mask = tail16(n - j);
    const __mmask8 ma = __mmask8(mask), mb = __mmask8(mask >> 8);
    const __m512i a = _mm512_maskz_loadu_epi64(ma, in + j), b = _mm512_maskz_loadu_epi64(mb, in + j + 8);
    if (_mm512_cmpgt_epi64_mask(_mm512_abs_epi64(a), limit) | _mm512_cmpgt_epi64_mask(_mm512_abs_epi64(b), limit)) {
      scalar(in, static_cast<const int32_t*>(nullptr), r, j, std::min<int64_t>(16, n - j), out);
      continue;
    }
    auto pair = [&](const std::vector<int32_t>& t, __m512i dflt, int64_t off, __mmask8 m) {
      return kPerChannel ? _mm512_mask_mov_epi64(dflt, m, _mm512_cvtepi32_epi64(_mm256_maskz_loadu_epi32(m, t.data() + j + off)))
                         : dflt;
    };
    const __m512i qa = round_half_even8(_mm512_mullo_epi64(a, pair(r.m, m0, 0, ma)), pair(r.k, k0, 0, ma));
    const __m512i qb = round_half_even8(_mm512_mullo_epi64(b, pair(r.m, m0, 8, mb)), pair(r.k, k0, 8, mb));
    const __m512i ca = _mm512_max_epi64(_mm512_min_epi64(qa, hi), lo), cb = _mm512_max_epi64(_mm512_min_epi64(qb, hi), lo);
    store16(out + j, mask, _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(ca)), _mm512_cvtepi64_epi32(cb), 1));
  }
}
#pragma GCC diagnostic pop
#endif

// One row: out[j] = clamp(requant(in[j] + bias[j])). bias (int32 [n] or null) only with int8 / int32 input whose
// sums the caller keeps below 2^31 (a non-wide IntLinear: K·2^7·2^7 + max|bias| < 2^31, int_layers.cpp).
template <typename TI, typename TO>
void row(const TI* in, const int32_t* bias, const Pairs& r, int64_t n, TO* out) {
  static_assert(sizeof(TI) <= 8 && sizeof(TO) <= 4, "epilogue::row: int8/int32/int64 in, int8/int32 out");
#ifdef MNQ_EPILOGUE_AVX512
  if (r.per_channel) {
    row16<true>(in, bias, r, n, out);
  } else {
    row16<false>(in, bias, r, n, out);
  }
#else
  scalar(in, bias, r, 0, n, out);
#endif
}

// One row of the fused residual add: out[j] = clamp(requant(q[j]) + requant(id[j], (m_id, k_id))), both per
// tensor; q int8 or int32, id int32.
template <typename TI, typename TO>
void add_row(const TI* q, const int32_t* id, const Pairs& r, int32_t m_id, int32_t k_id, int64_t n, TO* out) {
  static_assert(sizeof(TI) <= 4, "epilogue::add_row: int8 or int32 input");
#ifdef MNQ_EPILOGUE_AVX512
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC PR 105593, as above
  const __m512i lo = _mm512_set1_epi64(r.lo), hi = _mm512_set1_epi64(r.hi);
  const __m512i m = _mm512_set1_epi32(r.m[0]), k = _mm512_set1_epi32(r.k[0]);
  const __m512i mi = _mm512_set1_epi32(m_id), ki = _mm512_set1_epi32(k_id);
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 mask = tail16(n - j);
    const Wide16 a = scale16(load16(q + j, mask), m, k), b = scale16(_mm512_maskz_loadu_epi32(mask, id + j), mi, ki);
    store16(out + j, mask,
            clamp_pack(Wide16{_mm512_add_epi64(a.even, b.even), _mm512_add_epi64(a.odd, b.odd)}, lo, hi));
  }
#pragma GCC diagnostic pop
#else
  for (int64_t j = 0; j < n; ++j) {
    const int64_t v = kernels::round_shr_fast(int64_t(q[j]) * r.m[0], r.k[0]) +
                      kernels::round_shr_fast(int64_t(id[j]) * m_id, k_id);
    out[j] = static_cast<TO>(std::clamp(v, r.lo, r.hi));
  }
#endif
}

}  // namespace epilogue
}  // namespace deploy
}  // namespace mnq
