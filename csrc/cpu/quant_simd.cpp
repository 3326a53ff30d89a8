// The quantizer's vector paths (quant_simd.h): AVX-512 (16 lanes) and AVX2 (8 lanes), each written with
// intrinsics in a function compiled for its instruction set only (GCC target attributes), so a build for any
// x86-64 contains both and isa.h picks one at run time. Lanes the certification of quant_simd.h rejects, and the
// span's tail, go through quantize_one (the scalar definition).
#include "csrc/cpu/quant_simd.h"

#include <algorithm>
#include <cmath>
#include <bit>

#include "csrc/cpu/simd.h"

namespace mnq {
namespace ops {
namespace cpu {
namespace {

using kernels::CodeOut;
using kernels::FakeOut;
using kernels::i64;

// The scalar path and the lanes a vector path did not certify.
template <class Out>
int scalar_span(const QuantSpan& sp, const Out& out, int64_t j0, int64_t j1) {
  int bad = 0;
  for (int64_t j = j0; j < j1; ++j) quantize_one(sp.x, sp.s[sp.per_column ? j : 0], sp.lo, sp.hi, out, sp.i0 + j, bad);
  return bad;
}

template <class Out>
int redo_lanes(const QuantSpan& sp, const Out& out, int64_t j, unsigned bad_lanes) {
  int bad = 0;
  while (bad_lanes != 0) {
    const int l = __builtin_ctz(bad_lanes);
    bad_lanes &= bad_lanes - 1;
    bad |= scalar_span(sp, out, j + l, j + l + 1);
  }
  return bad;
}

#if defined(MNQ_HAVE_X86_SIMD)
template <class Out>
MNQ_TARGET_AVX512 int span_avx512(const QuantSpan& sp, const Out& out) {
  constexpr bool kFake = Out::kPropagatesNaN;
  const __m512 flo = _mm512_set1_ps(static_cast<float>(sp.lo)), fhi = _mm512_set1_ps(static_cast<float>(sp.hi));
  const __m512 r1 = _mm512_set1_ps(sp.r[0]);
  const __m512d s1 = _mm512_set1_pd(sp.s[0]);
  const __m512 h32 = _mm512_set1_ps(sp.store32.hi), l32 = _mm512_set1_ps(sp.store32.lo);
  const float* x = sp.x + sp.i0;
  int bad = 0;
  int64_t j = 0;
  for (; j + 16 <= sp.n; j += 16) {
    // Clamped first: pc = min(hi, max(lo, p)) (vmaxps/vminps return their second operand, p, for a NaN: NaN stays),
    // and rint(pc) = clamp(rint(p), lo, hi) (rint is monotone and fixes the integers lo, hi). A lane with p ≥ hi has
    // pc = hi, an integer (e = 0, certified), and its code is hi: vd ≥ p − E > hi − 1/2 (quant_simd.h); p ≤ lo
    // likewise; ±inf clamp to hi or lo, as the definition's code. Other lanes have pc = p and the margin test below.
    const __m512 p = _mm512_mul_ps(_mm512_loadu_ps(x + j), sp.per_column ? _mm512_loadu_ps(sp.r + j) : r1);
    const __m512 pc = _mm512_min_ps(fhi, _mm512_max_ps(flo, p));
    // e = pc − rint(pc), exact, and rint(pc) = pc − e (codes: one vreduceps and a subtraction instead of
    // vrndscaleps's two operations and the subtraction; NaN gives NaN). Fake quant rounds with vrndscaleps: it keeps
    // the −0.0 of a small negative p, which pc − e would turn into +0.0 (its store multiplies the sign in).
    __m512 q, e;
    if constexpr (kFake) {
      q = _mm512_roundscale_ps(pc, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      e = _mm512_sub_ps(pc, q);
    } else {
      e = _mm512_reduce_ps(pc, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      q = _mm512_sub_ps(pc, e);
    }
    // The margin 2^−21·|pc| (simd.h rint_margin_lanes: one FMA and one compare) exceeds E for |pc| ≥ 2^−117
    // (below, |e| = |pc| and the distance is almost 1/2); |pc| ≤ 2^18, where float32 holds rint(pc) exactly.
    const __mmask16 ok = rint_margin_lanes(pc, e, 0x1p-21f);
    if constexpr (kFake) {
      if (sp.store32.ok) {
        _mm512_storeu_ps(out.p + sp.i0 + j, fake_value32(q, h32, l32));
        if (ok != 0xffff) bad |= redo_lanes(sp, out, j, static_cast<unsigned>(static_cast<__mmask16>(~ok)));
        continue;
      }
      const __m512d slo = sp.per_column ? _mm512_loadu_pd(sp.s + j) : s1;
      const __m512d shi = sp.per_column ? _mm512_loadu_pd(sp.s + j + 8) : s1;
      const __m256 vlo = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(q)), slo));
      const __m256 vhi = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_cvtps_pd(_mm512_extractf32x8_ps(q, 1)), shi));
      _mm512_storeu_ps(out.p + sp.i0 + j, _mm512_insertf32x8(_mm512_castps256_ps512(vlo), vhi, 1));
    } else {
      _mm512_storeu_si512(out.p + sp.i0 + j, _mm512_cvtps_epi32(q));
    }
    if (ok != 0xffff) bad |= redo_lanes(sp, out, j, static_cast<unsigned>(static_cast<__mmask16>(~ok)));
  }
  return bad | scalar_span(sp, out, j, sp.n);
}

template <class Out>
MNQ_TARGET_AVX2 int span_avx2(const QuantSpan& sp, const Out& out) {
  // span_avx512's form 8 lanes at a time (its comments): the clamp first, rint of the clamped value, the margin test
  // fl(2^−21·|pc| + |e|) < 1/2 (one FMA), the float32 pair store where fake_store32 certified it.
  constexpr bool kFake = Out::kPropagatesNaN;
  const __m256 half = _mm256_set1_ps(0.5f), k21 = _mm256_set1_ps(0x1p-21f);
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256 flo = _mm256_set1_ps(static_cast<float>(sp.lo)), fhi = _mm256_set1_ps(static_cast<float>(sp.hi));
  const __m256 r1 = _mm256_set1_ps(sp.r[0]);
  const __m256d s1 = _mm256_set1_pd(sp.s[0]);
  const __m256 h32 = _mm256_set1_ps(sp.store32.hi), l32 = _mm256_set1_ps(sp.store32.lo);
  const float* x = sp.x + sp.i0;
  int bad = 0;
  int64_t j = 0;
  for (; j + 8 <= sp.n; j += 8) {
    const __m256 p = _mm256_mul_ps(_mm256_loadu_ps(x + j), sp.per_column ? _mm256_loadu_ps(sp.r + j) : r1);
    const __m256 pc = _mm256_min_ps(fhi, _mm256_max_ps(flo, p));  // p second: NaN stays
    const __m256 q = _mm256_round_ps(pc, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);  // −0.0 kept (fake quant)
    const __m256 e = _mm256_sub_ps(pc, q);
    const __m256 u = _mm256_fmadd_ps(_mm256_and_ps(pc, abs_mask), k21, _mm256_and_ps(e, abs_mask));
    const unsigned okm = static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(u, half, _CMP_LT_OQ)));
    if constexpr (kFake) {
      if (sp.store32.ok) {  // fake_store32 checked the pair with these instructions
        _mm256_storeu_ps(out.p + sp.i0 + j, fake_value32_avx2(q, h32, l32));
      } else {
        const __m256d slo = sp.per_column ? _mm256_loadu_pd(sp.s + j) : s1;
        const __m256d shi = sp.per_column ? _mm256_loadu_pd(sp.s + j + 4) : s1;
        const __m128 vlo = _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(q)), slo));
        const __m128 vhi = _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(q, 1)), shi));
        _mm256_storeu_ps(out.p + sp.i0 + j, _mm256_set_m128(vhi, vlo));
      }
    } else {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out.p + sp.i0 + j), _mm256_cvtps_epi32(q));
    }
    if (okm != 0xffu) bad |= redo_lanes(sp, out, j, ~okm & 0xffu);
  }
  return bad | scalar_span(sp, out, j, sp.n);
}

