// Requantization's one-rounding float32 form for fake-quant output (requant_qat on AVX-512, tried before
// requant_f32_simd.h's two-rounding form): float input on every side, small multipliers (|md| ≤ 2^−6 summed over the
// sides, at least 2^−36 each: requants of a wide input onto a narrower output, as a 16-bit residual or an I-BERT GELU
// accumulator into an 8-bit QuantAct), and a per-tensor output scale whose float32 stores fake_store32 certifies.
//
// The definition rounds twice per side: q = rint(y), y = fl64(x / S), then requant(q, m, k) = rint(q·md) with
// md = m·2^−k. Here each side's value is one rounding of x·c, c = fl32(md / S) (a normal float32, checked):
//   w = fl32(x·c + M), M = 1.5·2^23: for |x·c| ≤ 2^22 the exact x·c + M is rounded once at spacing 1, so
//   r = w − M (exact) is rint(x·c), an integer; e = fl32(x·c − r), within 2^−25 of the exact d = x·c − r.
// The exact requant argument R = q·md is within |md|/2 + 2^−23.9·|x·c| of x·c:
//   |x·c − x·md/S| ≤ 2^−23.98·|x·c| (c's one rounding of the exact md/S), |x·md/S − y·md| ≤ 2^−53·|x·md/S| (y's),
//   and |y·md − q·md| ≤ |md|/2 (q is y's nearest integer, ties either way).
// With |x·c| ≤ |r| + 1/2, the test u = fl(2^−23·|r| + |e|) < h, h = fl32 below 1/2 − max|md|/2 − 2^−22, implies
// (rounding is monotone, h a float) that x·c is farther than |md|/2 + 2^−23.9·|x·c| + 2^−25 from every
// half-integer, so R lies strictly inside (r − 1/2, r + 1/2): requant(q, m, k) = rint(R) = r, and R is no tie. It
// also gives |r| < 2^22 (where w − M is rint(x·c)), hence |q·md| < 2^22 + 1 and |q| < 2^59 (|md| ≥ 2^−36): every
// certified lane has a code (the definition's limit is 2^62). NaN gives r = NaN and ±inf e = NaN or |r| = inf, which
// fail; so does a product beyond 2^22 (|r| ≥ 2^22 either way: w ≥ 2^24, or w ≤ 2^23).
//
// Then, as requant_f32_simd.h: the sum of two integers below 2^22 and the clamp are exact in float32, and the store is
// fake_store32's certified form; a zero is +0.0 (w − M for w = M, and a sum a + (−a) to nearest), as the
// definition's integer 0. All roundings use the instructions' embedded round-to-nearest, whatever MXCSR holds.
// A block with an uncertified lane (a probability of about 16·|md| per side: x·c within |md|/2 of a half-integer)
// is redone whole by `fallback` (the two-rounding forms); the row's tail goes to `tail`. (Collecting the failed
// blocks without a branch and redoing them after the row measured slower: the branch is cheap.)
// Per 16 lanes with the residual: 16 single-µop operations (three per side for r and e, two vrangeps, an FMA and two
// compares for the test, the sum, the clamp, the two-operation store), against the two-rounding form's 29, four of
// them 2-µop vreduceps.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "csrc/cpu/fake_store_simd.h"
#include "csrc/cpu/requant_simd.h"
#include "csrc/cpu/row_buffer.h"
#include "csrc/cpu/simd.h"

#if defined(MNQ_HAVE_X86_SIMD)
namespace mnq {
namespace ops {
namespace cpu {

// The bounds of the form (the header's comment): the sides' largest |md| summed, and each |md|.
constexpr double kFusedMaxMd = 0x1p-6;   // a block fails with probability ~16·Σ|md|: at most about 1/4
constexpr double kFusedMinMd = 0x1p-36;  // |q| < 2^59 for a certified lane: it has a code

// c = fl32(md / S) per column of a float side into `buf` (per-tensor values spread); false when the form does not
// apply to it (int input, |md| below kFusedMinMd, c not a normal float32). `md_max`: the largest |md| of its columns.
inline bool fused_coefficients(const RequantSimdSide& s, int64_t cols, RowBuffer<float, 1024>& buf, double& md_max) {
  if (s.x == nullptr) return false;
  const int64_t n = s.distinct(cols);
  float* c32 = buf.data();
  md_max = 0.0;
  for (int64_t c = 0; c < n; ++c) {
    const double amd = std::fabs(s.md[c]);
    const double v = s.md[c] / s.s[c];
    if (!(amd >= kFusedMinMd) || !(std::fabs(v) >= 0x1p-100 && std::fabs(v) <= 0x1p100)) return false;
    md_max = std::max(md_max, amd);
    c32[c] = static_cast<float>(v);
  }
  if (n < cols) std::fill(c32 + n, c32 + cols, c32[0]);
  return true;
}

// The test's threshold h: the largest float32 at most 1/2 − md_max/2 − 2^−22 (md_max ≤ 2^−6: h > 1/4).
inline float fused_threshold(double md_max) {
  const double want = 0.5 - 0.5 * md_max - 0x1p-22;
  float h = static_cast<float>(want);
  if (static_cast<double>(h) > want) h = std::nextafter(h, 0.0f);
  return h;
}

struct RequantFusedAvx512 {
  static constexpr float kMagic = 0x1.8p23f;  // M = 1.5·2^23
  static constexpr int kNear = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

