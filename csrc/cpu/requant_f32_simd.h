// Requantization's float32 form for fake-quant output (requant_qat on AVX-512): float input on every side, every
// shift in [11, 62] (md_fits), and a per-tensor output scale whose float32 stores fake_store32 certifies (8-bit
// outputs: bits ≤ 10). All 16 lanes of a block in float32, instead of two float64 halves:
//
//   q = rint(fl32(x·fl32(1/S)))    certified per lane as in requant_f64_simd.h float32_codes (|q| < 2^19);
//   t = fl32(q·md32), md32 = fl32(md) with md = m·2^−k (|m| < 2^31, 11 ≤ k ≤ 62: 2^−62 ≤ |md| < 2^20 or md = 0,
//       a normal float32 or 0, so md32 = md·(1 + e1) with |e1| ≤ 2^−24; q·md32 is 0 or at least 2^−62, normal, so
//       t = q·md32·(1 + e2), |e2| ≤ 2^−24). Hence |t − q·md| ≤ (2^−23 + 2^−48)·|q·md| < 2^−21·|t|.
//   requant(q, m, k) = rint(t) when u = fl(2^−21·|t| + |e|) < 1/2 with e = t − rint(t) (vreduceps, exact): as in
//       quant_simd.h, that implies t is farther than 2^−21·|t| from every half-integer, so the exact q·md lies
//       strictly on the same side of each (it is no tie) and rounds, half to even or otherwise, to rint(t); and
//       |t| < 2^20, where float32 holds rint(t) = t − e exactly.
//   v = clamp(a + b, lo, hi): two integers below 2^20, their sum exact; lo, hi within ±2^9 (fake_store32's range).
//   out = fake_store32's certified float32 form of FakeOut::store's fl32(fl64(v)·S_out) (without the sign or-ing:
//       v is never −0.0).
// A zero requant is stored +0.0, as the definition's integer 0: t − e is +0.0 for a small nonzero t but −0.0 for
// t = −0.0 (a −0.0 code: float32_codes' p − e of p = −0.0; vreduceps gives +0.0 there), so the sum gets + 0.0. A
// block whose input codes or requants are not all certified (NaN, ±inf, codes of 2^19 and more, requants of 2^20
// and more, near-ties) goes to `other` (the float64 and int64 forms) whole; the row's tail to `tail`. With the
// residual both sides' tests are one (residual_sum). Per 16 lanes with the residual: ~29 single-µop float32
// operations — against the float64 form's ~50 (its conversions are two µops each).
#pragma once

#include <cstdint>

#include "csrc/cpu/fake_store_simd.h"
#include "csrc/cpu/requant_f64_simd.h"
#include "csrc/cpu/requant_simd.h"
#include "csrc/cpu/simd.h"

#if defined(MNQ_HAVE_X86_SIMD)
namespace mnq {
namespace ops {
namespace cpu {

struct RequantF32Avx512 {
  // rint(t) of t = fl32(q·md32) in `v`, and the lanes where it is certified to be requant(q, m, k).
  MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE static __mmask16 requant(__m512 q, __m512 md32, __m512& v) {
    const __m512 t = _mm512_mul_ps(q, md32);
    const __m512 e = _mm512_reduce_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    v = _mm512_sub_ps(t, e);
    return rint_margin_lanes(t, e, 0x1p-21f);
  }

