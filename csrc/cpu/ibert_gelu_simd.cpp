// I-BERT i-GELU's AVX-512 rows (ibert_gelu_simd.h).
#include "csrc/cpu/ibert_gelu_simd.h"

#include <algorithm>
#include <vector>

#include "csrc/cpu/ibert_gelu_f64_simd.h"
#include "csrc/cpu/row_codes_simd.h"
#include "csrc/cpu/simd.h"

namespace mnq {
namespace ops {
namespace cpu {
namespace {

using kernels::i64;
using kernels::IbertGeluParams;

#if defined(MNQ_HAVE_X86_SIMD)
// Rows computed per load of a column step's per-channel constants (12–40 bytes of them per lane: 18–60 KB per
// 1536-wide row, past L1, so that loading them for every row bounds the loops by L2 reads). The rows are 4 apart
// in memory, each still read and written in order.
constexpr int64_t kRowsPerLoad = 4;

inline __mmask8 lanes8(int64_t n) {
  return n >= 8 ? 0xff : (n <= 0 ? 0 : static_cast<__mmask8>((1u << n) - 1));
}

// The constants b, c, one of 8 lanes at columns [j, j + 8): loaded per channel (Channel), or one set broadcast
// (Uniform: a per-tensor scale, every channel's constants equal).
struct ChannelConsts {
  const IbertGeluParams& p;
  MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE __m512i b(int64_t j, __mmask8 k) const {
    return _mm512_maskz_loadu_epi64(k, p.b + j);
  }
  MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE __m512i c(int64_t j, __mmask8 k) const {
    return _mm512_maskz_loadu_epi64(k, p.c + j);
  }
  MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE __m512i one(int64_t j, __mmask8 k) const {
    return _mm512_maskz_loadu_epi64(k, p.one + j);
  }
};
struct UniformConsts {
  __m512i vb, vc, vone;
  MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE __m512i b(int64_t, __mmask8) const { return vb; }
  MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE __m512i c(int64_t, __mmask8) const { return vc; }
  MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE __m512i one(int64_t, __mmask8) const { return vone; }
};

// kernels::ibert_gelu on 8 lanes of columns [j, j + 8) (lanes outside k: any value). Two identities shorten the
// definition's steps: t = min(|q|, −b) + b = min(|q| + b, 0); and q = 0 needs no sign(q) = 0 case, since out =
// q·(y + one) is 0 whatever y (so sign(q)·p is −p for q < 0 and p otherwise).
template <bool kFactor32, class K>
MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE __m512i gelu8(__m512i q, const K& kc, int64_t j, __mmask8 k) {
  const __m512i zero = _mm512_setzero_si512();
  const __m512i t = _mm512_min_epi64(_mm512_add_epi64(_mm512_abs_epi64(q), kc.b(j, k)), zero);
  const __m512i pv = _mm512_add_epi64(_mm512_mul_epi32(t, t), kc.c(j, k));  // t² + c
  const __m512i sp = _mm512_mask_sub_epi64(pv, _mm512_cmplt_epi64_mask(q, zero), zero, pv);
  const __m512i f = _mm512_add_epi64(_mm512_srai_epi64(sp, kernels::kIbertGeluN), kc.one(j, k));
  return kFactor32 ? _mm512_mul_epi32(q, f) : _mm512_mullo_epi64(q, f);
}

// The codes of 8 lanes (k) at element i, column j; a lane without a code sets `bad` (float input) and loads 0, as
// FloatInC does.
MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE __m512i load8(const IbertGeluIn& in, const IbertGeluParams& p, int64_t i,
                                                  int64_t j, __mmask8 k, __mmask8& bad) {
  if (in.q != nullptr) {
    const __m512i q = _mm512_cvtepi32_epi64(_mm256_maskz_loadu_epi32(k, in.q + i));
    if (p.lo > INT32_MIN || p.hi < INT32_MAX) {  // a range narrower than int32's (the op declares int32's)
      bad |= _mm512_mask_cmplt_epi64_mask(k, q, _mm512_set1_epi64(p.lo)) |
             _mm512_mask_cmpgt_epi64_mask(k, q, _mm512_set1_epi64(p.hi));
    }
    return q;
  }
  const __m512d v = _mm512_roundscale_pd(
      _mm512_mul_pd(_mm512_cvtps_pd(_mm256_maskz_loadu_ps(k, in.x + i)), _mm512_maskz_loadu_pd(k, in.inv_scale + j)),
      _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __mmask8 ok = _mm512_cmp_pd_mask(v, _mm512_set1_pd(static_cast<double>(p.lo)), _CMP_GE_OQ) &
                      _mm512_cmp_pd_mask(v, _mm512_set1_pd(static_cast<double>(p.hi)), _CMP_LE_OQ);
  bad |= k & ~ok;
  return _mm512_maskz_cvtpd_epi64(ok, v);
}

// The float32 values float(double(v)·S_out[c]) of 8 lanes.
MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE __m256 value8(__m512i v, const double* s_out, __mmask8 k) {
  return _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_cvtepi64_pd(v), _mm512_maskz_loadu_pd(k, s_out)));
}

// Stores 16 float32 values (lanes k), or two 8-lane halves of int64 codes (lanes k0, k1): plain stores for whole
// steps.
MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE void store16(float* dst, __mmask16 k, __m512 f) {
  if (k == 0xffff) {
    _mm512_storeu_ps(dst, f);
  } else {
    _mm512_mask_storeu_ps(dst, k, f);
  }
}
MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE void store8x2(int64_t* dst, __mmask8 k0, __mmask8 k1, __m512i v0, __m512i v1) {
  if (k1 == 0xff) {
    _mm512_storeu_si512(dst, v0);
    _mm512_storeu_si512(dst + 8, v1);
  } else {
    _mm512_mask_storeu_epi64(dst, k0, v0);
    _mm512_mask_storeu_epi64(dst + 8, k1, v1);
  }
}

// Columns [j0, j1) of the rows, 16 per step (two 8-lane halves; full steps store whole 64-byte vectors), the tail
// masked.
template <bool kFactor32, class K>
MNQ_TARGET_AVX512 bool rows(const IbertGeluIn& in, const IbertGeluOut& out, const IbertGeluParams& p, const K& kc,
                            int64_t r0, int64_t r1, int64_t j0, int64_t j1) {
  const int64_t cols = p.cols;
  int64_t* const code = out.code;  // locals: the int64 stores could alias the structs' pointer members
  float* const value = out.value;
  const double* const s_out = out.s_out;
  __mmask8 bad = 0;
  for (int64_t r = r0; r < r1; r += kRowsPerLoad) {
    const int64_t nr = r1 - r < kRowsPerLoad ? r1 - r : kRowsPerLoad;
    for (int64_t j = j0; j < j1; j += 16) {
      const __mmask8 k0 = lanes8(j1 - j), k1 = lanes8(j1 - j - 8);
      const UniformConsts c0{kc.b(j, k0), kc.c(j, k0), kc.one(j, k0)};  // loaded once for nr rows
      const UniformConsts c1{kc.b(j + 8, k1), kc.c(j + 8, k1), kc.one(j + 8, k1)};
      for (int64_t i = 0; i < nr; ++i) {
        const int64_t base = (r + i) * cols;
        const __m512i v0 = gelu8<kFactor32>(load8(in, p, base + j, j, k0, bad), c0, j, k0);
        const __m512i v1 = gelu8<kFactor32>(load8(in, p, base + j + 8, j + 8, k1, bad), c1, j + 8, k1);
        if (code != nullptr) {
          store8x2(code + base + j, k0, k1, v0, v1);
        } else {
          const __m512 f = _mm512_insertf32x8(_mm512_castps256_ps512(value8(v0, s_out + j, k0)),
                                              value8(v1, s_out + j + 8, k1), 1);
          store16(value + base + j, static_cast<__mmask16>(k0 | (static_cast<unsigned>(k1) << 8)), f);
        }
      }
    }
  }
  return bad == 0;
}

// The QAT rows of a per-tensor scale with the step Values (NarrowValues, below) on constants K: the codes from
// row_codes_simd.h's float32-certified rounding (16 lanes; rint(x·(1/S)) in float64 where it cannot certify), as
// FloatInC defines them.
template <class Values, class K>
MNQ_TARGET_AVX512 bool rows_f32(const IbertGeluIn& in, const IbertGeluOut& out, const IbertGeluParams& p,
                                const K& kc, int64_t r0, int64_t r1) {
  const int64_t cols = p.cols;
  const __m512d so = _mm512_set1_pd(out.s_out[0]);
  const ScalarInv inv{in.inv_scale[0]};
  bool ok = true;
  for (int64_t r = r0; r < r1; ++r) {
    ok &= float_row_codes_each(in.x + r * cols, cols, inv, p.lo, p.hi, nullptr,
                               Values{kc, so, out.value + r * cols});
  }
  return ok;
}

// The narrow form: kernels::ibert_gelu's factor f = y + one of 16 int32 codes q in int32 lanes, for a per-tensor
// scale with b ≥ −32769. Bounds: q ≠ 0 has |t| = max(−b − |q|, 0) ≤ −b − 1 ≤ 32768, so VPMADDWD of |t| with itself
// is t² (the low word of |t|, read as a signed 16-bit word, is |t| − 2^16·[|t| = 32768], whose square is the same;
// the high word is 0); q = 0 may get a wrong t (|t| = 32769) but its output q·f is 0 whatever f. For |q| = 2^31
// (INT32_MIN, whose VPABSD is itself) −b − |q| wraps to −b − 2^31 < 0: t = 0, right. b ≥ −32769 gives
// 1/Se < 32770/1.769, so |c| = |floor(−3.4626/Se²)| < 1.19e9: p = t² + c ∈ [c, 2^30 + c] and −p fit int32, y =
// floor(±p/2^14) + one is bounded by ibert_gelu_max_factor ≈ 2|c|/2^14 < 2^18. As in gelu8, sign(q)·p is −p for
// q < 0 and p otherwise. q·f then needs 64 bits (|q·f| < 2^49): VPMULDQ of the even lanes, and of the odd lanes
// shifted down.
struct NarrowConsts {
  __m512i nb, c, one;  // −b, c, one as int32
};
struct Products {
  __m512i even, odd;  // q·f of lanes 0, 2, …, 14 and of lanes 1, 3, …, 15, as int64
};
MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE Products narrow16(__m512i q, const NarrowConsts& kc) {
  const __m512i zero = _mm512_setzero_si512();
  const __m512i nt = _mm512_max_epi32(_mm512_sub_epi32(kc.nb, _mm512_abs_epi32(q)), zero);  // |t|
  const __m512i pv = _mm512_add_epi32(_mm512_madd_epi16(nt, nt), kc.c);                      // t² + c
  const __m512i sp = _mm512_mask_sub_epi32(pv, _mm512_cmplt_epi32_mask(q, zero), zero, pv);
  const __m512i f = _mm512_add_epi32(_mm512_srai_epi32(sp, kernels::kIbertGeluN), kc.one);
  return Products{_mm512_mul_epi32(q, f), _mm512_mul_epi32(_mm512_srli_epi64(q, 32), _mm512_srli_epi64(f, 32))};
}

struct UniformNarrow {
  NarrowConsts kc;
  MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE NarrowConsts at(int64_t, __mmask16) const { return kc; }
};

// The QAT values of the narrow form: float(double(q·f)·S_out) of the even and the odd lanes (the int64 → float64
// conversion is the definition's own; so_even / so_odd: S_out of those lanes' channels), interleaved by one
// VPERMT2PS, stored at row + j.
MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE void store_narrow_values(float* row, int64_t j, __mmask16 k, const Products& v,
                                                             __m512d so_even, __m512d so_odd) {
  const __m256 fe = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_cvtepi64_pd(v.even), so_even));
  const __m256 fo = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_cvtepi64_pd(v.odd), so_odd));
  const __m512i idx = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  store16(row + j, k, _mm512_permutex2var_ps(_mm512_castps256_ps512(fe), idx, _mm512_castps256_ps512(fo)));
}

