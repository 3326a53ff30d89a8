// PTF LayerNorm's pass 2 in float32 lanes (ptf_layernorm_simd.h: ptf_out_row32), 16 channels per step where the
// float64 short form (ptf_layernorm_simd.cpp, out_row_scaled) takes 8. Its cost is per (row, channel): M, N and B
// depend on the row's std, so they are made for every element; here they are made in float32 from float32 copies
// of the per-call channel values and certified against the definition (kernels/ptf_layernorm.h ptf_out) with wider
// margins, and uncertified lanes are redone with ptf_out. v = 2^−24 below (float32's unit roundoff), u = 2^−53.
//
// M, N. A32 = fl32(cg32·r32), cg32 = fl32(C·γ[c]), r32 = fl32(fl64(1/den)); the definition's A = fl64(C·γ/den).
// |A32 − A| ≤ (3v + 3u)(1 + v)²·|A| < 3.01v·|A|. With e = floor(log2|A32|) and N' = 7 − e (the row test keeps
// |A| in [2^−24, 256), so N unclamped), z32 = |A32|·2^N' ∈ [128, 256) has the 16 low mantissa bits L of A32 as its
// fraction (z32 − floor(z32) = L·2^−16), and |z − z32| ≤ 3.01v·|A|·2^N' ≤ 3.01·2^−16·(1 + 2^−16)… < 4·2^−16 for
// z = |A|·2^N'. Every breakpoint of (N, M) is an integer value of z (ptf_layernorm_fast.h), so L ∈ [4, 2^16 − 4]
// puts z and z32 strictly between the same two integers: N = N', M = floor(z32), and sign(A)·M/2^N is A32 with
// its low 16 mantissa bits cleared. The test: bits 3..15 of A32's bits + 4 not all zero (one VPTESTMD).
//
// B = rint(t·2^N), t = fl(fl(β − fl(fl(Σx·γ)/std))/S_next). Here w = fl32(bs32 − kr32·gs32) (one FMA) with
// bs32 = fl32(fl64(β/S_next)), gs32 = fl32(fl64(γ/S_next)), kr32 = fl32(fl64(Σx·fl64(1/std))). With
// T = β/S_next − (Σx/std)·γ/S_next and Q = (Σx/std)·γ/S_next: |t − T| ≤ 2.01u·|T| + 2.02u·|Q| (ptf_layernorm_fast.h),
// |bs32 − β/S_next| ≤ 1.01v·|β/S_next|, |kr32·gs32 − Q| ≤ 2.01v·|Q|, and the FMA's rounding ≤ v·|w|, so
// |w − t| ≤ 1.0001v·|w| + 1.01v·|β/S_next| + 2.01v·|Q| + (terms in u); with |w| ≤ (|bs| + |kr·gs|)(1 + 3.1v) that
// is ≤ E = 2.02v·|bs| + 3.02v·|kr|·|gs| + 2^−148·(2 + |kr|) (float32 subnormals: 2^−150 absolute errors), made per
// lane as |kr32|·e2[c] + e1[c] from per-call channel terms rounded up (e1 = 2.04v·|bs| + 2^−126, e2 = 3.05v·|gs| +
// 2^−126 — the least normal float32, above the bound's 2^−146, because a subnormal FMA operand costs a microcode
// assist: with β = 0, every e1 was 2^−146 and the pass ran ~20× slower; |kr| ≤ |kr32|·(1 + 2^−20)). Per row U = (max|bs| + |kr|·max|gs|)·(1 + 2^−20) bounds every |w|. B/2^N is w
// rounded to a multiple of 2^−N = 2^(e−7), half to even: b = fl32(fl32(w + K) − K), K = 1.5·2^(e+16) (from A32's
// exponent bits), exact while |w| < 2^(e+15) (then w + K stays in [2^(e+16), 2^(e+17)), whose spacing is 2^(e−7));
// d = b − w is exact (a multiple of w's ulp, |d| ≤ 2^(e−8)). If |d| ≤ 2^(e−7)·(1/2 − 2^−20) − E, then
// |t·2^N − rint(w·2^N)| < 1/2 and B = rint(w·2^N) = b·2^N. The threshold is fl32(K·c − E′) with c = fl32 of
// (1/2 − 2^−20)/(1.5·2^23) rounded down and E′ the lane's E: its one rounding (≤ 2^−24 relative) is inside the
// 2^−20 slack.
//
// Element: num·2^−N = fl32(α·x + b) with α = sign(A)·M·2^−N, |x| ≤ 2^18: exact when |num| = |sign(A)·M·x + B| <
// 2^24 (a 24-bit integer times a power of two), which the row test ensures: 255·max|x| + 2^N_max·(U + 1) < 2^23,
// with max|x|² ≤ Σx² < ((std + 1)² + (Σx)²)/C (std = isqrt(C·Σx² − (Σx)²)) and 2^N_max < 256/min|A|. Then rint
// (VCVTPS2DQ, round to nearest even) is round_shr64(num, N), the definition's out.
//
// Float output: FloatOut's fl32(fl64(out)·S). With PtfRowOut::out32 (ptf_out32: fake_store32 certified, by
// evaluating both, that fma(q, s_hi, fl32(q·s_lo)) = fl32(fl64(q)·S) bit for bit for every integer q in
// [−512, 511], with +0.0 for q = 0): o = (v + 1.5·2^23) − 1.5·2^23 is rint(v) as a float32 (exact for
// |v| ≤ 2^22) with a zero as +0.0 (x − x is +0 to nearest, where rint of v ∈ [−1/2, 0) is −0.0), and the stored
// fma(o, s_hi, fl32(o·s_lo)) is the definition's value on the lanes with v ∈ [−512, 511] (then out = rint(v) ∈
// [−512, 511]); the other lanes are redone with ptf_out and FloatOut. Per 16 elements: two adds (rint by 1.5·2^23),
// VMULPS, an FMA, two compares and one 64-byte store, where the float64 form takes the conversion, an extract,
// 2 VCVTDQ2PD, 2 VMULPD, 2 VCVTPD2PS and two 32-byte stores. ptf_out32 uses the pair only for calls with
// max|γ/S_next|·8 + max|β/S_next| ≤ 511 (codes beyond need |z| > 8, z the normalized input), so that redone lanes
// stay rare; otherwise the float64 form.
//
// The full 16-lane steps of a row load without masks (Step32 with the constant mask 0xffff), the tail with one.
//
// Cost: ~21 vector instructions per 16 elements (int64 output) where the float64 short form takes ~40; a lane fails
// B's test with probability about 2·E·2^N (E as above, ~2^−10 on ViT-like rows) and is redone by ptf_out.
//
// Rows the tests refuse (|w| too large for float32, the largest E above 2^−5 of 2^−N_max, |num| possibly ≥ 2^24)
// return false: the caller takes the float64 forms.
#include <cmath>

