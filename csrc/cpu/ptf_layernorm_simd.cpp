// PTF LayerNorm's AVX-512 row path (ptf_layernorm_simd.h): intrinsics in functions compiled for AVX-512 whatever
// the file's -march; csrc/cpu/ptf_layernorm.cpp calls them when isa() allows.
#include "csrc/cpu/ptf_layernorm_simd.h"

#include <cmath>

#include "csrc/cpu/row_codes_simd.h"
#include "csrc/cpu/simd.h"

namespace mnq {
namespace ops {
namespace cpu {
namespace {

using kernels::i64;
using kernels::PtfParams;
using kernels::PtfRow;
using kernels::PtfRowFast;

#if defined(MNQ_HAVE_X86_SIMD)
// The lanes [0, n) of a 16- or 8-lane step (n < the width: the row's tail).
inline __mmask16 lanes16(int64_t n) { return n >= 16 ? 0xffff : static_cast<__mmask16>((1u << n) - 1); }
inline __mmask8 lanes8(int64_t n) { return n >= 8 ? 0xff : static_cast<__mmask8>((1u << n) - 1); }

// The redo of the lanes `redo` of step j with ptf_out, the definition.
inline void redo_lanes(unsigned redo, int64_t j, const int32_t* x, const PtfRow& row, const PtfParams& p,
                       int64_t* code, float* value, double scale) {
  for (; redo != 0; redo &= redo - 1) {
    const int64_t c = j + __builtin_ctz(redo);
    const i64 v = kernels::ptf_out(x[c], c, row, p);
    if (code != nullptr) {
      code[c] = v;
    } else {
      kernels::FloatOut{value, scale}.store(c, v);
    }
  }
}

// Σ of 8 int64 lanes, and of 16 int32 lanes widened first (their total may exceed 2^31).
MNQ_TARGET_AVX512 i64 sum_epi32_wide(__m512i v) {
  return _mm512_reduce_add_epi64(_mm512_add_epi64(_mm512_cvtepi32_epi64(_mm512_castsi512_si256(v)),
                                                  _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(v, 1))));
}

// Pass 1, int32 codes: 16 lanes. The squares of the even int32 lanes come from VPMULDQ on the 64-bit lanes as
// they are, those of the odd lanes after moving them down (the multiply reads the low 32 bits, sign-extended).
MNQ_TARGET_AVX512 bool load_int(const int32_t* q, const PtfParams& p, int32_t* x, i64& sx, i64& sxx) {
  const int64_t cols = p.cols;
  const __m512i lo = _mm512_set1_epi32(static_cast<int32_t>(p.lo)), hi = _mm512_set1_epi32(static_cast<int32_t>(p.hi));
  __m512i s1 = _mm512_setzero_si512(), s2 = _mm512_setzero_si512();
  __mmask16 bad = 0;
  for (int64_t j = 0; j < cols; j += 16) {
    const __mmask16 m = lanes16(cols - j);
    const __m512i v = _mm512_maskz_loadu_epi32(m, q + j);
    bad |= _mm512_mask_cmplt_epi32_mask(m, v, lo) | _mm512_mask_cmpgt_epi32_mask(m, v, hi);
    const __m512i xs = _mm512_sllv_epi32(v, _mm512_maskz_loadu_epi32(m, p.shift + j));  // q·2^sh, |x| ≤ 2^18
    _mm512_mask_storeu_epi32(x + j, m, xs);
    s1 = _mm512_add_epi32(s1, xs);
    const __m512i odd = _mm512_srli_epi64(xs, 32);
    s2 = _mm512_add_epi64(s2, _mm512_add_epi64(_mm512_mul_epi32(xs, xs), _mm512_mul_epi32(odd, odd)));
  }
  sx = sum_epi32_wide(s1);
  sxx = _mm512_reduce_add_epi64(s2);
  return bad == 0;
}

// Pass 1, float32 values: q = rint(x·(1/S[c])) in float64 (ln_float_code), 8 lanes; a NaN or a code outside
// [lo, hi] fails the ordered compares.
MNQ_TARGET_AVX512 bool load_float(const float* xf, const double* inv, const PtfParams& p, int32_t* x, i64& sx,
                                  i64& sxx) {
  const int64_t cols = p.cols;
  const __m512d lo = _mm512_set1_pd(static_cast<double>(p.lo)), hi = _mm512_set1_pd(static_cast<double>(p.hi));
  __m512i s1 = _mm512_setzero_si512(), s2 = _mm512_setzero_si512();
  __mmask8 bad = 0;
  for (int64_t j = 0; j < cols; j += 8) {
    const __mmask8 m = lanes8(cols - j);
    const __m512d v = _mm512_roundscale_pd(
        _mm512_mul_pd(_mm512_cvtps_pd(_mm256_maskz_loadu_ps(m, xf + j)), _mm512_maskz_loadu_pd(m, inv + j)),
        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    bad |= m & ~(_mm512_cmp_pd_mask(v, lo, _CMP_GE_OQ) & _mm512_cmp_pd_mask(v, hi, _CMP_LE_OQ));
    const __m256i xs = _mm256_sllv_epi32(_mm512_cvtpd_epi32(v), _mm256_maskz_loadu_epi32(m, p.shift + j));
    _mm256_mask_storeu_epi32(x + j, m, xs);
    const __m512i x64 = _mm512_cvtepi32_epi64(xs);
    s1 = _mm512_add_epi64(s1, x64);
    s2 = _mm512_add_epi64(s2, _mm512_mul_epi32(x64, x64));
  }
  sx = _mm512_reduce_add_epi64(s1);
  sxx = _mm512_reduce_add_epi64(s2);
  return bad == 0;
}

// Pass 1's step on 16 float32-derived codes v at column j: x = v·2^sh stored, Σx in int32 lanes (as load_int), Σx².
struct PtfMoments {
  const int32_t* shift;
  int32_t* x;
  __m512i& s1;
  __m512i& s2;
  MNQ_TARGET_AVX512 void operator()(__m512i v, __mmask16 k, int64_t j) const {
    const __m512i xs = _mm512_sllv_epi32(v, _mm512_maskz_loadu_epi32(k, shift + j));  // masked lanes: v = 0
    _mm512_mask_storeu_epi32(x + j, k, xs);
    s1 = _mm512_add_epi32(s1, xs);
    const __m512i odd = _mm512_srli_epi64(xs, 32);
    s2 = _mm512_add_epi64(s2, _mm512_add_epi64(_mm512_mul_epi32(xs, xs), _mm512_mul_epi32(odd, odd)));
  }
};

// Pass 1, float32 values with inv32: row_codes_simd.h's float32-then-float64 codes on per-channel scales.
MNQ_TARGET_AVX512 bool load_float16(const PtfRowIn& in, const PtfParams& p, int32_t* x, i64& sx, i64& sxx) {
  __m512i s1 = _mm512_setzero_si512(), s2 = _mm512_setzero_si512();
  const bool ok = float_row_codes_each(in.x, p.cols, ChannelInv{in.inv_scale, in.inv32}, p.lo, p.hi, nullptr,
                                       PtfMoments{p.shift, x, s1, s2});
  sx = sum_epi32_wide(s1);
  sxx = _mm512_reduce_add_epi64(s2);
  return ok;
}

// Pass 2: ptf_out_fast of kernels/ptf_layernorm_fast.h, 8 lanes, with its float64 operations in its order, and
// its certification with fewer instructions (`good` is the negation of its `exact`). Every difference is in the
// tests only and leaves them sound:
//   - A' = 0 or subnormal and z' ≥ 2^51 (NaN, ∞ included) need no compare of their own: z' = |A'|·2^N < 2^−969
//     is farther than 2^−20 from no integer, and for z' ≥ 2^51 the threshold 2^−20 + 2^−48·z' ≥ 8 exceeds any
//     distance to an integer; likewise |w'| > 2^51 makes 0.5 − 2^−20 − R − 2^−48·|w'| negative. So the distance
//     tests alone reject what ptf_out_fast's extra range tests reject.
//   - The two threshold expressions are evaluated with one rounding (FMA) instead of two: they decide, they are
//     not results, and the 2^−20 slack of the proof covers either rounding.
//   - M = floor(z') directly (ptf_out_fast's rint(z' − 1/2) is the same where certified); num = sign(A)·M·x + B
//     by one FMA (every operand and the sum are integers below 2^52: exact either way).
// Uncertified lanes are redone with ptf_out.
MNQ_TARGET_AVX512 void out_row(const int32_t* x, const PtfRow& row, const PtfRowFast& rf, const PtfParams& p,
                               const PtfRowOut& out) {
  const int64_t cols = p.cols;
  const __m512d abs_mask = _mm512_castsi512_pd(_mm512_set1_epi64(0x7fffffffffffffffLL));
  const __m512d sign_mask = _mm512_castsi512_pd(_mm512_set1_epi64(static_cast<long long>(0x8000000000000000ULL)));
  const __m512d zero = _mm512_setzero_pd();
  const __m512d inv_den = _mm512_set1_pd(rf.inv_den), inv_std = _mm512_set1_pd(rf.inv_std);
  const __m512d inv_sn = _mm512_set1_pd(rf.inv_sn), b_lim = _mm512_set1_pd(rf.b_lim), sx = _mm512_set1_pd(row.sx);
  const __m512d out_scale = _mm512_set1_pd(out.scale), eps48 = _mm512_set1_pd(0x1p-48);
  // Locals: the int64 stores could alias the structs' pointer members, which would be reloaded after each.
  const double *const cgamma = p.cgamma, *const gamma = p.gamma, *const beta = p.beta;
  int64_t* const code = out.code;
  float* const value = out.value;
  constexpr int kNearest = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  constexpr int kFloor = _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC;
  for (int64_t j = 0; j < cols; j += 8) {
    const __mmask8 m = lanes8(cols - j);
    const __m512d a = _mm512_mul_pd(_mm512_maskz_loadu_pd(m, cgamma + j), inv_den);
    const __m512d abs_a = _mm512_and_pd(a, abs_mask);
    // N = clamp(7 − floor(log2|A'|), 0, 31); VGETEXPPD is floor(log2) for a normal A' (others fail the test).
    // MAXPD/MINPD return their second operand for a NaN, so N is always in [0, 31].
    const __m512d n =
        _mm512_min_pd(_mm512_max_pd(_mm512_sub_pd(_mm512_set1_pd(7.0), _mm512_getexp_pd(abs_a)), zero),
                      _mm512_set1_pd(31.0));
    const __m512d z = _mm512_scalef_pd(abs_a, n);  // |A'|·2^N, exact
    const __m512d dist = _mm512_and_pd(_mm512_sub_pd(z, _mm512_roundscale_pd(z, kNearest)), abs_mask);
    __mmask8 good = _mm512_cmp_pd_mask(_mm512_fnmadd_pd(eps48, z, dist), _mm512_set1_pd(0x1p-20), _CMP_GE_OQ);
    const __m512d mf = _mm512_min_pd(_mm512_roundscale_pd(z, kFloor), _mm512_set1_pd(255.0));
    const __m512d q = _mm512_mul_pd(_mm512_mul_pd(sx, _mm512_maskz_loadu_pd(m, gamma + j)), inv_std);
    const __m512d w =
        _mm512_scalef_pd(_mm512_mul_pd(_mm512_sub_pd(_mm512_maskz_loadu_pd(m, beta + j), q), inv_sn), n);
    const __m512d wr = _mm512_roundscale_pd(w, kNearest);
    const __m512d room = _mm512_fnmadd_pd(eps48, _mm512_and_pd(w, abs_mask), b_lim);
    good &= _mm512_cmp_pd_mask(_mm512_and_pd(_mm512_sub_pd(w, wr), abs_mask), room, _CMP_LE_OQ);
    const __m512d sm = _mm512_or_pd(mf, _mm512_and_pd(a, sign_mask));  // copysign(M, A'), M ≥ +0
    const __m512d xd = _mm512_cvtepi32_pd(_mm256_maskz_loadu_epi32(m, x + j));
    const __m512d v = _mm512_scalef_pd(_mm512_fmadd_pd(sm, xd, wr), _mm512_sub_pd(zero, n));  // num·2^−N
    if (code != nullptr) {
      _mm512_mask_storeu_epi64(code + j, m, _mm512_cvt_roundpd_epi64(v, kNearest));
    } else {  // v·S as FloatOut: float(double(rint(v))·S) (+0 turns a −0 into the integer 0's +0)
      const __m512d r = _mm512_add_pd(_mm512_roundscale_pd(v, kNearest), zero);
      _mm256_mask_storeu_ps(value + j, m, _mm512_cvtpd_ps(_mm512_mul_pd(r, out_scale)));
    }
    if (static_cast<__mmask8>(m & ~good) != 0) redo_lanes(m & ~good, j, x, row, p, code, value, out.scale);
  }
}

// The short form of pass 2 for a row whose every channel has an unclamped N (see the header). Per row: the test,
// kr = fl(Σx/std), W ≥ every |w'| and the certification room.
//
// Exactness. N, M: with the row test, every A' is normal with e = floor(log2|A'|) ∈ [−24, 7] (the products are
// monotone in |C·γ|, so the row's extremes bound every element's), N' = 7 − e ∈ [0, 31] and z' = |A'|·2^N' ∈
// [128, 256) is the mantissa 1.m of A' times 2^7. z' is certified when it is at least 2^−19 from every integer,
// tested on the low 45 mantissa bits L (z' − floor(z') = L·2^−45): (L + 2^26) mod 2^45 ≥ 2^27. ptf_layernorm_fast.h
// needs 2^−20 + 2^−48·z' < 2^−19; so N and M are the definition's and M ≤ 255 needs no clamp. Then
//   α = sign(A)·M/2^N  is A' with its low 45 mantissa bits cleared (one AND).
// B: the definition's t = fl(fl(β − fl(fl(Σx·γ)/std))/S_next) and this form's w_pre = w'/2^N = fl(bs − kr·gs) (one
// FMA) with bs = fl(β/S_next), gs = fl(γ/S_next), kr = fl(Σx·fl(1/std)) both lie near T = β/S_next −
// (Σx/std)·(γ/S_next): |t − T| ≤ 2.01u·|T| + 2.02u·|Q| and |w_pre − T| ≤ 2.01u·|T| + 4.02u·|Q| (u = 2^−53,
// Q = (Σx/std)·γ/S_next, |β/S_next| ≤ |T| + |Q|), so |w' − 2^N·t| ≤ 4.1u·|w'| + 6.1u·2^N·|Q| + 2^−540 (subnormal
// terms, as in ptf_layernorm_fast.h), and 2^N·|Q| = (|Σx|/C)·|A|·2^N ≤ (|Σx|/C)·256·(1 + 5u). Both terms are below
// ptf_row_fast's R + 2^−48·|w'| (R ≥ 2^−48·(|Σx|/C)·256 + 2^−400), and |w'| ≤ W (computed with a 2^−30 margin),
// so |w' − rint(w')| ≤ room = b_lim − 2^−48·W certifies B = rint(w') as there. The host bound on B keeps bs, gs
// finite. B/2^N = rint(w')·2^(e−7) is w_pre rounded to a multiple of 2^(e−7), half to even:
//   β' = fl(fl(w_pre + K) − K)  with K = 1.5·2^(45+e)  (exponent bits of A' + 45, and the top mantissa bit)
// since |w_pre| < 2^(44+e) (|w'| ≤ W < 2^50) keeps w_pre + K in [2^(45+e), 2^(46+e)), whose spacing is 2^(e−7),
// and K is an even multiple of it; the subtraction is exact. d = β' − w_pre is exact too (a multiple of w_pre's
// ulp, at most 2^(e−8)), and |w' − rint(w')| = |d|·2^N ≤ room is |d| ≤ K·room/(1.5·2^52) (its one rounding is
// inside the certification's 2^−20 slack).
// Result: num = sign(A)·M·x + B is an integer below 2^52 (|M·x| < 2^26, |B| ≤ W), so fl(α·x + β') = num/2^N exactly
// (one FMA) and its rint is round_shr64(num, N). Uncertified lanes are redone with ptf_out. About 18 vector
// instructions per 8 elements, none of them the single-port VGETEXP/VSCALEF/VRNDSCALE (in the int64 output).
MNQ_TARGET_AVX512 bool out_row_scaled(const int32_t* x, const PtfRow& row, const PtfRowFast& rf, const PtfParams& p,
                                      const PtfScaled& sc, const PtfRowOut& out) {
  // No divisions here but ptf_row_fast's two: they would cost ~10% of a 384-column row. W and room_k only need
  // to bound (from above, resp. below), so products with a 2^−30 margin replace the quotients.
  const double amax = sc.max_cg * rf.inv_den, amin = sc.min_cg * rf.inv_den;
  if (!(amax < 256.0) || !(amin >= 0x1p-24)) return false;
  const double kr = row.sx * rf.inv_std;
  const double w_max = (sc.max_bs + std::fabs(kr) * sc.max_gs) * (256.0 * sc.inv_min_cg * row.den) * (1.0 + 0x1p-30);
  if (!(w_max < 0x1p50) || !(rf.b_lim - 0x1p-48 * w_max > 0.25)) return false;  // else most lanes would fail
  // room·2^(e−7) = K·room_k with K = 1.5·2^(45+e): room_k ≤ room / (1.5·2^52)
  const double room_k = (rf.b_lim - 0x1p-48 * w_max) * (0x1p-52 * (2.0 / 3.0) * (1.0 - 0x1p-30));
  const int64_t cols = p.cols;
  // (L + 2^26) mod 2^45 ≥ 2^27 is "one of bits 27..44 of a + 2^26 set": one VPTESTMQ instead of an AND and a compare.
  const __m512i half_lim = _mm512_set1_epi64(1LL << 26);
  const __m512i frac_hi = _mm512_set1_epi64(((1LL << 45) - 1) & ~((1LL << 27) - 1)), exp_mask = _mm512_set1_epi64(0x7ff0000000000000LL);
  const __m512i k_add = _mm512_set1_epi64((45LL << 52) | (1LL << 51)), alpha_mask = _mm512_set1_epi64(~((1LL << 45) - 1));
  const __m512i abs_mask = _mm512_set1_epi64(0x7fffffffffffffffLL);
  const __m512d zero = _mm512_setzero_pd(), inv_den = _mm512_set1_pd(rf.inv_den), vkr = _mm512_set1_pd(kr);
  const __m512d vroom = _mm512_set1_pd(room_k), out_scale = _mm512_set1_pd(out.scale);
  const double *const cgamma = p.cgamma, *const bs = sc.beta_s, *const gs = sc.gamma_s;
  int64_t* const code = out.code;
  float* const value = out.value;
  constexpr int kNearest = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  for (int64_t j = 0; j < cols; j += 8) {
    const __mmask8 m = lanes8(cols - j);
    const __m512i a = _mm512_castpd_si512(_mm512_mul_pd(_mm512_maskz_loadu_pd(m, cgamma + j), inv_den));
    const __m512d alpha = _mm512_castsi512_pd(_mm512_and_si512(a, alpha_mask));
    __mmask8 good = _mm512_mask_test_epi64_mask(m, _mm512_add_epi64(a, half_lim), frac_hi);
    const __m512d k = _mm512_castsi512_pd(_mm512_add_epi64(_mm512_and_si512(a, exp_mask), k_add));
    const __m512d w_pre = _mm512_fnmadd_pd(vkr, _mm512_maskz_loadu_pd(m, gs + j), _mm512_maskz_loadu_pd(m, bs + j));
    const __m512d b = _mm512_sub_pd(_mm512_add_pd(w_pre, k), k);  // B/2^N
    const __m512i d = _mm512_and_si512(_mm512_castpd_si512(_mm512_sub_pd(b, w_pre)), abs_mask);
    good &= _mm512_cmp_pd_mask(_mm512_castsi512_pd(d), _mm512_mul_pd(k, vroom), _CMP_LE_OQ);
    const __m512d xd = _mm512_cvtepi32_pd(_mm256_maskz_loadu_epi32(m, x + j));
    const __m512d v = _mm512_fmadd_pd(alpha, xd, b);  // num·2^−N
    if (code != nullptr) {
      _mm512_mask_storeu_epi64(code + j, m, _mm512_cvt_roundpd_epi64(v, kNearest));
    } else {
      const __m512d r = _mm512_add_pd(_mm512_roundscale_pd(v, kNearest), zero);
      _mm256_mask_storeu_ps(value + j, m, _mm512_cvtpd_ps(_mm512_mul_pd(r, out_scale)));
    }
    if (static_cast<__mmask8>(m & ~good) != 0) redo_lanes(m & ~good, j, x, row, p, code, value, out.scale);
  }
  return true;
}

// ptf_scaled_consts' values, once per call (O(C), ~1.5 µs of a 384-channel call when its extremes were a scalar
// loop): β/S_next and γ/S_next by vector divisions (the same IEEE quotients), and the extremes of |C·γ|, |β/S_next|,
// |γ/S_next| (γ, β finite: host-checked, so MIN/MAX need no NaN care; the masked-off tail lanes load and divide
// zeros, which cannot raise a maximum, and are kept out of the minimum by the mask). cols ≥ 1.
MNQ_TARGET_AVX512 void scaled_consts(const PtfParams& p, double* bs, double* gs, PtfScaled& sc) {
  const int64_t cols = p.cols;
  const __m512d sn = _mm512_set1_pd(p.scale_next);
  const __m512d abs_mask = _mm512_castsi512_pd(_mm512_set1_epi64(0x7fffffffffffffffLL));
  __m512d cg_min = _mm512_set1_pd(INFINITY), cg_max = _mm512_setzero_pd();
  __m512d b_max = _mm512_setzero_pd(), g_max = _mm512_setzero_pd();
  for (int64_t j = 0; j < cols; j += 8) {
    const __mmask8 m = lanes8(cols - j);
    const __m512d b = _mm512_div_pd(_mm512_maskz_loadu_pd(m, p.beta + j), sn);
    const __m512d g = _mm512_div_pd(_mm512_maskz_loadu_pd(m, p.gamma + j), sn);
    _mm512_mask_storeu_pd(bs + j, m, b);
    _mm512_mask_storeu_pd(gs + j, m, g);
    const __m512d cg = _mm512_and_pd(_mm512_maskz_loadu_pd(m, p.cgamma + j), abs_mask);
    cg_min = _mm512_mask_min_pd(cg_min, m, cg_min, cg);
    cg_max = _mm512_max_pd(cg_max, cg);
    b_max = _mm512_max_pd(b_max, _mm512_and_pd(b, abs_mask));
    g_max = _mm512_max_pd(g_max, _mm512_and_pd(g, abs_mask));
  }
  sc.min_cg = _mm512_reduce_min_pd(cg_min);
  sc.max_cg = _mm512_reduce_max_pd(cg_max);
  sc.max_bs = _mm512_reduce_max_pd(b_max);
  sc.max_gs = _mm512_reduce_max_pd(g_max);
}
#endif

}  // namespace

bool ptf_load_row(const PtfRowIn& in, const PtfParams& p, int32_t* x, i64& sx, i64& sxx) {
#if defined(MNQ_HAVE_X86_SIMD)
  if (in.q != nullptr) return load_int(in.q, p, x, sx, sxx);
  return in.inv32 != nullptr ? load_float16(in, p, x, sx, sxx) : load_float(in.x, in.inv_scale, p, x, sx, sxx);
#else
  return false;
#endif
}

void ptf_redo_lanes(unsigned redo, int64_t j, const int32_t* x, const PtfRow& row, const PtfParams& p,
                    const PtfRowOut& out) {
#if defined(MNQ_HAVE_X86_SIMD)
  redo_lanes(redo, j, x, row, p, out.code, out.value, out.scale);
#endif
}

bool ptf_out_row(const int32_t* x, const PtfRow& row, const PtfRowFast& rf, const PtfParams& p, const PtfRowOut& out,
                 const PtfScaled* sc) {
#if defined(MNQ_HAVE_X86_SIMD)
  if (sc != nullptr && ptf_out_row32(x, row, rf, p, *sc, out)) return true;
  if (sc != nullptr && out_row_scaled(x, row, rf, p, *sc, out)) return true;
  out_row(x, row, rf, p, out);
#endif
  return false;
}

bool ptf_inv32(const double* inv_scale, int64_t cols, float* inv32) {
  int bad = 0;  // bitwise, so that the loop vectorizes
  for (int64_t c = 0; c < cols; ++c) {
    bad |= (inv_scale[c] < 0x1p-100) | (inv_scale[c] > 0x1p100);  // positive scales: 1/S[c] > 0
    inv32[c] = static_cast<float>(inv_scale[c]);
  }
  return bad == 0;
}

namespace {

template <class G, class B>
bool host_consts(const int64_t* alpha, const G* g, const B* b, int64_t cols, double s_base, int32_t* shift,
                 double* values, double& g_max, double& b_max) {
  using kernels::kPtfMaxShift;
  int bad = 0;
  i64 a_min = kPtfMaxShift;
  double gm = 0.0, bm = 0.0;
  for (int64_t c = 0; c < cols; ++c) {
    const double gamma = static_cast<double>(g[c]), beta = static_cast<double>(b[c]);  // float32 widens exactly
    bad |= (alpha[c] < 0) | (alpha[c] > kPtfMaxShift) | !(gamma - gamma == 0.0) | !(beta - beta == 0.0);
    a_min = alpha[c] < a_min ? alpha[c] : a_min;
    gm = std::fmax(gm, std::fabs(gamma));  // NaN: the call is rejected (bad), so its maxima do not matter
    bm = std::fmax(bm, std::fabs(beta));
  }
  if (bad != 0) return false;
  double inv[kPtfMaxShift + 1];  // α ∈ {0..3} (checked above): four possible inverse scales
  for (int64_t a = 0; a <= kPtfMaxShift; ++a) inv[a] = kernels::ptf_inv_scale(a, s_base);
  for (int64_t c = 0; c < cols; ++c) {
    kernels::ptf_channel_consts_inv(alpha[c], a_min, static_cast<double>(g[c]), static_cast<double>(b[c]),
                                    inv[alpha[c]], cols, c, shift, values);
  }
  g_max = gm;
  b_max = bm;
  return true;
}

template <class G>
bool host_consts_g(const int64_t* alpha, const G* g, const float* b32, const double* b64, int64_t cols,
                   double s_base, int32_t* shift, double* values, double& g_max, double& b_max) {
  return b32 != nullptr ? host_consts(alpha, g, b32, cols, s_base, shift, values, g_max, b_max)
                        : host_consts(alpha, g, b64, cols, s_base, shift, values, g_max, b_max);
}

}  // namespace

bool ptf_host_consts(const int64_t* alpha, const float* g32, const double* g64, const float* b32, const double* b64,
                     int64_t cols, double s_base, int32_t* shift, double* values, double& g_max, double& b_max) {
  return g32 != nullptr ? host_consts_g(alpha, g32, b32, b64, cols, s_base, shift, values, g_max, b_max)
                        : host_consts_g(alpha, g64, b32, b64, cols, s_base, shift, values, g_max, b_max);
}

PtfScaled ptf_scaled_consts(const PtfParams& p, double* buf) {
  PtfScaled sc;
  sc.beta_s = buf;
  sc.gamma_s = buf + p.cols;
#if defined(MNQ_HAVE_X86_SIMD)
  if (p.cols > 0) scaled_consts(p, buf, buf + p.cols, sc);
#endif
  sc.inv_min_cg = 1.0 / sc.min_cg;  // +inf for a zero γ: such calls never take the short form (min_cg = 0)
  return sc;
}

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
