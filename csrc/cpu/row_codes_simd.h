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
// Also here: the softmaxes' table pass (row_table_exps; row_table16_exps for rows of d ≤ 255), shared by I-BERT
// softmax and Shiftmax, and the 16-bit register tables (Table16, Step32) it shares with ShiftGELU.
// Include only from files that compile these paths (simd.h).
#pragma once

#include <cmath>
#include <cstdint>

#include "csrc/cpu/ibert_softmax_simd.h"  // SoftmaxTable16
#include "csrc/cpu/simd.h"

#if defined(MNQ_HAVE_X86_SIMD)
namespace mnq {
namespace ops {
namespace cpu {

inline __mmask16 simd_lanes16(int64_t n) { return n >= 16 ? 0xffff : static_cast<__mmask16>((1u << n) - 1); }

// The 16-lane steps of a row of `cols` columns: step(j, k) at column j with the lanes k of the row — the whole steps
// with k = 0xffff, a constant once inlined (their loads through load16_* are then plain and no mask is made per step:
// on the Intel host of 2026-12-08 the per-step mask and masked accesses were ~7 scalar instructions per 8 lanes of the
// LayerNorm passes), then the tail's lanes.
template <class Step>
MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE void for_each_step16(int64_t cols, const Step& step) {
  int64_t j = 0;
  for (; j + 16 <= cols; j += 16) step(j, static_cast<__mmask16>(0xffff));
  if (j < cols) step(j, simd_lanes16(cols - j));
}

// 16 lanes at p for a step of for_each_step16: a plain load for a whole step, else the lanes k (zero beyond).
MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE __m512i load16_epi32(__mmask16 k, const int32_t* p) {
  return k == 0xffff ? _mm512_loadu_si512(p) : _mm512_maskz_loadu_epi32(k, p);
}
MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE __m512 load16_ps(__mmask16 k, const float* p) {
  return k == 0xffff ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(k, p);
}

// [lo, hi] within int32. False when a code lies outside it.
MNQ_TARGET_AVX512 inline bool int_row_max_min(const int32_t* q, int64_t cols, int64_t lo, int64_t hi, int32_t& mx,
                                              int32_t& mn) {
  const __m512i vlo = _mm512_set1_epi32(static_cast<int32_t>(lo)), vhi = _mm512_set1_epi32(static_cast<int32_t>(hi));
  __m512i vmax = _mm512_set1_epi32(INT32_MIN), vmin = _mm512_set1_epi32(INT32_MAX);
  __mmask16 bad = 0;
  for_each_step16(cols, [&](int64_t j, __mmask16 k) MNQ_TARGET_AVX512 {
    const __m512i v = load16_epi32(k, q + j);
    bad |= _mm512_mask_cmplt_epi32_mask(k, v, vlo) | _mm512_mask_cmpgt_epi32_mask(k, v, vhi);
    vmax = _mm512_mask_max_epi32(vmax, k, vmax, v);
    vmin = _mm512_mask_min_epi32(vmin, k, vmin, v);
  });
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
  for_each_step16(cols, [&](int64_t j, __mmask16 k)
                            MNQ_TARGET_AVX512 { vmax = _mm512_mask_max_epi32(vmax, k, vmax, load16_epi32(k, q + j)); });
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
// limit, such as I-BERT LayerNorm's 22-bit ones, where it would be computed and discarded at every step). padded:
// q has room for whole 16-lane steps (cols rounded up to 16), and the last step is stored whole too (0 past cols).
template <class Step, class Inv = ScalarInv>
MNQ_TARGET_AVX512 inline bool float_row_codes_each(const float* x, int64_t cols, const Inv& scale, int64_t lo,
                                                   int64_t hi, int32_t* q, const Step& step, bool try_f32 = true,
                                                   bool padded = false) {
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
  for_each_step16(cols, [&](int64_t j, __mmask16 k) MNQ_TARGET_AVX512 __attribute__((always_inline)) {
    const __m512 xv = load16_ps(k, x + j);
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
    if (q != nullptr) {  // a whole store where it can: a later load of the same lines then takes the stored value
      if (k == 0xffff || padded) {  // directly (on Zen 5 a load after a masked store waits for the store to retire)
        _mm512_storeu_si512(q + j, v);
      } else {
        _mm512_mask_storeu_epi32(q + j, k, v);
      }
    }
    step(v, k, j);
  });
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
                                                  int64_t hi, int32_t* q, int32_t& mx, bool padded = false) {
  __m512i vmax = _mm512_set1_epi32(INT32_MIN);
  const bool ok = float_row_codes_each(x, cols, ScalarInv{inv_scale}, lo, hi, q, RowMax{vmax}, true, padded);
  mx = _mm512_reduce_max_epi32(vmax);
  return ok;
}

// float_row_codes_each with the codes' max and min.
MNQ_TARGET_AVX512 inline bool float_row_codes(const float* x, int64_t cols, double inv_scale, int64_t lo, int64_t hi,
                                              int32_t* q, int32_t& mx, int32_t& mn, bool padded = false) {
  __m512i vmax = _mm512_set1_epi32(INT32_MIN), vmin = _mm512_set1_epi32(INT32_MAX);
  const bool ok = float_row_codes_each(x, cols, ScalarInv{inv_scale}, lo, hi, q, RowMaxMin{vmax, vmin}, true, padded);
  mx = _mm512_reduce_max_epi32(vmax);
  mn = _mm512_reduce_min_epi32(vmin);
  return ok;
}

// A 256-entry table of 16-bit entries in 8 registers, looked up 32 lanes at a time: indices t ∈ [0, 256) in 16-bit
// lanes; VPERMI2W selects by t's low 6 bits within a pair of registers, bits 6 and 7 pick the pair.
struct Table16 {
  // Eight named registers rather than an array: GCC keeps an indexed array in memory (a copy on the stack per call).
  __m512i r0, r1, r2, r3, r4, r5, r6, r7;
  MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE explicit Table16(const uint16_t* p)
      : r0(_mm512_loadu_si512(p)), r1(_mm512_loadu_si512(p + 32)), r2(_mm512_loadu_si512(p + 64)),
        r3(_mm512_loadu_si512(p + 96)), r4(_mm512_loadu_si512(p + 128)), r5(_mm512_loadu_si512(p + 160)),
        r6(_mm512_loadu_si512(p + 192)), r7(_mm512_loadu_si512(p + 224)) {}
  MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE __m512i look(__m512i t, __mmask32 b6, __mmask32 b7) const {
    const __m512i a = _mm512_permutex2var_epi16(r0, t, r1), b = _mm512_permutex2var_epi16(r2, t, r3);
    const __m512i c = _mm512_permutex2var_epi16(r4, t, r5), d = _mm512_permutex2var_epi16(r6, t, r7);
    return _mm512_mask_blend_epi16(b7, _mm512_mask_blend_epi16(b6, a, b), _mm512_mask_blend_epi16(b6, c, d));
  }
};

// The 32 codes at q (lanes k0, k1 of its two halves; the others read as 0) and their indices t = m − q (kClamp:
// min(m − q, 255), the difference taken modulo 2^32 as unsigned, the exact m − q for m ≥ q) packed to 16 bits by
// VPACKUSDW, which interleaves the halves per 128-bit lane (words 0–3 of a lane from v0, 4–7 from v1);
// unpacking the looked-up words in the same lanes (unpack_lo: v0's, unpack_hi: v1's) restores the order. The
// masked-off lanes' t (m, saturated to [0, 65535]) may select anything: they are never stored.
struct Step32 {
  __m512i v0, v1, t;
  __mmask32 b6, b7;
  MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE Step32(__m512i a, __m512i b, __m512i vm, bool clamp = false) : v0(a), v1(b) {
    __m512i d0 = _mm512_sub_epi32(vm, v0), d1 = _mm512_sub_epi32(vm, v1);
    if (clamp) {
      d0 = _mm512_min_epu32(d0, _mm512_set1_epi32(255));
      d1 = _mm512_min_epu32(d1, _mm512_set1_epi32(255));
    }
    t = _mm512_packus_epi32(d0, d1);
    b6 = _mm512_test_epi16_mask(t, _mm512_set1_epi16(64));
    b7 = _mm512_test_epi16_mask(t, _mm512_set1_epi16(128));
  }
};

// The row in steps of 32 lanes, full steps unmasked (a masked load or store per step costs more), then a masked
// tail: step(s, j, k0, k1) stores the outputs of the Step32 s of columns [j, j + 32) in the lanes k0, k1 of its
// halves. kClamp: the indices min(m − q, 255) (Step32).
template <bool kClamp = false, class Step>
MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE void steps32(const int32_t* q, int64_t cols, int32_t m, const Step& step) {
  const __m512i vm = _mm512_set1_epi32(m);
  int64_t j = 0;
  for (; j + 32 <= cols; j += 32) {
    step(Step32(_mm512_loadu_si512(q + j), _mm512_loadu_si512(q + j + 16), vm, kClamp), j, 0xffff, 0xffff);
  }
  if (j < cols) {
    const __mmask16 k0 = simd_lanes16(cols - j), k1 = cols - j > 16 ? simd_lanes16(cols - j - 16) : 0;
    step(Step32(_mm512_maskz_loadu_epi32(k0, q + j), _mm512_maskz_loadu_epi32(k1, q + j + 16), vm, kClamp), j, k0,
         k1);
  }
}

// A step's two 16-lane halves of 32-bit values at p and p + 16 lanes: whole stores for a full step, else the lanes
// of k0 and k1.
MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE void store_step(void* p, __m512i o0, __m512i o1, __mmask16 k0, __mmask16 k1) {
  char* b = static_cast<char*>(p);
  if (k1 == 0xffff) {
    _mm512_storeu_si512(b, o0);
    _mm512_storeu_si512(b + 64, o1);
  } else {
    _mm512_mask_storeu_epi32(b, k0, o0);
    _mm512_mask_storeu_epi32(b + 64, k1, o1);
  }
}

// Pass 2 of the table softmaxes (I-BERT softmax, Shiftmax): e[j] = tab[lim − min(m − q[j], lim)] for j < cols
// (m − q taken modulo 2^32: the exact difference of int32 codes with m ≥ q) and Σe, for tables of values in
// [0, 2^31). e may be q (in place). e has room for cols rounded up to 32 (whole stores, 0 past cols).
MNQ_TARGET_AVX512 inline int64_t row_table_exps(const int32_t* q, int64_t cols, int32_t m, const int32_t* tab,
                                                uint32_t lim, int32_t* e) {
  const __m512i vm = _mm512_set1_epi32(m), vlim = _mm512_set1_epi32(static_cast<int32_t>(lim));
  __m512i s = _mm512_setzero_si512();
  for (int64_t j = 0; j < cols; j += 16) {
    const __mmask16 k = simd_lanes16(cols - j);
    const __m512i d = _mm512_min_epu32(_mm512_sub_epi32(vm, _mm512_maskz_loadu_epi32(k, q + j)), vlim);
    const __m512i ev = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), k, _mm512_sub_epi32(vlim, d), tab, 4);
    _mm512_storeu_si512(e + j, ev);
    s = _mm512_add_epi64(s, _mm512_add_epi64(_mm512_cvtepi32_epi64(_mm512_castsi512_si256(ev)),
                                             _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(ev, 1))));
  }
  return _mm512_reduce_add_epi64(s);
}

// Pass 2 from registers: e[j] = T[min(m − q[j], 255)] (m − q taken modulo 2^32, as in row_table_exps) with
// T[i] = tab[lim − min(i, lim)] held as 16-bit halves in Table16s (t.lo, and t.hi when kWide; without it every
// entry is below 2^16), and Σe (kSum32: in uint32 lanes, exact when cols·max(T) < 2^32). That is row_table_exps' e
// wherever m − q ≤ 255, and everywhere when lim ≤ 255: then min(d, 255) ≥ lim exactly when d ≥ lim, and both read
// tab[0]. The caller checks one of the two. e may be q. 32 lanes per step: four VPERMI2W and three blends per half
// instead of two 16-lane gathers (~5.4 ns each on Zen 5).
template <bool kWide, bool kSum32>
MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE int64_t row_table16_exps(const int32_t* q, int64_t cols, int32_t m, const SoftmaxTable16& t,
                                                  int32_t* e) {
  const Table16 tl(t.lo);
  const Table16 th(kWide ? t.hi : t.lo);
  const __m512i zero = _mm512_setzero_si512();
  __m512i s = zero;
  steps32<true>(q, cols, m, [&](const Step32& st, int64_t j, __mmask16 k0, __mmask16 k1) MNQ_TARGET_AVX512 {
    const __m512i l = tl.look(st.t, st.b6, st.b7);
    const __m512i h = kWide ? th.look(st.t, st.b6, st.b7) : zero;
    __m512i e0 = _mm512_unpacklo_epi16(l, h), e1 = _mm512_unpackhi_epi16(l, h);
    if (k1 != 0xffff) {  // the tail: lanes outside the row add 0
      e0 = _mm512_maskz_mov_epi32(k0, e0);
      e1 = _mm512_maskz_mov_epi32(k1, e1);
    }
    _mm512_storeu_si512(e + j, e0);  // whole stores: e is padded (row_table_softmax_exps)
    _mm512_storeu_si512(e + j + 16, e1);
    const __m512i u = _mm512_add_epi32(e0, e1);  // < 2^32 unsigned: each e < 2^31
    if (kSum32) {
      s = _mm512_add_epi32(s, u);
    } else {
      s = _mm512_add_epi64(s, _mm512_add_epi64(_mm512_cvtepu32_epi64(_mm512_castsi512_si256(u)),
                                               _mm512_cvtepu32_epi64(_mm512_extracti64x4_epi64(u, 1))));
    }
  });
  if (kSum32) {
    s = _mm512_add_epi64(_mm512_cvtepu32_epi64(_mm512_castsi512_si256(s)),
                         _mm512_cvtepu32_epi64(_mm512_extracti64x4_epi64(s, 1)));
  }
  return _mm512_reduce_add_epi64(s);
}

// Passes 1 and 2 of the table softmaxes: the row max of int32 codes q (read in place) or of the codes of float values
// x (1/S = inv, into e first), then the exponentials into e, their sum in s. Exactly one of q, x is set; e has
// room for cols rounded up to 32 (pass 2 stores whole steps, 0 past cols: the next pass may load whole steps). t16: the
// registers' table of row_table16_exps (SoftmaxTable16(tab, lim, cols)), used when lim ≤ 255 or the row's codes
// span at most 255 (pass 1 then takes the min too); otherwise, or with t16 = nullptr, row_table_exps' gathers.
// False when a code lies outside [lo, hi] (or a float has no code).
MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE bool row_table_softmax_exps(const int32_t* q, const float* x, double inv, int64_t cols,
                                                     int64_t lo, int64_t hi, const int32_t* tab, uint32_t lim,
                                                     const SoftmaxTable16* t16, int32_t* e, int64_t& s) {
  int32_t mx = 0, mn = 0;
  const bool span = t16 != nullptr && lim > 255;  // the registers need the row's span
  bool ok = false;
  if (span) {
    ok = q != nullptr ? int_row_max_min(q, cols, lo, hi, mx, mn)
                      : float_row_codes(x, cols, inv, lo, hi, e, mx, mn, true);
  } else {
    ok = q != nullptr ? int_row_max(q, cols, lo, hi, mx) : float_row_codes_max(x, cols, inv, lo, hi, e, mx, true);
  }
  if (!ok) return false;
  const int32_t* c = q != nullptr ? q : e;
  if (t16 == nullptr || (span && static_cast<int64_t>(mx) - mn > 255)) {
    s = row_table_exps(c, cols, mx, tab, lim, e);
  } else if (t16->wide) {
    s = t16->sum32 ? row_table16_exps<true, true>(c, cols, mx, *t16, e) : row_table16_exps<true, false>(c, cols, mx, *t16, e);
  } else {
    s = t16->sum32 ? row_table16_exps<false, true>(c, cols, mx, *t16, e)
                   : row_table16_exps<false, false>(c, cols, mx, *t16, e);
  }
  return true;
}

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
#endif