// A float_row_codes_each step of the narrow form's QAT rows, per-tensor scale.
struct NarrowValues {
  const NarrowConsts& kc;
  __m512d so;  // S_out
  float* row;
  MNQ_TARGET_AVX512 void operator()(__m512i q, __mmask16 k, int64_t j) const {
    store_narrow_values(row, j, k, narrow16(q, kc), so, so);
  }
};

// The QAT rows of a per-tensor scale outside the narrow form (ibert_gelu_f64_simd.h), 16 lanes per loop turn.
MNQ_TARGET_AVX512 bool rows_f64(const IbertGeluIn& in, const IbertGeluOut& out, const IbertGeluParams& p, int64_t r0,
                                int64_t r1) {
  constexpr double kM = 0x1.8p52;
  const F64Consts kc{_mm512_set1_pd(in.inv_scale[0]),
                     _mm512_set1_pd(kM),
                     _mm512_set1_pd(static_cast<double>(-p.b[0])),
                     _mm512_set1_pd(static_cast<double>(p.c[0])),
                     _mm512_set1_pd(kM - static_cast<double>(p.one[0])),
                     _mm512_set1_pd(out.s_out[0]),
                     _mm512_set1_pd(static_cast<double>(p.lo)),
                     _mm512_set1_pd(static_cast<double>(p.hi))};
  const int64_t cols = p.cols;
  __mmask8 bad = 0;
  for (int64_t r = r0; r < r1; ++r) {
    const float* x = in.x + r * cols;
    float* v = out.value + r * cols;
    for (int64_t j = 0; j < cols; j += 16) {
      const __mmask16 k = simd_lanes16(cols - j);
      const __m512 xv = _mm512_maskz_loadu_ps(k, x + j);
      const __m256 f0 = gelu_f64(_mm512_castps512_ps256(xv), static_cast<__mmask8>(k), kc, bad);
      const __m256 f1 = gelu_f64(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(xv), 1)),
                                 static_cast<__mmask8>(k >> 8), kc, bad);
      store16(v + j, k, _mm512_insertf32x8(_mm512_castps256_ps512(f0), f1, 1));
    }
  }
  return bad == 0;
}

