// Requantization's float32 form for fake-quant output onto a wide code range (requant_qat on AVX-512 where
// fake_store32 cannot certify the store: more than 1,024 output codes, e.g. a block's residual QuantAct(16), whose
// multipliers S_in/S_out and S_id/S_out lie near 1/2, too large for the one-rounding form). Float input on every
// side, every |md| ≤ 2^5 (md = m·2^−k, 26 ≤ k ≤ 62), a per-tensor output scale S_out in [2^−60, 2^60] and codes
// [lo, hi] within ±2^24. All 16 lanes of a block in float32, each rounding exact or certified per lane; a block with
// an uncertified lane is redone whole by `fallback` (the float64 / int64 forms), the row's tail by `tail`. Every
// rounding is to nearest even, embedded in the instruction whatever MXCSR holds; M = 1.5·2^23. Flushing subnormals
// (FTZ / DAZ) changes no test's outcome: a flushed value is below 2^−126 in magnitude, far under every margin below
// (the store's is relative to |v·S| ≥ S ≥ 2^−60, where the absolute terms 2^−150 become 2^−126).
//
// The code (the definition: q = rint(y), y = fl64(x / S)). With rf = fl32(fl64(1/S)) (a normal float32, so
// |rf − 1/S| ≤ (2^−24 + 2^−53 + 2^−77)/S) and P = x·rf exact:
//   w = fl32(P + M), q = fl32(w − M), e = fl32(P − q) (one FMA each, exact products).
//   Test E: u = fl32(t·|q| + |e|) < h1 = 1/2 − 2^−22, with t = 2^−23·p for p the least power of two ≥ 2 and ≥ every
//     |md| of the call (t = 2^−22 for multipliers up to 2, 2^−18 up to 2^5). Rounding is monotone and h1 a float32,
//     so t·|q| + |e| < h1: |q| < 2^22/p ≤ 2^21, which implies |P| < 2^22 (if P ≥ 2^22 then w ≥ M + 2^22 and
//     q ≥ 2^22; if P ≤ −2^22 then w ≤ M − 2^22 and q ≤ −2^22), so P + M lies in (2^23, 2^24), where float32's
//     spacing is 1: w = M + rint(P) (ties to even: M is even) and q = rint(P), exactly; |P − q| ≤ 1/2, so e is
//     within 2^−26 of it. |P − y| ≤ (2^−23.99 + 2^−53)·|x/S| ≤ 2^−23.9·(|q| + 1/2), so
//     |y − q| ≤ |e| + 2^−26 + 2^−23.9·|q| + 2^−24.9 < h1 − (t − 2^−23.9)·|q| + 2^−24.3 < 1/2 (t ≥ 2^−22): q = rint(y),
//     the definition's code (and y is no tie).
// The requant (requant(q, m, k) = round-half-even(q·md), exact). mh = fl32(md) and ml = md − mh, a float32 exactly
// (checked on the host; md − mh is a multiple of 2^−k below 2^−24·|md|, at most 7 significant bits for m < 2^31):
//   r = fl32(fl32(q·mh + M) − M): |q·mh| < (2^22/p)·p = 2^22 (mh ≤ p: md ≤ p and p is a float32), so
//   r = rint(q·mh), an integer, exactly;
//   d = fl32(q·mh − r), the exact value in [−1/2, 1/2]: |d − (q·mh − r)| ≤ 2^−26;
//   g = fl32(q·ml + d), |q·ml| ≤ (2^22/p)·2^−24·p = 2^−2: |g − (q·ml + d)| ≤ 2^−24·(1/2 + 2^−2 + 2^−26) < 2^−24.
//   So g is within 2^−23.6 of g* = q·md − r. Test G: |g| < h2 = 1/2 − 2^−20 gives |g*| < 1/2: r = rint(q·md) and
//   q·md is no tie, so r = requant(q, m, k) under any tie rule, in particular half to even.
// The sum, the clamp: |ra|, |rb| < 2^22 (integers), so ra + rb is exact; a zero is +0.0 (r = w − M with w = M, and
//   a + (−a), are +0.0 to nearest), as the definition's integer 0. The clamp is max(lo, v) then min(hi, ·) with v
//   the second operand: vmaxps / vminps return their second operand when one is NaN, so a NaN v stays NaN.
// The store (FakeOut::store: fl32(fl64(v)·S_out), fl64(v) = v). With H = fl32(S) (normal), R = S − H (exact in
//   float64, |R| ≤ 2^−24·S) and L± = fl32(R ± 2^−43·S) (absolute error ≤ 2^−24·(2^−24 + 2^−43)·S + 2^−150, so
//   L+ ≥ R + 2^−43.1·S and L− ≤ R − 2^−43.1·S), the two values
//     A = fl32(v·H + fl32(v·L+)), B = fl32(v·H + fl32(v·L−))
//   are one rounding each of A* = v·H + fl32(v·L+) and B* (FMA). |fl32(v·L±) − v·L±| ≤ 2^−24·|v|·(2^−23.9·S) + 2^−150,
//   so for v > 0, A* ≥ v·S·(1 + 2^−43.1 − 2^−47.8) − 2^−150 ≥ v·S·(1 + 2^−44) (v·S ≥ S ≥ 2^−60) and likewise
//   B* ≤ v·S·(1 − 2^−44); the definition's fl64(v·S) is within 2^−53·v·S of v·S, so it lies in [B*, A*] (in
//   [A*, B*] for v < 0). Rounding to nearest is monotone, so when A = B, fl32(fl64(v·S)) = A: test A == B (ordered:
//   NaN fails). v = 0 gives A = B = +0.0 (+0·H + (±0) is +0.0), the definition's. |v·S| ≤ 2^24·2^60: no overflow.
//   Test failures are rare (a float32 rounding boundary within ~2^−43 relative of v·S: exact ties of the definition's
//   double rounding among them); the block then goes to `fallback`.
// NaN input: q, r and v are NaN (the ranges below drop a NaN operand, but v stays NaN through the clamp and A == B
// fails); ±inf: |q| = inf fails E. Each test covers both sides at once: with the residual, max(|a|, |b|) of q, e and
// g (one vrangeps each) in the bound (fl(t·Q + E) < h1 implies it for each side: rounding is monotone).
// A call whose blocks mostly fail (codes beyond 2^22/p: e.g. 23-bit codes) hands its remaining rows to
// `others` (the float64 form's rows) once an eighth of at least 64 blocks failed, so it costs at most that much.
// Per 16 lanes with the residual: 14 side operations (7 per side: three for q and e, four for r and g), three
// vrangeps, an FMA and three compares (chained masks), the sum, the clamp, five for the store: ~29 single-µop
// operations, against the float64 form's ~33 with its two-µop conversions and vreduceps.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "csrc/cpu/requant_simd.h"
#include "csrc/cpu/row_buffer.h"
#include "csrc/cpu/simd.h"

