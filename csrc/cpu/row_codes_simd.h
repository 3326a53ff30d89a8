// The first pass of the row-wise AVX-512 paths (softmaxes, ShiftGELU): a row's codes with their max and min, 16
// lanes per step, the row's tail masked. int32 codes are checked against [lo, hi] in place; float32 values become
// codes as kernels/io.h's FloatIn defines them, q = rint(vd) with vd = fl64(x·inv), inv = fl64(1/S), written to a
// row buffer (a NaN or a code outside [lo, hi] fails).
//
// Float values first try float32, 16 lanes: p = fl32(x·r), r = fl32(inv) (a normal float32 when inv ∈ [2^−100,
// 2^100]). Then |p − x·inv| ≤ (2^−23 + 2^−48)·|x·inv| + 2^−150 (two float32 roundings, one possible underflow) and
// |vd − x·inv| ≤ 2^−53·|x·inv|, so |p − vd| ≤ E = 2^−22·|p| + 2^−140. As in quant_simd.h: for |p| < 2^18, with
// e = p − rint(p) (exact), the computed u = fl(2^−21·|p| + |e|) < 1/2 implies that p is farther than E from every
// half-integer, so rint(p) = rint(vd). A 16-lane step whose lanes all pass uses rint(p); any other step
// (a near-tie, a large code, NaN, ±inf) takes the float64 form, the definition's own operations.
// Also here: the softmaxes' table pass (row_table_exps), shared by I-BERT softmax and Shiftmax.
// Include only from files that compile these paths (simd.h).
#pragma once

#include <cmath>
#include <cstdint>

#include "csrc/cpu/simd.h"