// The exact forms: quantize_code's own float64 division and rint per lane (vdivpd and vroundpd are the IEEE
// operations of the scalar code), so no certification. The clamp to [double(lo), double(hi)] in float64 gives the
// definition's value: quantize_code tests v ≤ double(lo) and v ≥ double(hi) on the same conversions, and a v strictly
// between them is an integer below 2^63 that its int64 code holds exactly. max/min return their second operand for
// a NaN lane, which is masked: the fake output stores NaN there (store_nan), the codes 0 (quantize_one stores the
// code it initialised). A −0.0 from rounding a small negative quotient stays −0.0, as in the certified form and in
// the scalar code as GCC compiles it (with -fno-trapping-math it folds (double)(int64)v to trunc(v) = v); the sign
// of a zero is no part of the definition's value.
template <class Out>
MNQ_TARGET_AVX512 int span_exact_avx512(const QuantSpan& sp, const Out& out) {
  const __m512d dlo = _mm512_set1_pd(static_cast<double>(sp.lo)), dhi = _mm512_set1_pd(static_cast<double>(sp.hi));
  const __m512d s1 = _mm512_set1_pd(sp.s[0]);
  const float* x = sp.x + sp.i0;
  int bad = 0;
  for (int64_t j = 0; j < sp.n; j += 8) {
    const __mmask8 lanes = sp.n - j >= 8 ? 0xff : static_cast<__mmask8>((1u << (sp.n - j)) - 1);
    const __m512d s = sp.per_column ? _mm512_maskz_loadu_pd(lanes, sp.s + j) : s1;
    const __m512d v = _mm512_roundscale_pd(_mm512_div_pd(_mm512_cvtps_pd(_mm256_maskz_loadu_ps(lanes, x + j)), s),
                                           _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __mmask8 nan = _mm512_cmp_pd_mask(v, v, _CMP_UNORD_Q) & lanes;
    const __m512d q = _mm512_min_pd(_mm512_max_pd(v, dlo), dhi);
    if constexpr (Out::kPropagatesNaN) {
      const __m256 f = _mm512_cvtpd_ps(_mm512_mul_pd(q, s));
      _mm256_mask_storeu_ps(out.p + sp.i0 + j, lanes, _mm256_mask_mov_ps(f, nan, _mm256_set1_ps(NAN)));
    } else {
      _mm256_mask_storeu_epi32(out.p + sp.i0 + j, lanes, _mm256_maskz_mov_epi32(~nan, _mm512_cvtpd_epi32(q)));
    }
    bad |= static_cast<int>(nan != 0);
  }
  return bad;
}

template <class Out>
MNQ_TARGET_AVX2 int span_exact_avx2(const QuantSpan& sp, const Out& out) {
  const __m256d dlo = _mm256_set1_pd(static_cast<double>(sp.lo)), dhi = _mm256_set1_pd(static_cast<double>(sp.hi));
  const __m256d s1 = _mm256_set1_pd(sp.s[0]);
  const float* x = sp.x + sp.i0;
  int bad = 0;
  int64_t j = 0;
  for (; j + 4 <= sp.n; j += 4) {
    const __m256d s = sp.per_column ? _mm256_loadu_pd(sp.s + j) : s1;
    const __m256d v = _mm256_round_pd(_mm256_div_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + j)), s),
                                      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256d nan = _mm256_cmp_pd(v, v, _CMP_UNORD_Q);
    const __m256d q = _mm256_min_pd(_mm256_max_pd(v, dlo), dhi);
    if constexpr (Out::kPropagatesNaN) {
      const __m128 f = _mm256_cvtpd_ps(_mm256_mul_pd(q, s));
      const __m128 nan32 = _mm_castsi128_ps(_mm256_castsi256_si128(  // the 64-bit lane masks as 32-bit ones
          _mm256_permutevar8x32_epi32(_mm256_castpd_si256(nan), _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6))));
      _mm_storeu_ps(out.p + sp.i0 + j, _mm_blendv_ps(f, _mm_set1_ps(NAN), nan32));
    } else {
      const __m128i c = _mm256_cvtpd_epi32(_mm256_andnot_pd(nan, q));  // NaN lanes: code 0
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out.p + sp.i0 + j), c);
    }
    bad |= _mm256_movemask_pd(nan) != 0;
  }
  return bad | scalar_span(sp, out, j, sp.n);
}
// fake_store32's check: both values of every code of [lo, hi], 16 per step (the last step's extra lanes masked).
MNQ_TARGET_AVX512 bool store32_agrees(double s, float hi32, float lo32, i64 lo, i64 hi) {
  const __m512 h = _mm512_set1_ps(hi32), l = _mm512_set1_ps(lo32);
  const __m512d sd = _mm512_set1_pd(s);
  const __m512i ramp = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (i64 q0 = lo; q0 <= hi; q0 += 16) {
    const __mmask16 lanes = hi - q0 >= 15 ? 0xffff : static_cast<__mmask16>((1u << (hi - q0 + 1)) - 1);
    const __m512i qi = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int32_t>(q0)), ramp);
    const __m512 got = fake_value32(_mm512_cvtepi32_ps(qi), h, l);
    // FakeOut::store: fl32(fl64(q)·S).
    const __m256 w0 = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_cvtepi32_pd(_mm512_castsi512_si256(qi)), sd));
    const __m256 w1 = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_cvtepi32_pd(_mm512_extracti32x8_epi32(qi, 1)), sd));
    const __m512 want = _mm512_insertf32x8(_mm512_castps256_ps512(w0), w1, 1);
    if (_mm512_mask_cmpneq_epi32_mask(lanes, _mm512_castps_si512(got), _mm512_castps_si512(want)) != 0) return false;
  }
  return true;
}
// The same check with the AVX2 instructions (fake_value32_avx2), 8 codes per step, the last step's extra lanes
// (codes past hi) compared too: both forms are defined for them (|q| ≤ 2^24 + 7, exact in float32 — the conversion
// is exact below 2^24 and at most off by rounding above, where both sides then see the same float32 q), and a
// disagreement there only turns the pair down.
MNQ_TARGET_AVX2 bool store32_agrees_avx2(double s, float hi32, float lo32, i64 lo, i64 hi) {
  const __m256 h = _mm256_set1_ps(hi32), l = _mm256_set1_ps(lo32);
  const __m256d sd = _mm256_set1_pd(s);
  const __m256i ramp = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (i64 q0 = lo; q0 <= hi; q0 += 8) {
    const __m256i qi = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int32_t>(q0)), ramp);
    const __m256 qf = _mm256_cvtepi32_ps(qi);
    const __m256 got = fake_value32_avx2(qf, h, l);
    // FakeOut::store: fl32(fl64(q)·S), of the float32 q the kernels hold (q itself below 2^24)
    const __m128 w0 = _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(qf)), sd));
    const __m128 w1 = _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(qf, 1)), sd));
    const __m256 want = _mm256_set_m128(w1, w0);
    const __m256i ne = _mm256_xor_si256(_mm256_castps_si256(got), _mm256_castps_si256(want));
    if (!_mm256_testz_si256(ne, ne)) return false;
  }
  return true;
}
#endif