// Per-channel scales (columns = channels): the same two forms with the constants of 16 (narrow) or 8 (float64)
// channels loaded as vectors at each step, from int32 / float64 copies made once per block of rows (rows_channel,
// below: every row reuses them). The narrow form needs b ≥ −32769 in every channel
// (the plan's check; narrow16's bounds then hold lane by lane, since each lane only meets its own channel's
// constants, and the same for the QAT rows' float32-certified codes with 1/S[c] per lane); the float64 form holds
// for any valid constants, so the QAT rows take it wherever the narrow form does not apply.
struct ChannelNarrow {
  const int32_t* k;  // [3, cols]: −b, c, one
  int64_t cols;
  MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE NarrowConsts at(int64_t j, __mmask16 m) const {
    return NarrowConsts{_mm512_maskz_loadu_epi32(m, k + j), _mm512_maskz_loadu_epi32(m, k + cols + j),
                        _mm512_maskz_loadu_epi32(m, k + 2 * cols + j)};
  }
};

// A float_row_codes_each step of the narrow form's QAT rows, per-channel scales: the constants of the step's 16
// channels, and their S_out from so16 (per 16 channels: the 8 even channels' S_out, then the 8 odd ones', the
// lanes of narrow16's even and odd products).
struct ChannelNarrowValues {
  const ChannelNarrow& kn;
  const double* so16;
  float* row;
  MNQ_TARGET_AVX512 void operator()(__m512i q, __mmask16 k, int64_t j) const {
    store_narrow_values(row, j, k, narrow16(q, kn.at(j, k)), _mm512_loadu_pd(so16 + j), _mm512_loadu_pd(so16 + j + 8));
  }
};