#if defined(MNQ_HAVE_X86_SIMD)
namespace mnq {
namespace ops {
namespace cpu {

constexpr double kWideMaxMd = 0x1p5;                   // |md| bound of the form (p ≤ 2^5: codes up to 2^17 at least)
constexpr float kWideCodeMargin = 0.5f - 0x1p-22f;     // h1
constexpr float kWideRequantMargin = 0.5f - 0x1p-20f;  // h2 (test G)
constexpr int64_t kWideMinBlocks = 64;                 // blocks seen before a call may leave the form

// The store's constants (the header's comment): ok when S_out is in [2^−60, 2^60] and [lo, hi] within ±2^24.
struct WideStore {
  float h = 0.0f, lp = 0.0f, lm = 0.0f;
  bool ok = false;
};
inline WideStore wide_store(double s, kernels::i64 lo, kernels::i64 hi) {
  WideStore w;
  if (!(s >= 0x1p-60 && s <= 0x1p60) || lo < -(kernels::i64(1) << 24) || hi > (kernels::i64(1) << 24)) return w;
  w.h = static_cast<float>(s);
  const double r = s - static_cast<double>(w.h);  // exact (Sterbenz)
  w.lp = static_cast<float>(r + 0x1p-43 * s);
  w.lm = static_cast<float>(r - 0x1p-43 * s);
  w.ok = true;
  return w;
}

// test E's slope t = 2^−23·p for the sides' largest |md| (the header's comment).
inline float wide_code_slope(double md_max) {
  float p = 2.0f;
  while (p < md_max) p *= 2.0f;
  return 0x1p-23f * p;
}

// mh = fl32(md), ml = md − mh per column of a side into the buffers (per-tensor values spread); false when the form
// does not take the side: int input, |md| > 2^5, ml not exact in float32.
inline bool wide_multipliers(const RequantSimdSide& s, int64_t cols, RowBuffer<float, 1024>& mh,
                             RowBuffer<float, 1024>& ml) {
  if (s.x == nullptr) return false;
  const int64_t n = s.distinct(cols);
  for (int64_t c = 0; c < n; ++c) {
    const double md = s.md[c];
    if (!(std::fabs(md) <= kWideMaxMd)) return false;
    const float h = static_cast<float>(md);
    const double rest = md - static_cast<double>(h);  // exact: h is within a factor 2 of md
    const float l = static_cast<float>(rest);
    if (static_cast<double>(l) != rest) return false;
    mh.data()[c] = h;
    ml.data()[c] = l;
  }
  if (n < cols) {
    std::fill(mh.data() + n, mh.data() + cols, mh.data()[0]);
    std::fill(ml.data() + n, ml.data() + cols, ml.data()[0]);
  }
  return true;
}

struct RequantWide32Avx512 {
  static constexpr float kMagic = 0x1.8p23f;  // M = 1.5·2^23
  static constexpr int kNear = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