template <class Out>
int span(Isa path, const QuantSpan& sp, const Out& out) {
#if defined(MNQ_HAVE_X86_SIMD)
  if (path == Isa::kAvx512) return sp.exact ? span_exact_avx512(sp, out) : span_avx512(sp, out);
  if (path == Isa::kAvx2) return sp.exact ? span_exact_avx2(sp, out) : span_avx2(sp, out);
#endif
  return scalar_span(sp, out, 0, sp.n);
}

}  // namespace

bool quantize_simd_ok(const double* s, int64_t count, i64 hi) { return quantize_simd_ok(s, count, -hi - 1, hi); }

bool quantize_simd_ok(const double* s, int64_t count, i64 lo, i64 hi) {
  if (lo < -(i64(1) << 18) || hi > (i64(1) << 18) - 1) return false;  // the certification's range (bits ≤ 19)
  for (int64_t c = 0; c < count; ++c) {
    const double r = 1.0 / s[c];
    if (!(r >= 0x1p-100 && r <= 0x1p100)) return false;
  }
  return true;
}

FakeStore32 fake_store32(Isa path, double s, i64 lo, i64 hi) {
  FakeStore32 f;
#if defined(MNQ_HAVE_X86_SIMD)
  const bool avx2 = path == Isa::kAvx2 && mxcsr_round_nearest();
  if ((path != Isa::kAvx512 && !avx2) || !(s > 0.0) || lo > hi || hi - lo >= kFakeStoreMaxCodes ||
      lo < -(i64(1) << 24) || hi > (i64(1) << 24)) {
    return f;
  }
  // The check evaluates up to 1024 codes (~0.1–0.4 µs, a tenth of a small requant call); a thread keeps its last
  // answer with the (S, lo, hi) it was for: every call of a layer asks the same.
  struct Last {
    uint64_t s_bits = 0;
    i64 lo = 1, hi = 0;  // an empty range: matches no call
    bool avx2 = false;   // the instructions the answer was checked with
    FakeStore32 f;
  };
  thread_local Last last;
  const uint64_t s_bits = std::bit_cast<uint64_t>(s);
  if (last.s_bits == s_bits && last.lo == lo && last.hi == hi && last.avx2 == avx2) return last.f;
  f.hi = static_cast<float>(s);
  f.lo = static_cast<float>(s - static_cast<double>(f.hi));  // s − fl32(s): exact in float64 (Sterbenz) when finite
  f.ok = avx2 ? store32_agrees_avx2(s, f.hi, f.lo, lo, hi) : store32_agrees(s, f.hi, f.lo, lo, hi);
  last = Last{s_bits, lo, hi, avx2, f};
#endif
  return f;
}