// The int64 codes of int32 input, 16 lanes per step (the row's tail masked), on constants K: UniformNarrow (a
// per-tensor scale) or ChannelNarrow, whose at(j, m) gives the NarrowConsts of columns [j, j + 16).
template <class K>
MNQ_TARGET_AVX512 bool rows_narrow(const IbertGeluIn& in, const IbertGeluOut& out, const IbertGeluParams& p,
                                   const K& kc, int64_t r0, int64_t r1) {
  const int64_t cols = p.cols;
  const int32_t* const qin = in.q;
  int64_t* const code = out.code;
  const bool check = p.lo > INT32_MIN || p.hi < INT32_MAX;  // a range narrower than int32's (the op declares int32's)
  const __m512i vlo = _mm512_set1_epi32(static_cast<int32_t>(p.lo < INT32_MIN ? INT32_MIN : p.lo));
  const __m512i vhi = _mm512_set1_epi32(static_cast<int32_t>(p.hi > INT32_MAX ? INT32_MAX : p.hi));
  const __m512i lo_idx = _mm512_set_epi64(11, 3, 10, 2, 9, 1, 8, 0);  // even[0], odd[0], even[1], …
  const __m512i hi_idx = _mm512_set_epi64(15, 7, 14, 6, 13, 5, 12, 4);
  __mmask16 bad = 0;
  for (int64_t r = r0; r < r1; r += kRowsPerLoad) {
    const int64_t nr = r1 - r < kRowsPerLoad ? r1 - r : kRowsPerLoad;
    for (int64_t j = 0; j < cols; j += 16) {
      const __mmask16 m = simd_lanes16(cols - j);
      const NarrowConsts kj = kc.at(j, m);  // loaded once for nr rows
      for (int64_t i = 0; i < nr; ++i) {
        const int64_t base = (r + i) * cols;
        const __m512i q = _mm512_maskz_loadu_epi32(m, qin + base + j);
        if (check) bad |= _mm512_mask_cmplt_epi32_mask(m, q, vlo) | _mm512_mask_cmpgt_epi32_mask(m, q, vhi);
        const Products v = narrow16(q, kj);
        const __m512i v0 = _mm512_permutex2var_epi64(v.even, lo_idx, v.odd);
        const __m512i v1 = _mm512_permutex2var_epi64(v.even, hi_idx, v.odd);
        store8x2(code + base + j, static_cast<__mmask8>(m), static_cast<__mmask8>(m >> 8), v0, v1);
      }
    }
  }
  return bad == 0;
}