#if defined(MNQ_HAVE_X86_SIMD)
namespace mnq {
namespace ops {
namespace cpu {

inline __mmask16 simd_lanes16(int64_t n) { return n >= 16 ? 0xffff : static_cast<__mmask16>((1u << n) - 1); }

// [lo, hi] within int32. False when a code lies outside it.
MNQ_TARGET_AVX512 inline bool int_row_max_min(const int32_t* q, int64_t cols, int64_t lo, int64_t hi, int32_t& mx,
                                              int32_t& mn) {
  const __m512i vlo = _mm512_set1_epi32(static_cast<int32_t>(lo)), vhi = _mm512_set1_epi32(static_cast<int32_t>(hi));
  __m512i vmax = _mm512_set1_epi32(INT32_MIN), vmin = _mm512_set1_epi32(INT32_MAX);
  __mmask16 bad = 0;
  for (int64_t j = 0; j < cols; j += 16) {
    const __mmask16 k = simd_lanes16(cols - j);
    const __m512i v = _mm512_maskz_loadu_epi32(k, q + j);
    bad |= _mm512_mask_cmplt_epi32_mask(k, v, vlo) | _mm512_mask_cmpgt_epi32_mask(k, v, vhi);
    vmax = _mm512_mask_max_epi32(vmax, k, vmax, v);
    vmin = _mm512_mask_min_epi32(vmin, k, vmin, v);
  }
  mx = _mm512_reduce_max_epi32(vmax);
  mn = _mm512_reduce_min_epi32(vmin);
  return bad == 0;
}

// The row max alone (the softmaxes' first pass), with the range test only when [lo, hi] is narrower than int32.
MNQ_TARGET_AVX512 inline bool int_row_max(const int32_t* q, int64_t cols, int64_t lo, int64_t hi, int32_t& mx) {
  if (lo > INT32_MIN || hi < INT32_MAX) {
    int32_t mn = 0;
    return int_row_max_min(q, cols, lo, hi, mx, mn);
  }
  __m512i vmax = _mm512_set1_epi32(INT32_MIN);
  for (int64_t j = 0; j < cols; j += 16) {
    const __mmask16 k = simd_lanes16(cols - j);
    vmax = _mm512_mask_max_epi32(vmax, k, vmax, _mm512_maskz_loadu_epi32(k, q + j));
  }
  mx = _mm512_reduce_max_epi32(vmax);
  return true;
}

// The scale of the values: one 1/S for the row (ScalarInv), or 1/S[c] per column (ChannelInv: PTF LayerNorm's
// per-channel scales; r the float32 copies, each a normal float32 in [2^−100, 2^100], checked by the caller).
struct ScalarInv {
  double inv;
  MNQ_TARGET_AVX512 bool f32_ok() const {
    const double a = inv < 0 ? -inv : inv;
    return a >= 0x1p-100 && a <= 0x1p100;
  }
  MNQ_TARGET_AVX512 __m512 r32(int64_t, __mmask16) const { return _mm512_set1_ps(static_cast<float>(inv)); }
  MNQ_TARGET_AVX512 __m512d inv64(int64_t, __mmask8) const { return _mm512_set1_pd(inv); }
};
struct ChannelInv {
  const double* inv;  // [cols] 1/S[c]
  const float* r;     // [cols] fl32(1/S[c])
  MNQ_TARGET_AVX512 bool f32_ok() const { return true; }
  MNQ_TARGET_AVX512 __m512 r32(int64_t j, __mmask16 k) const { return _mm512_maskz_loadu_ps(k, r + j); }
  MNQ_TARGET_AVX512 __m512d inv64(int64_t j, __mmask8 k) const { return _mm512_maskz_loadu_pd(k, inv + j); }
};

// q[j] = rint(x[j]·inv[j]) (float64) for j < cols, calling step(v, k, j) on each 16-lane vector of codes v at column
// j (lanes k of it in the row; the others are 0); q == nullptr: the codes are only passed to step. False when a
// value has no code in [lo, hi]. try_f32 = false skips the float32 attempt (for codes that mostly exceed its 2^18
// limit, such as I-BERT LayerNorm's 22-bit ones, where it would be computed and discarded at every step).
template <class Step, class Inv = ScalarInv>
MNQ_TARGET_AVX512 inline bool float_row_codes_each(const float* x, int64_t cols, const Inv& scale, int64_t lo,
                                                   int64_t hi, int32_t* q, const Step& step, bool try_f32 = true) {
  const __m512d dlo = _mm512_set1_pd(static_cast<double>(lo)), dhi = _mm512_set1_pd(static_cast<double>(hi));
  const bool f32 = try_f32 && scale.f32_ok();
  // The float32 path certifies |p| < lim: below 2^18 (the proof's range) and within (lo − 1/2, hi + 1/2), so that
  // its codes rint(p) lie in [lo, hi] without a test of their own (a value beyond takes the float64 form, which
  // tests it).
  const double lim_d = std::fmin(262144.0, std::fmin(static_cast<double>(hi), -static_cast<double>(lo)) + 0.5);
  const __m512 lim = _mm512_set1_ps(static_cast<float>(lim_d));  // exact: an integer + 1/2 below 2^18, or 2^18
  const __m512 abs_mask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
  constexpr int kNearest = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  __mmask16 bad = 0;
  for (int64_t j = 0; j < cols; j += 16) {
    const __mmask16 k = simd_lanes16(cols - j);
    const __m512 xv = _mm512_maskz_loadu_ps(k, x + j);
    __m512i v;
    bool done = false;
    if (f32) {
      // e = p − rint(p) exactly (vreduceps: one operation where vrndscaleps is two, and the test needs e anyway).
      // The margin 2^−21·|p| (simd.h rint_margin_lanes) exceeds quant_simd.h's E = 2^−22·|p| + 2^−140 for
      // |p| ≥ 2^−117 (below, |e| = |p| and the distance is almost 1/2).
      const __m512 p = _mm512_mul_ps(xv, scale.r32(j, k));
      const __m512 e = _mm512_reduce_ps(p, kNearest);
      const __mmask16 good =
          rint_margin_lanes(p, e, 0x1p-21f) & _mm512_cmp_ps_mask(_mm512_and_ps(p, abs_mask), lim, _CMP_LT_OQ);
      if (good == 0xffff) {  // every lane certified: the codes are rint(p) = p − e, in [lo, hi]
        v = _mm512_cvtps_epi32(_mm512_sub_ps(p, e));
        done = true;
      }
    }
    if (!done) {
      const __m512d v0 = _mm512_roundscale_pd(
          _mm512_mul_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(xv)), scale.inv64(j, static_cast<__mmask8>(k))),
          kNearest);
      const __m512d v1 = _mm512_roundscale_pd(
          _mm512_mul_pd(_mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(xv), 1))),
                        scale.inv64(j + 8, static_cast<__mmask8>(k >> 8))),
          kNearest);
      const unsigned ok0 = _mm512_cmp_pd_mask(v0, dlo, _CMP_GE_OQ) & _mm512_cmp_pd_mask(v0, dhi, _CMP_LE_OQ);
      const unsigned ok1 = _mm512_cmp_pd_mask(v1, dlo, _CMP_GE_OQ) & _mm512_cmp_pd_mask(v1, dhi, _CMP_LE_OQ);
      bad |= k & static_cast<__mmask16>(~(ok0 | (ok1 << 8)));
      v = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtpd_epi32(v0)), _mm512_cvtpd_epi32(v1), 1);
    }
    if (q != nullptr) _mm512_mask_storeu_epi32(q + j, k, v);
    step(v, k, j);
  }
  return bad == 0;
}