#include "csrc/cpu/fake_store_simd.h"
#include "csrc/cpu/ptf_layernorm_simd.h"
#include "csrc/cpu/simd.h"

namespace mnq {
namespace ops {
namespace cpu {

using kernels::i64;
using kernels::PtfParams;
using kernels::PtfRow;
using kernels::PtfRowFast;

void ptf_scaled_consts32(const PtfParams& p, PtfScaled& sc, float* buf) {
  const int64_t cols = p.cols;
  // cg32 normal float32s (their relative error is the proof's v): otherwise no row takes the float32 form.
  if (!(sc.min_cg >= 0x1p-125) || !(sc.max_cg <= 0x1p126)) return;
  for (int64_t c = 0; c < cols; ++c) {
    buf[c] = static_cast<float>(p.cgamma[c]);
    buf[cols + c] = static_cast<float>(sc.beta_s[c]);
    buf[2 * cols + c] = static_cast<float>(sc.gamma_s[c]);
  }
  // The per-channel error terms of B's test, rounded up (the factors carry a 2^−20 margin over the proof's 2.02
  // and 3.02, which covers the float32 conversions and the per-lane FMA E = |kr32|·e2 + e1).
  for (int64_t c = 0; c < cols; ++c) {
    buf[3 * cols + c] = static_cast<float>(2.04 * 0x1p-24 * std::fabs(sc.beta_s[c]) + 0x1p-126);
    buf[4 * cols + c] = static_cast<float>(3.05 * 0x1p-24 * std::fabs(sc.gamma_s[c]) + 0x1p-126);
  }
  sc.cg32 = buf;
  sc.bs32 = buf + cols;
  sc.gs32 = buf + 2 * cols;
  sc.e1_32 = buf + 3 * cols;
  sc.e2_32 = buf + 4 * cols;
}

#if defined(MNQ_HAVE_X86_SIMD)
namespace {

inline __mmask16 lanes16(int64_t n) { return n >= 16 ? 0xffff : static_cast<__mmask16>((1u << n) - 1); }

// The per-row constants of the float32 form, or false when the row fails a test (see the file comment).
struct Row32 {
  float r32, kr32, abs_kr32;
};

bool row_ok(const PtfRow& row, const PtfRowFast& rf, const PtfParams& p, const PtfScaled& sc, Row32& r) {
  const double amax = sc.max_cg * rf.inv_den, amin = sc.min_cg * rf.inv_den;
  if (!(amax < 255.0) || !(amin >= 0x1p-23)) return false;  // N unclamped, with room for the float32 errors
  if (!(rf.inv_den >= 0x1p-125) || !(rf.inv_den <= 0x1p126)) return false;  // r32 a normal float32
  const double kr = row.sx * rf.inv_std;
  const double u = (sc.max_bs + std::fabs(kr) * sc.max_gs) * (1.0 + 0x1p-20);  // U
  // |w| < 2^(e+15) for every channel (2^e > amin/2); and the largest E at most 2^−5 of 2^−N_max = 2^(e_min−7), so
  // that at most ~6% of a row's lanes fail B's test (each is redone by ptf_out, ~20 times a lane's cost here; the
  // per-lane E is usually far smaller: ~0.1% on ViT-like rows).
  const double e_max = 0x1.9p-23 * u + 0x1p-140;
  if (!(u < amin * 0x1p13) || !(e_max < amin * 0x1p-13)) return false;
  // |num| < 2^24: max|x|² ≤ Σx² = (std² + (Σx)²)/C within (2·std + 1)/C, 2^N ≤ 2^7/2^e < 256/amin.
  const double sxx = ((row.stdv + 1.0) * (row.stdv + 1.0) + row.sx * row.sx) / static_cast<double>(p.cols);
  const double xmax = std::sqrt(sxx) * (1.0 + 0x1p-30) + 1.0;
  if (!(255.0 * xmax + (256.0 / amin) * (u + 1.0) < 0x1p23)) return false;
  const float kr32 = static_cast<float>(kr);
  r = Row32{static_cast<float>(rf.inv_den), kr32, std::fabs(kr32) * (1.0f + 0x1p-20f)};  // ≥ |kr|
  return true;
}

// The output forms of out_row32: int64 codes, float32 values through float64 (FloatOut's fl32(fl64(out)·S)), or
// float32 values through fake_store32's certified pair (PtfRowOut::out32, codes within ±kPtfOut32Max).
enum class Out32 { kCode, kValue64, kValue32 };

// One 16-lane step of out_row32 at column j, lanes m (a constant 0xffff in the row's full steps, so that the
// loads need no mask there).
struct Step32 {
  __m512i plus4, l_bits, alpha_mask, exp_mask, k_add, abs_mask;
  __m512 c, r32, kr32, abs_kr, s_hi, s_lo, o_max, o_min, round_magic;
  __m512d out_scale;
  const float *cg, *bs, *gs, *e1, *e2;
  const int32_t* x;
  int64_t* code;
  float* value;