// The QAT rows of per-channel scales in float64 lanes (ibert_gelu_f64_simd.h), 16 lanes per loop turn: 1/S, −b, c,
// M − one and S_out of 8 channels loaded per half, from k: groups of 40 doubles per 8 channels in that order (one
// sequential stream instead of five; padded to whole 16-channel steps). A channel whose scale is out of range never
// reaches here: the op refuses it before the kernel.
constexpr double kM52 = 0x1.8p52;  // ibert_gelu_f64_simd.h's M
constexpr int64_t kF64Group = 40;  // doubles per 8 channels: 1/S, −b, c, M − one, S_out
MNQ_TARGET_AVX512 bool rows_f64_channel(const IbertGeluIn& in, const IbertGeluOut& out, const IbertGeluParams& p,
                                        const double* k, int64_t r0, int64_t r1, int64_t j0, int64_t j1) {
  constexpr double kM = kM52;
  const int64_t cols = p.cols;
  const __m512d vm = _mm512_set1_pd(kM), lo = _mm512_set1_pd(static_cast<double>(p.lo)),
                hi = _mm512_set1_pd(static_cast<double>(p.hi));
  __mmask8 bad = 0;
  for (int64_t r = r0; r < r1; r += kRowsPerLoad) {
    const int64_t nr = std::min<int64_t>(kRowsPerLoad, r1 - r);
    for (int64_t j = j0; j < j1; j += 16) {
      const __mmask16 m = simd_lanes16(j1 - j);
      const __mmask8 m0 = static_cast<__mmask8>(m), m1 = static_cast<__mmask8>(m >> 8);
      const double* g = k + (j / 8) * kF64Group;
      const F64Consts k0{_mm512_loadu_pd(g),      vm, _mm512_loadu_pd(g + 8),  _mm512_loadu_pd(g + 16),
                         _mm512_loadu_pd(g + 24), _mm512_loadu_pd(g + 32), lo, hi};
      const F64Consts k1{_mm512_loadu_pd(g + 40), vm, _mm512_loadu_pd(g + 48), _mm512_loadu_pd(g + 56),
                         _mm512_loadu_pd(g + 64), _mm512_loadu_pd(g + 72), lo, hi};
      for (int64_t i = 0; i < nr; ++i) {
        const int64_t at = (r + i) * cols + j;
        const __m512 xv = _mm512_maskz_loadu_ps(m, in.x + at);
        const __m256 f0 = gelu_f64(_mm512_castps512_ps256(xv), m0, k0, bad);
        const __m256 f1 = gelu_f64(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(xv), 1)), m1, k1, bad);
        store16(out.value + at, m, _mm512_insertf32x8(_mm512_castps256_ps512(f0), f1, 1));
      }
    }
  }
  return bad == 0;
}