  // One side's per-column constants for 16 columns: fl32(1/S), mh, ml.
  struct Consts {
    __m512 rf, mh, ml;
  };
  MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE static Consts consts(const float* rf, const float* mh, const float* ml,
                                                          int64_t c) {
    return Consts{_mm512_loadu_ps(rf + c), _mm512_loadu_ps(mh + c), _mm512_loadu_ps(ml + c)};
  }

  // One side of 16 lanes: the code q, its residual e, the requant r and its residual g (the header's comment).
  MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE static __m512 side(const float* x, const Consts& k, __m512& q, __m512& e,
                                                         __m512& g) {
    const __m512 m = _mm512_set1_ps(kMagic);
    const __m512 xv = _mm512_loadu_ps(x);
    q = _mm512_sub_round_ps(_mm512_fmadd_round_ps(xv, k.rf, m, kNear), m, kNear);
    e = _mm512_fmsub_round_ps(xv, k.rf, q, kNear);
    const __m512 r = _mm512_sub_round_ps(_mm512_fmadd_round_ps(q, k.mh, m, kNear), m, kNear);
    g = _mm512_fmadd_round_ps(q, k.ml, _mm512_fmsub_round_ps(q, k.mh, r, kNear), kNear);
    return r;
  }

  // The output constants in every lane.
  struct Out32 {
    __m512 lo, hi, h, lp, lm, slope;
  };