bool ptf_alpha_simd_ok(double s_base) { return s_base >= 0x1p-894 && s_base <= 0x1p1020; }

#if defined(MNQ_HAVE_X86_SIMD)
namespace {

// Channels [cb, cb + 8·H) (lanes k[h] of each vector h) over every row: err[c][α] for those channels. A NaN x gives
// NaN terms as in the definition (its clamped code is finite, x − q·s is NaN).
template <int H>
MNQ_TARGET_AVX512 void alpha_block(const float* x, int64_t rows, int64_t C, int64_t cb, const __mmask8 (&k)[2],
                                   double s_base, i64 lo, i64 hi, double* err) {
  const __m512d s = _mm512_set1_pd(s_base), dlo = _mm512_set1_pd(static_cast<double>(lo)),
                dhi = _mm512_set1_pd(static_cast<double>(hi));
  __m512d sa[4], inv2[4];
  for (int a = 0; a < 4; ++a) {
    sa[a] = _mm512_set1_pd(s_base * static_cast<double>(1 << a));  // the definition's s_base·2^α
    inv2[a] = _mm512_set1_pd(1.0 / static_cast<double>(1 << a));   // 2^−α, exact
  }
  __m512d acc[H][4];
  for (int h = 0; h < H; ++h) {
    for (int a = 0; a < 4; ++a) acc[h][a] = _mm512_setzero_pd();
  }
  constexpr int kNearest = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * C + cb;
    for (int h = 0; h < H; ++h) {
      const __m512d xv = _mm512_cvtps_pd(_mm256_maskz_loadu_ps(k[h], row + 8 * h));
      const __m512d v0 = _mm512_div_pd(xv, s);
      for (int a = 0; a < 4; ++a) {
        const __m512d v = _mm512_roundscale_pd(_mm512_mul_pd(v0, inv2[a]), kNearest);
        const __m512d q = _mm512_min_pd(_mm512_max_pd(v, dlo), dhi);
        const __m512d d = _mm512_sub_pd(xv, _mm512_mul_pd(q, sa[a]));
        acc[h][a] = _mm512_add_pd(acc[h][a], _mm512_mul_pd(d, d));
      }
    }
  }
  alignas(64) double lanes[8];
  for (int h = 0; h < H; ++h) {
    for (int a = 0; a < 4; ++a) {
      _mm512_store_pd(lanes, acc[h][a]);
      for (int j = 0; j < 8; ++j) {
        if ((k[h] >> j) & 1) err[(cb + 8 * h + j) * 4 + a] = lanes[j];
      }
    }
  }
}

}  // namespace
#endif