// The per-channel rows, 4 rows per constant load across whole rows (column blocks of 256 that kept the constants in
// L1 measured slower: 1.9× instead of 1.4× float gelu at [8, 197, 1536] for the narrow form). The constants are
// converted once per call of this (a block of rows) to the forms' types: int32 for the narrow form, int32 input or
// float input (the plan checked that each fits: narrow16's bounds), float64 for the other QAT rows (exact:
// |b| < 2^23, |c| < 2^46, |one| < 2^33).
MNQ_TARGET_AVX512 bool rows_channel(const IbertGeluIn& in, const IbertGeluOut& out, const IbertGeluParams& p,
                                    const IbertGeluPlan& plan, int64_t r0, int64_t r1) {
  const int64_t cols = p.cols;
  if (in.x != nullptr && plan.narrow) {
    // The QAT rows of the narrow form: codes certified in float32 (row_codes_simd.h's ChannelInv, whose
    // fl32(1/S[c]) must be normal float32 values in [2^−100, 2^100]: the op's scale range [4.4e-7, 2.5) gives 1/S in
    // (0.39, 2.3e6)), the int32 lanes, S_out per lane.
    std::vector<int32_t> k32(3 * cols);
    std::vector<float> r32(cols);
    std::vector<double> so16((cols + 15) / 16 * 16);  // zeros past cols
    for (int64_t j = 0; j < cols; ++j) {
      k32[j] = static_cast<int32_t>(-p.b[j]);
      k32[cols + j] = static_cast<int32_t>(p.c[j]);
      k32[2 * cols + j] = static_cast<int32_t>(p.one[j]);
      r32[j] = static_cast<float>(in.inv_scale[j]);
      so16[j / 16 * 16 + (j % 2) * 8 + (j % 16) / 2] = out.s_out[j];
    }
    const ChannelNarrow kn{k32.data(), cols};
    const ChannelInv inv{in.inv_scale, r32.data()};
    bool ok = true;
    for (int64_t r = r0; r < r1; ++r) {
      ok &= float_row_codes_each(in.x + r * cols, cols, inv, p.lo, p.hi, nullptr,
                                 ChannelNarrowValues{kn, so16.data(), out.value + r * cols});
    }
    return ok;
  }
  std::vector<int32_t> k32(plan.narrow && in.x == nullptr ? 3 * cols : 0);
  std::vector<double> k64(in.x != nullptr ? (cols + 15) / 16 * 2 * kF64Group : 0);  // zeros past cols
  for (int64_t j = 0; j < cols; ++j) {
    if (!k32.empty()) {
      k32[j] = static_cast<int32_t>(-p.b[j]);
      k32[cols + j] = static_cast<int32_t>(p.c[j]);
      k32[2 * cols + j] = static_cast<int32_t>(p.one[j]);
    }
    if (!k64.empty()) {
      double* g = k64.data() + (j / 8) * kF64Group + j % 8;
      g[0] = in.inv_scale[j];
      g[8] = static_cast<double>(-p.b[j]);
      g[16] = static_cast<double>(p.c[j]);
      g[24] = kM52 - static_cast<double>(p.one[j]);
      g[32] = out.s_out[j];
    }
  }
  const ChannelNarrow kn{k32.data(), cols};
  const ChannelConsts kc{p};
  if (in.x != nullptr) return rows_f64_channel(in, out, p, k64.data(), r0, r1, 0, cols);
  if (plan.narrow) return rows_narrow(in, out, p, kn, r0, r1);
  return plan.factor32 ? rows<true>(in, out, p, kc, r0, r1, 0, cols) : rows<false>(in, out, p, kc, r0, r1, 0, cols);
}