  template <Out32 kOut>
  MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE unsigned step(int64_t j, __mmask16 m) const {
    constexpr int kNearest = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
    const __m512i a = _mm512_castps_si512(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, cg + j), r32));
    __mmask16 good = _mm512_mask_test_epi32_mask(m, _mm512_add_epi32(a, plus4), l_bits);
    const __m512 alpha = _mm512_castsi512_ps(_mm512_and_si512(a, alpha_mask));
    const __m512 k = _mm512_castsi512_ps(_mm512_add_epi32(_mm512_and_si512(a, exp_mask), k_add));
    const __m512 w = _mm512_fnmadd_ps(kr32, _mm512_maskz_loadu_ps(m, gs + j), _mm512_maskz_loadu_ps(m, bs + j));
    const __m512 b = _mm512_sub_ps(_mm512_add_ps(w, k), k);
    const __m512 d = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(_mm512_sub_ps(b, w)), abs_mask));
    const __m512 e = _mm512_fmadd_ps(abs_kr, _mm512_maskz_loadu_ps(m, e2 + j), _mm512_maskz_loadu_ps(m, e1 + j));
    good &= _mm512_cmp_ps_mask(d, _mm512_fmsub_ps(k, c, e), _CMP_LE_OQ);
    const __m512 xv = _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(m, x + j));
    const __m512 v = _mm512_fmadd_ps(alpha, xv, b);  // num·2^−N, exact
    if constexpr (kOut == Out32::kValue32) {
      // out = rint(v) ∈ [−kPtfOut32Max − 1, kPtfOut32Max] when v is (other lanes: redone), as (v + R) − R with
      // R = 1.5·2^23, both rounded to nearest (embedded): for |v| ≤ 2^22 the sum lies in [2^23, 2^24], where
      // float32's spacing is 1, so it is R + rint(v) (ties to even: R is even) and the difference rint(v), exact —
      // a zero as +0.0 (x − x is +0.0 to nearest), the integer 0's. One addition and one subtraction where
      // VRNDSCALEPS and the +0 took three µops on the port the loop is bound by (Intel). fake_store32 certified the
      // pair on every code of that range.
      good = _mm512_mask_cmp_ps_mask(good, v, o_max, _CMP_LE_OQ);
      good = _mm512_mask_cmp_ps_mask(good, v, o_min, _CMP_GE_OQ);
      const __m512 o = _mm512_sub_round_ps(_mm512_add_round_ps(v, round_magic, kNearest), round_magic, kNearest);
      _mm512_mask_storeu_ps(value + j, m, fake_value32_signed_zero_free(o, s_hi, s_lo));
    } else {
      const __m512i o = _mm512_cvt_roundps_epi32(v, kNearest);
      const __m256i o0 = _mm512_castsi512_si256(o), o1 = _mm512_extracti64x4_epi64(o, 1);
      const __mmask8 m0 = static_cast<__mmask8>(m), m1 = static_cast<__mmask8>(m >> 8);
      if constexpr (kOut == Out32::kCode) {
        _mm512_mask_storeu_epi64(code + j, m0, _mm512_cvtepi32_epi64(o0));
        _mm512_mask_storeu_epi64(code + j + 8, m1, _mm512_cvtepi32_epi64(o1));
      } else {  // FloatOut: float(double(out)·S)
        _mm256_mask_storeu_ps(value + j, m0, _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_cvtepi32_pd(o0), out_scale)));
        _mm256_mask_storeu_ps(value + j + 8, m1, _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_cvtepi32_pd(o1), out_scale)));
      }
    }
    return static_cast<__mmask16>(m & ~good);
  }
};