bool ptf_alpha_error_avx512(const float* x, int64_t rows, int64_t C, int64_t c0, int64_t c1, double s_base, i64 lo,
                            i64 hi, double* err) {
#if defined(MNQ_HAVE_X86_SIMD)
  if (supported_isa() != Isa::kAvx512) return false;
  // 16 channels (two vectors, eight accumulators) per sweep over the rows; a last block of 1..8 channels takes one.
  for (int64_t cb = c0; cb < c1; cb += 16) {
    const int64_t n = std::min<int64_t>(16, c1 - cb);
    const __mmask8 k[2] = {static_cast<__mmask8>(n >= 8 ? 0xff : (1u << n) - 1),
                           static_cast<__mmask8>(n >= 16 ? 0xff : n > 8 ? (1u << (n - 8)) - 1 : 0)};
    if (n > 8) {
      alpha_block<2>(x, rows, C, cb, k, s_base, lo, hi, err);
    } else {
      alpha_block<1>(x, rows, C, cb, k, s_base, lo, hi, err);
    }
  }
  return true;
#else
  return false;
#endif
}

int quantize_span(Isa path, const QuantSpan& sp, const CodeOut& out) { return span(path, sp, out); }
int quantize_span(Isa path, const QuantSpan& sp, const FakeOut& out) { return span(path, sp, out); }

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