  // r = rint(x·c) and e = fl32(x·c − r) of 16 lanes (valid where the test passes: the header's comment).
  MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE static __m512 side(const float* x, const float* c, __m512& e) {
    const __m512 xv = _mm512_loadu_ps(x), cv = _mm512_loadu_ps(c), m = _mm512_set1_ps(kMagic);
    const __m512 r = _mm512_sub_round_ps(_mm512_fmadd_round_ps(xv, cv, m, kNear), m, kNear);
    e = _mm512_fmsub_round_ps(xv, cv, r, kNear);
    return r;
  }

  // Columns [c, c + 16) of the row at `base` (ca, cb: c per column; h: fused_threshold; flo, fhi: the code range;
  // sh, sl: fake_store32's pair), stored whatever the test gives; true when every lane is certified (else the block
  // must be redone). With the residual, one test covers both sides: P = max(|ra|, |rb|), E = max(|ea|, |eb|)
  // (vrangeps) and fl(2^−23·P + E) < h implies each side's (monotone rounding); vrangeps drops a NaN operand, so NaN
  // codes are rejected by an ordered compare of ra, rb (±inf: P = inf fails).
  template <bool kResidual>
  MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE static bool block16(const float* xa, const float* ca, const float* xb,
                                                          const float* cb, int64_t base, int64_t c, __m512 h,
                                                          __m512 flo, __m512 fhi, __m512 sh, __m512 sl, float* o) {
    constexpr int kAbsMax = 0x0B;  // vrangeps: max(|a|, |b|), sign bit cleared
    const __m512 k = _mm512_set1_ps(0x1p-23f);
    __m512 ea, v;
    __mmask16 good;
    const __m512 ra = side(xa + base + c, ca + c, ea);
    if constexpr (kResidual) {
      __m512 eb;
      const __m512 rb = side(xb + base + c, cb + c, eb);
      const __m512 u = _mm512_fmadd_ps(_mm512_range_ps(ra, rb, kAbsMax), k, _mm512_range_ps(ea, eb, kAbsMax));
      good = _mm512_mask_cmp_ps_mask(_mm512_cmp_ps_mask(ra, rb, _CMP_ORD_Q), u, h, _CMP_LT_OQ);
      v = _mm512_add_round_ps(ra, rb, kNear);
    } else {
      const __m512 abs_mask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
      const __m512 u = _mm512_fmadd_ps(_mm512_and_ps(ra, abs_mask), k, _mm512_and_ps(ea, abs_mask));
      good = _mm512_cmp_ps_mask(u, h, _CMP_LT_OQ);  // NaN e: fails
      v = ra;
    }
    v = _mm512_min_ps(_mm512_max_ps(v, flo), fhi);
    _mm512_storeu_ps(o + base + c, fake_value32_signed_zero_free(v, sh, sl));
    return good == 0xffff;
  }

  // Rows [r0, r1): block16, `fallback(base, c)` to redo a block it could not certify (the output must not alias the
  // input), `tail(base, c)` for the row's columns from c on. Returns false when one of those reported an input
  // without a code.
  template <bool kResidual, class Fallback, class Tail>
  MNQ_TARGET_AVX512 static bool float_rows(const float* xa, const float* ca, const float* xb, const float* cb,
                                           int64_t cols, int64_t r0, int64_t r1, kernels::i64 lo, kernels::i64 hi,
                                           float h, const FakeStore32& st, float* o, const Fallback& fallback,
                                           const Tail& tail) {
    const __m512 vh = _mm512_set1_ps(h);
    const __m512 flo = _mm512_set1_ps(static_cast<float>(lo)), fhi = _mm512_set1_ps(static_cast<float>(hi));
    const __m512 sh = _mm512_set1_ps(st.hi), sl = _mm512_set1_ps(st.lo);
    auto block = [&](int64_t base, int64_t c) MNQ_TARGET_AVX512 {
      return block16<kResidual>(xa, ca, xb, cb, base, c, vh, flo, fhi, sh, sl, o);
    };
    return block16_rows(cols, r0, r1, block, fallback, tail);
  }
};

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
#endif