// The running max and min of the codes (float_row_codes).
struct RowMaxMin {
  __m512i& vmax;
  __m512i& vmin;
  MNQ_TARGET_AVX512 void operator()(__m512i v, __mmask16 k, int64_t) const {
    vmax = _mm512_mask_max_epi32(vmax, k, vmax, v);
    vmin = _mm512_mask_min_epi32(vmin, k, vmin, v);
  }
};

// The running max of the codes (float_row_codes_max).
struct RowMax {
  __m512i& vmax;
  MNQ_TARGET_AVX512 void operator()(__m512i v, __mmask16 k, int64_t) const {
    vmax = _mm512_mask_max_epi32(vmax, k, vmax, v);
  }
};

// float_row_codes_each with the codes' max (the softmaxes' first pass).
MNQ_TARGET_AVX512 inline bool float_row_codes_max(const float* x, int64_t cols, double inv_scale, int64_t lo,
                                                  int64_t hi, int32_t* q, int32_t& mx) {
  __m512i vmax = _mm512_set1_epi32(INT32_MIN);
  const bool ok = float_row_codes_each(x, cols, ScalarInv{inv_scale}, lo, hi, q, RowMax{vmax});
  mx = _mm512_reduce_max_epi32(vmax);
  return ok;
}

// float_row_codes_each with the codes' max and min.
MNQ_TARGET_AVX512 inline bool float_row_codes(const float* x, int64_t cols, double inv_scale, int64_t lo, int64_t hi,
                                              int32_t* q, int32_t& mx, int32_t& mn) {
  __m512i vmax = _mm512_set1_epi32(INT32_MIN), vmin = _mm512_set1_epi32(INT32_MAX);
  const bool ok = float_row_codes_each(x, cols, ScalarInv{inv_scale}, lo, hi, q, RowMaxMin{vmax, vmin});
  mx = _mm512_reduce_max_epi32(vmax);
  mn = _mm512_reduce_min_epi32(vmin);
  return ok;
}

// Pass 2 of the table softmaxes (I-BERT softmax, Shiftmax): e[j] = tab[lim − min(m − q[j], lim)] for j < cols
// (m − q taken modulo 2^32: the exact difference of int32 codes with m ≥ q) and Σe, for tables of values in
// [0, 2^31). e may be q (in place).
MNQ_TARGET_AVX512 inline int64_t row_table_exps(const int32_t* q, int64_t cols, int32_t m, const int32_t* tab,
                                                uint32_t lim, int32_t* e) {
  const __m512i vm = _mm512_set1_epi32(m), vlim = _mm512_set1_epi32(static_cast<int32_t>(lim));
  __m512i s = _mm512_setzero_si512();
  for (int64_t j = 0; j < cols; j += 16) {
    const __mmask16 k = simd_lanes16(cols - j);
    const __m512i d = _mm512_min_epu32(_mm512_sub_epi32(vm, _mm512_maskz_loadu_epi32(k, q + j)), vlim);
    const __m512i ev = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), k, _mm512_sub_epi32(vlim, d), tab, 4);
    _mm512_mask_storeu_epi32(e + j, k, ev);
    s = _mm512_add_epi64(s, _mm512_add_epi64(_mm512_cvtepi32_epi64(_mm512_castsi512_si256(ev)),
                                             _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(ev, 1))));
  }
  return _mm512_reduce_add_epi64(s);
}

// Passes 1 and 2 of the table softmaxes: the row max of int32 codes q (read in place) or of the codes of float values
// x (1/S = inv, into e first), then row_table_exps into e, its sum in s. Exactly one of q, x is set. False when a code
// lies outside [lo, hi] (or a float has no code).
MNQ_TARGET_AVX512 inline bool row_table_softmax_exps(const int32_t* q, const float* x, double inv, int64_t cols,
                                                     int64_t lo, int64_t hi, const int32_t* tab, uint32_t lim,
                                                     int32_t* e, int64_t& s) {
  int32_t mx = 0;
  const bool ok = q != nullptr ? int_row_max(q, cols, lo, hi, mx) : float_row_codes_max(x, cols, inv, lo, hi, e, mx);
  if (!ok) return false;
  s = row_table_exps(q != nullptr ? q : e, cols, mx, tab, lim, e);
  return true;
}

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
#endif