// The rows of a plan (the broadcast constants built here: intrinsics only in AVX-512 functions, whatever the file's
// -march).
MNQ_TARGET_AVX512 bool rows_of_plan(const IbertGeluIn& in, const IbertGeluOut& out, const IbertGeluParams& p,
                                    const IbertGeluPlan& plan, int64_t r0, int64_t r1) {
  if (!plan.uniform) return rows_channel(in, out, p, plan, r0, r1);
  if (plan.narrow) {
    const NarrowConsts nc{_mm512_set1_epi32(static_cast<int32_t>(-p.b[0])),
                          _mm512_set1_epi32(static_cast<int32_t>(p.c[0])),
                          _mm512_set1_epi32(static_cast<int32_t>(p.one[0]))};
    return in.x != nullptr ? rows_f32<NarrowValues>(in, out, p, nc, r0, r1)
                           : rows_narrow(in, out, p, UniformNarrow{nc}, r0, r1);
  }
  if (in.x != nullptr) return rows_f64(in, out, p, r0, r1);
  const UniformConsts kc{_mm512_set1_epi64(p.b[0]), _mm512_set1_epi64(p.c[0]), _mm512_set1_epi64(p.one[0])};
  return plan.factor32 ? rows<true>(in, out, p, kc, r0, r1, 0, p.cols) : rows<false>(in, out, p, kc, r0, r1, 0, p.cols);
}
#endif

}  // namespace

IbertGeluPlan ibert_gelu_plan(const IbertGeluIn& in, const IbertGeluOut& out, const IbertGeluParams& p) {
  // Branch-free reductions over the channels (they vectorize): per call, for 1536 per-channel constants, the
  // short-circuit form took ~6 µs, more than a batch-1 row's kernel time.
  const int64_t cols = p.cols;
  const i64 *b = p.b, *c = p.c, *one = p.one;
  int diff = 0;
  for (int64_t j = 0; j < cols; ++j) diff |= (b[j] != b[0]) | (c[j] != c[0]) | (one[j] != one[0]);
  for (const double* v : {in.inv_scale, out.s_out}) {
    if (v == nullptr) continue;
    for (int64_t j = 0; j < cols; ++j) diff |= v[j] != v[0];  // NaN differs, as == would have it
  }
  IbertGeluPlan plan{true, diff == 0, true};
  const int64_t n = plan.uniform ? 1 : cols;  // one channel stands for all when they are equal
  int wide = 0, far = 0;
  for (int64_t j = 0; j < n; ++j) {
    wide |= kernels::ibert_gelu_max_factor(kernels::IbertGeluConsts{b[j], c[j], one[j]}) > 2147483647;
    far |= b[j] < -32769;  // narrow16's bound
  }
  plan.factor32 = wide == 0;
  plan.narrow = far == 0;
  return plan;
}

bool ibert_gelu_rows(const IbertGeluIn& in, const IbertGeluOut& out, const IbertGeluParams& p,
                     const IbertGeluPlan& plan, int64_t r0, int64_t r1) {
#if defined(MNQ_HAVE_X86_SIMD)
  return rows_of_plan(in, out, p, plan, r0, r1);
#else
  return false;
#endif
}

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