  // requant(qa) + requant(qb) of 16 lanes, both sides' roundings certified at once: each test of the header is
  // fl(2^−j·|p| + |e|) < 1/2, and with P = max(|pa|, |pb|), E = max(|ea|, |eb|) (one vrangeps each: the larger
  // magnitude, sign cleared) fl(2^−j·P + E) < 1/2 implies it for both sides (rounding is monotone). vrangeps
  // returns the other operand for a NaN (IEEE maxNum), so NaN inputs are rejected by their own ordered compare; ±inf
  // gives P = inf and fails the margin.
  // False when a lane fails (its block then goes to the float64 / int64 forms).
  MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE static bool residual_sum(const float* xa, const float* ra, const float* ma,
                                                               const float* xb, const float* rb, const float* mb,
                                                               __m512& v) {
    constexpr int kNear = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
    constexpr int kAbsMax = 0x0B;  // vrangeps: max(|a|, |b|), sign bit cleared
    const __m512 half = _mm512_set1_ps(0.5f);
    const __m512 pa = _mm512_mul_ps(_mm512_loadu_ps(xa), _mm512_loadu_ps(ra));
    const __m512 pb = _mm512_mul_ps(_mm512_loadu_ps(xb), _mm512_loadu_ps(rb));
    const __m512 ea = _mm512_reduce_ps(pa, kNear), eb = _mm512_reduce_ps(pb, kNear);
    // The codes' test: float32_codes' margin 2^−20·|p| (|p| < 2^19), both sides.
    const __m512 u1 = _mm512_fmadd_ps(_mm512_range_ps(pa, pb, kAbsMax), _mm512_set1_ps(0x1p-20f),
                                      _mm512_range_ps(ea, eb, kAbsMax));
    const __m512 ta = _mm512_mul_ps(_mm512_sub_ps(pa, ea), _mm512_loadu_ps(ma));
    const __m512 tb = _mm512_mul_ps(_mm512_sub_ps(pb, eb), _mm512_loadu_ps(mb));
    const __m512 fa = _mm512_reduce_ps(ta, kNear), fb = _mm512_reduce_ps(tb, kNear);
    // The requants' test: requant()'s margin 2^−21·|t|, both sides.
    const __m512 u2 = _mm512_fmadd_ps(_mm512_range_ps(ta, tb, kAbsMax), _mm512_set1_ps(0x1p-21f),
                                      _mm512_range_ps(fa, fb, kAbsMax));
    v = _mm512_add_ps(_mm512_sub_ps(ta, fa), _mm512_sub_ps(tb, fb));
    return (_mm512_cmp_ps_mask(pa, pb, _CMP_ORD_Q) & _mm512_cmp_ps_mask(u1, half, _CMP_LT_OQ) &
            _mm512_cmp_ps_mask(u2, half, _CMP_LT_OQ)) == 0xffff;
  }

  // Columns [c, c + 16) of the row at `base` (both sides float input when kResidual; rf*: fl32(1/S), mf*: fl32(md)
  // per column; flo, fhi: the code range; sh, sl: fake_store32's pair) when every lane is certified; false, with
  // nothing stored, otherwise.
  template <bool kResidual>
  MNQ_TARGET_AVX512 static bool block16(const float* xa, const float* rfa, const float* mfa,
                                                          const float* xb, const float* rfb, const float* mfb,
                                                          int64_t base, int64_t c, __m512 flo, __m512 fhi, __m512 sh,
                                                          __m512 sl, float* o) {
    __m512 va;
    if constexpr (kResidual) {
      if (!residual_sum(xa + base + c, rfa + c, mfa + c, xb + base + c, rfb + c, mfb + c, va)) return false;
    } else {
      __m512 qa;
      if (!RequantF64Avx512::float32_codes(xa + base + c, rfa + c, qa) ||
          requant(qa, _mm512_loadu_ps(mfa + c), va) != 0xffff) {
        return false;
      }
    }
    va = _mm512_add_ps(va, _mm512_setzero_ps());  // −0.0 → +0.0 (the header's comment)
    const __m512 v = _mm512_min_ps(_mm512_max_ps(va, flo), fhi);
    _mm512_storeu_ps(o + base + c, fake_value32_signed_zero_free(v, sh, sl));
    return true;
  }

  // Rows [r0, r1) by block16; `other(base, c)` takes a block it cannot certify, `tail(base, c)` the row's columns
  // from c on. Returns false when `other` or `tail` reported an input without a code (they store NaN for fake quant
  // and return true).
  template <bool kResidual, class Other, class Tail>
  MNQ_TARGET_AVX512 static bool float_rows(const RequantSimdSide& in, const float* rfa, const float* mfa,
                                           const RequantSimdSide* id, const float* rfb, const float* mfb,
                                           int64_t cols, int64_t r0, int64_t r1, kernels::i64 lo, kernels::i64 hi,
                                           const FakeStore32& st, const kernels::FakeOut& out, const Other& other,
                                           const Tail& tail) {
    const float* xa = in.x;
    const float* xb = kResidual ? id->x : nullptr;
    const __m512 flo = _mm512_set1_ps(static_cast<float>(lo)), fhi = _mm512_set1_ps(static_cast<float>(hi));
    const __m512 sh = _mm512_set1_ps(st.hi), sl = _mm512_set1_ps(st.lo);
    float* const o = out.p;
    auto block = [&](int64_t base, int64_t c) MNQ_TARGET_AVX512 {
      return block16<kResidual>(xa, rfa, mfa, xb, rfb, mfb, base, c, flo, fhi, sh, sl, o);
    };
    return block16_rows(cols, r0, r1, block, other, tail);
  }
};

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
#endif