template <Out32 kOut>
MNQ_TARGET_AVX512 void out_row32_as(const Step32& s, const int32_t* x, const PtfRow& row, const PtfParams& p,
                                    const PtfRowOut& out) {
  const int64_t cols = p.cols;
  int64_t j = 0;
  // The full steps in an inner loop without calls (left at a step with lanes to redo), so that its constants stay
  // in registers: ptf_redo_lanes, when called from the loop itself, clobbers every vector register.
  while (j + 16 <= cols) {
    unsigned redo = 0;
    for (; j + 16 <= cols; j += 16) {
      redo = s.step<kOut>(j, 0xffff);
      if (redo != 0) break;
    }
    if (redo == 0) break;
    ptf_redo_lanes(redo, j, x, row, p, out);
    j += 16;
  }
  if (j < cols) {
    const unsigned redo = s.step<kOut>(j, lanes16(cols - j));
    if (redo != 0) ptf_redo_lanes(redo, j, x, row, p, out);
  }
}

MNQ_TARGET_AVX512 void out_row32(const int32_t* x, const PtfRow& row, const PtfParams& p, const PtfScaled& sc,
                                 const Row32& rc, const PtfRowOut& out) {
  Step32 s;
  s.plus4 = _mm512_set1_epi32(4);
  s.l_bits = _mm512_set1_epi32(0xfff8);
  s.alpha_mask = _mm512_set1_epi32(~0xffff);
  s.exp_mask = _mm512_set1_epi32(0x7f800000);
  s.k_add = _mm512_set1_epi32((16 << 23) | (1 << 22));  // ·2^16, mantissa 1.5
  s.abs_mask = _mm512_set1_epi32(0x7fffffff);
  // c = (1/2 − 2^−20)/(1.5·2^23), rounded down by a 2^−22 margin (rounding to float32 moves it by ≤ 2^−24).
  s.c = _mm512_set1_ps(static_cast<float>((0.5 - 0x1p-20) / (1.5 * 0x1p23) * (1.0 - 0x1p-22)));
  s.r32 = _mm512_set1_ps(rc.r32);
  s.kr32 = _mm512_set1_ps(rc.kr32);
  s.abs_kr = _mm512_set1_ps(rc.abs_kr32);
  s.s_hi = _mm512_set1_ps(out.s_hi);
  s.s_lo = _mm512_set1_ps(out.s_lo);
  s.o_max = _mm512_set1_ps(static_cast<float>(kPtfOut32Max));       // v ≤ 511 → rint(v) ≤ 511
  s.o_min = _mm512_set1_ps(static_cast<float>(-kPtfOut32Max - 1));  // v ≥ −512 → rint(v) ≥ −512
  s.round_magic = _mm512_set1_ps(0x1.8p23f);
  s.out_scale = _mm512_set1_pd(out.scale);
  s.cg = sc.cg32;
  s.bs = sc.bs32;
  s.gs = sc.gs32;
  s.e1 = sc.e1_32;
  s.e2 = sc.e2_32;
  s.x = x;
  s.code = out.code;
  s.value = out.value;
  if (out.code != nullptr) {
    out_row32_as<Out32::kCode>(s, x, row, p, out);
  } else if (out.out32) {
    out_row32_as<Out32::kValue32>(s, x, row, p, out);
  } else {
    out_row32_as<Out32::kValue64>(s, x, row, p, out);
  }
}

}  // namespace
#endif

FakeStore32 ptf_out32(const PtfScaled& sc, double scale) {
  if (sc.cg32 == nullptr) return FakeStore32{};
  // Codes beyond the range are redone lane by lane (ptf_out): a row's codes are about γ[c]·z/S_next + β[c]/S_next
  // with z the normalized input (|z| ≤ √C, mostly ≤ 4), so the pair is used only where |z| ≤ 8 stays inside it.
  if (!(sc.max_gs * 8.0 + sc.max_bs <= static_cast<double>(kPtfOut32Max))) return FakeStore32{};
  return fake_store32(isa(), scale, -kPtfOut32Max - 1, kPtfOut32Max);
}

bool ptf_out_row32(const int32_t* x, const PtfRow& row, const PtfRowFast& rf, const PtfParams& p,
                   const PtfScaled& sc, const PtfRowOut& out) {
#if defined(MNQ_HAVE_X86_SIMD)
  Row32 rc;
  if (sc.cg32 == nullptr || !row_ok(row, rf, p, sc, rc)) return false;
  out_row32(x, row, p, sc, rc, out);
  return true;
#else
  return false;
#endif
}

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