  // Columns [c, c + 16) of the row at `base` (ka, kb: the sides' constants for these columns), stored whatever the
  // tests give; true when every lane is certified (else the block must be redone).
  template <bool kResidual>
  MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE static bool block16(const float* xa, const Consts& ka, const float* xb,
                                                          const Consts& kb, int64_t base, int64_t c, const Out32& k,
                                                          float* o) {
    constexpr int kAbsMax = 0x0B;  // vrangeps: max(|a|, |b|), sign bit cleared
    __m512 qa, ea, ga, v;
    __mmask16 good;
    const __m512 ra = side(xa + base + c, ka, qa, ea, ga);
    if constexpr (kResidual) {
      __m512 qb, eb, gb;
      const __m512 rb = side(xb + base + c, kb, qb, eb, gb);
      const __m512 u = _mm512_fmadd_round_ps(_mm512_range_ps(qa, qb, kAbsMax), k.slope,
                                             _mm512_range_ps(ea, eb, kAbsMax), kNear);
      good = _mm512_cmp_ps_mask(u, _mm512_set1_ps(kWideCodeMargin), _CMP_LT_OQ);
      good = _mm512_mask_cmp_ps_mask(good, _mm512_range_ps(ga, gb, kAbsMax), _mm512_set1_ps(kWideRequantMargin),
                                     _CMP_LT_OQ);
      v = _mm512_add_round_ps(ra, rb, kNear);
    } else {
      const __m512 u = _mm512_fmadd_round_ps(_mm512_range_ps(qa, qa, kAbsMax), k.slope,
                                             _mm512_range_ps(ea, ea, kAbsMax), kNear);
      good = _mm512_cmp_ps_mask(u, _mm512_set1_ps(kWideCodeMargin), _CMP_LT_OQ);
      good = _mm512_mask_cmp_ps_mask(good, _mm512_range_ps(ga, ga, kAbsMax), _mm512_set1_ps(kWideRequantMargin),
                                     _CMP_LT_OQ);
      v = ra;
    }
    v = _mm512_min_ps(k.hi, _mm512_max_ps(k.lo, v));  // v second: a NaN v stays NaN
    const __m512 a = _mm512_fmadd_round_ps(v, k.h, _mm512_mul_round_ps(v, k.lp, kNear), kNear);
    const __m512 b = _mm512_fmadd_round_ps(v, k.h, _mm512_mul_round_ps(v, k.lm, kNear), kNear);
    good = _mm512_mask_cmp_ps_mask(good, a, b, _CMP_EQ_OQ);
    _mm512_storeu_ps(o + base + c, a);
    return good == 0xffff;
  }

  // Rows [r0, r1) of float input (both sides when kResidual): rf*, mh*, ml* per column (fl32(1/S), the split
  // multiplier; slope: wide_code_slope); `fallback(base, c)` redoes a block it could not certify (the output must not
  // alias an input), `tail(base, c)` does the row's columns from c on, `others(r, r1)` rows [r, r1) once the form
  // failed on an eighth of at least kWideMinBlocks blocks. kUniform: every column of every side has the same
  // constants (per-tensor sides), kept in registers. Returns false when `fallback`, `tail` or `others` reported an
  // input without a code.
  template <bool kResidual, bool kUniform, class Fallback, class Tail, class Others>
  MNQ_TARGET_AVX512 static bool float_rows(const float* xa, const float* rfa, const float* mha, const float* mla,
                                           const float* xb, const float* rfb, const float* mhb, const float* mlb,
                                           int64_t cols, int64_t r0, int64_t r1, kernels::i64 lo, kernels::i64 hi,
                                           float slope, const WideStore& st, float* o, const Fallback& fallback,
                                           const Tail& tail, const Others& others) {
    const Out32 k{_mm512_set1_ps(static_cast<float>(lo)), _mm512_set1_ps(static_cast<float>(hi)),
                  _mm512_set1_ps(st.h), _mm512_set1_ps(st.lp), _mm512_set1_ps(st.lm), _mm512_set1_ps(slope)};
    Consts ua{}, ub{};
    if constexpr (kUniform) {
      ua = Consts{_mm512_set1_ps(rfa[0]), _mm512_set1_ps(mha[0]), _mm512_set1_ps(mla[0])};
      if constexpr (kResidual) ub = Consts{_mm512_set1_ps(rfb[0]), _mm512_set1_ps(mhb[0]), _mm512_set1_ps(mlb[0])};
    }
    bool ok = true;
    int64_t tried = 0, failed = 0;
    for (int64_t r = r0; r < r1; ++r) {
      if (tried >= kWideMinBlocks && failed * 8 > tried) return others(r, r1) && ok;
      const int64_t base = r * cols;
      int64_t c = 0;
      for (; c + 16 <= cols; c += 16) {
        bool done;
        if constexpr (kUniform) {
          done = block16<kResidual>(xa, ua, xb, ub, base, c, k, o);
        } else {
          const Consts ka = consts(rfa, mha, mla, c);
          const Consts kb = kResidual ? consts(rfb, mhb, mlb, c) : ka;
          done = block16<kResidual>(xa, ka, xb, kb, base, c, k, o);
        }
        ++tried;
        if (!done) [[unlikely]] {
          ++failed;
          ok = cold_call_avx512(fallback, base, c) && ok;  // simd.h
        }
      }
      if (c < cols) ok = tail(base, c) && ok;
    }
    return ok;
  }
};

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
#endif
