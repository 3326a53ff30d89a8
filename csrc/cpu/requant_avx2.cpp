// Requantization's AVX2 path (requant_simd.h; requant_simd.cpp has the AVX-512 one and dispatches): the int64 form
// 4 lanes at a time, int32 codes with every shift ≥ 11 in the float64 form with FMA (requant_f64_avx2.h), fake quant
// of float input in the float32 forms (requant_fused_avx2.h: small multipliers onto a range fake_store32 certifies;
// requant_wide32_avx2.h: wide ranges), their uncertified blocks in the int64 form; lanes that form could not certify
// and the row's last columns by the scalar definition (requant_lanes.h).
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "csrc/cpu/fake_store_simd.h"
#include "csrc/cpu/requant_f64_avx2.h"
#include "csrc/cpu/requant_fused_avx2.h"
#include "csrc/cpu/requant_lanes.h"
#include "csrc/cpu/requant_simd.h"
#include "csrc/cpu/requant_wide32_avx2.h"
#include "csrc/cpu/row_buffer.h"
#include "csrc/cpu/simd.h"

namespace mnq {
namespace ops {
namespace cpu {
namespace {

using kernels::CodeOut;
using kernels::FakeOut;
using kernels::i64;
using namespace requant_lanes;

#if defined(MNQ_HAVE_X86_SIMD)
// ---- AVX2: 4 lanes of int64 (no 64-bit arithmetic shift, min/max or int64 conversions: emulated); int32 codes
// with every shift ≥ 11 take the float64 form with FMA instead (requant_f64_avx2.h), fake quant of float input
// the float32 forms (requant_fused_avx2.h, requant_wide32_avx2.h) where they apply ----
struct Avx2 {
  MNQ_TARGET_AVX2 static __m256i load(const RequantSimdSide& s, int64_t i, int64_t c, unsigned& ok) {
    if (s.q != nullptr) return _mm256_cvtepi32_epi64(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s.q + i)));
    const __m256d abs_mask = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7fffffffffffffffLL));
    const __m256d p = _mm256_mul_pd(_mm256_cvtps_pd(_mm_loadu_ps(s.x + i)), _mm256_loadu_pd(s.r + c));
    const __m256d rp = _mm256_round_pd(p, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256d ap = _mm256_and_pd(p, abs_mask);
    const __m256d h = _mm256_sub_pd(_mm256_set1_pd(0.5), _mm256_and_pd(_mm256_sub_pd(p, rp), abs_mask));
    const __m256d t = _mm256_add_pd(_mm256_mul_pd(ap, _mm256_set1_pd(0x1p-50)), _mm256_set1_pd(0x1p-100));
    const __m256d good =
        _mm256_and_pd(_mm256_cmp_pd(h, t, _CMP_GE_OQ), _mm256_cmp_pd(ap, _mm256_set1_pd(2147483647.0), _CMP_LT_OQ));
    ok &= static_cast<unsigned>(_mm256_movemask_pd(good));
    return _mm256_cvtepi32_epi64(_mm256_cvtpd_epi32(rp));  // |rp| < 2^31 where certified
  }
  // floor(v / 2^k) per lane, 0 ≤ k ≤ 63: a logical shift of v or of its complement.
  MNQ_TARGET_AVX2 static __m256i sra(__m256i v, __m256i k) {
    const __m256i neg = _mm256_cmpgt_epi64(_mm256_setzero_si256(), v);
    return _mm256_xor_si256(_mm256_srlv_epi64(_mm256_xor_si256(v, neg), k), neg);
  }
  MNQ_TARGET_AVX2 static __m256i requant(__m256i q, const RequantSimdSide& s, int64_t c) {
    const __m256i k = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s.k + c));
    const __m256i p = _mm256_mul_epi32(q, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s.m + c)));
    const __m256i odd = _mm256_and_si256(sra(p, k), _mm256_set1_epi64x(1));
    const __m256i hm1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s.hm1 + c));
    return sra(_mm256_add_epi64(_mm256_add_epi64(p, hm1), odd), k);
  }
  template <class Out>
  MNQ_TARGET_AVX2 static bool rows(const RequantSimdSide& in, const RequantSimdSide* id, int64_t cols, int64_t r0,
                                   int64_t r1, i64 lo, i64 hi, double out_scale, const Out& out) {
    // int32 codes whose every shift allows it: the float64 form with FMA (requant_f64_avx2.h).
    if (in.q != nullptr && (id == nullptr || id->q != nullptr) && md_fits(in, cols) &&
        (id == nullptr || md_fits(*id, cols)) && RequantF64Avx2::usable()) {
      if (id != nullptr) {
        RequantF64Avx2::int_rows<true>(in, id, cols, r0, r1, lo, hi, out_scale, out);
      } else {
        RequantF64Avx2::int_rows<false>(in, id, cols, r0, r1, lo, hi, out_scale, out);
      }
      return true;
    }
    const Out o = out;  // a local: the stores could alias a reference's target
    // Fake quant of float input with small multipliers onto a range whose float32 store fake_store32 certifies: the
    // one-rounding float32 form (requant_fused_avx2.h), a block of 8 it cannot certify in the int64 form below.
    if constexpr (Out::kPropagatesNaN) {
      // (Every shift in [11, 62] as on AVX-512, whose float forms run under md_fits too.)
      if (in.x != nullptr && (id == nullptr || id->x != nullptr) && mxcsr_round_nearest() && md_fits(in, cols) &&
          (id == nullptr || md_fits(*id, cols))) {
        // A block of 8 a float32 form could not certify, and the row's tail: the int64 form.
        auto fallback = [&](int64_t base, int64_t c) { return columns(in, id, base, c, c + 8, lo, hi, out_scale, o); };
        auto rest = [&](int64_t base, int64_t c) { return columns(in, id, base, c, cols, lo, hi, out_scale, o); };
        const FakeStore32 st = fake_store32(Isa::kAvx2, out_scale, lo, hi);
        RowBuffer<float, 1024> cf_in(cols), cf_id(id != nullptr ? cols : 0);
        double md_in = 0.0, md_id = 0.0;
        if (st.ok && fused_coefficients(in, cols, cf_in, md_in) &&
            (id == nullptr || fused_coefficients(*id, cols, cf_id, md_id)) && md_in + md_id <= kFusedMaxMd) {
          const float h = fused_threshold(std::max(md_in, md_id));
          const float* xb = id != nullptr ? id->x : nullptr;
          const float* cb = id != nullptr ? cf_id.data() : nullptr;
          return id != nullptr ? RequantFusedAvx2::float_rows<true>(in.x, cf_in.data(), xb, cb, cols, r0, r1, lo, hi,
                                                                     h, st, o.p, fallback, rest)
                               : RequantFusedAvx2::float_rows<false>(in.x, cf_in.data(), xb, cb, cols, r0, r1, lo, hi,
                                                                      h, st, o.p, fallback, rest);
        }
        // A wide code range (16-bit outputs) or larger multipliers: the float32 form with per-lane certified stores
        // (requant_wide32_avx2.h), a block it cannot certify in the int64 form.
        const WideStore ws = wide_store(out_scale, lo, hi);
        const int64_t id_cols = id != nullptr ? cols : 0;
        RowBuffer<float, 1024> rf_in(cols), rf_id(id_cols), mh_in(cols), ml_in(cols), mh_id(id_cols), ml_id(id_cols);
        const float* rin = float_recip(in, cols, rf_in);
        const float* rid = id != nullptr ? float_recip(*id, cols, rf_id) : nullptr;
        if (ws.ok && rin != nullptr && (id == nullptr || rid != nullptr) && wide_multipliers(in, cols, mh_in, ml_in) &&
            (id == nullptr || wide_multipliers(*id, cols, mh_id, ml_id))) {
          const float slope = wide_code_slope(std::max(md_max(in, cols), id != nullptr ? md_max(*id, cols) : 0.0));
          auto others = [&](int64_t ra, int64_t rb) {
            bool ok = true;
            for (int64_t r = ra; r < rb; ++r) ok = columns(in, id, r * cols, 0, cols, lo, hi, out_scale, o) && ok;
            return ok;
          };
          const float* xb = id != nullptr ? id->x : nullptr;
          return id != nullptr
                     ? RequantWide32Avx2::float_rows<true>(in.x, rin, mh_in.data(), ml_in.data(), xb, rid,
                                                           mh_id.data(), ml_id.data(), cols, r0, r1, lo, hi, slope, ws,
                                                           o.p, fallback, rest, others)
                     : RequantWide32Avx2::float_rows<false>(in.x, rin, mh_in.data(), ml_in.data(), xb, rid, nullptr,
                                                            nullptr, cols, r0, r1, lo, hi, slope, ws, o.p, fallback,
                                                            rest, others);
        }
      }
    }
    bool ok = true;
    for (int64_t r = r0; r < r1; ++r) ok = columns(in, id, r * cols, 0, cols, lo, hi, out_scale, o) && ok;
    return ok;
  }
  // The int64 form of columns [c0, c1) of the row at `base`: 4 lanes at a time, the rest by the scalar definition.
  template <class Out>
  MNQ_TARGET_AVX2 static bool columns(const RequantSimdSide& in, const RequantSimdSide* id, int64_t base, int64_t c0,
                                      int64_t c1, i64 lo, i64 hi, double out_scale, const Out& out) {
    const __m256i vlo = _mm256_set1_epi64x(lo), vhi = _mm256_set1_epi64x(hi);
    const __m256i pick_low = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
    const __m256d so = _mm256_set1_pd(out_scale);
    bool ok = true;
    int64_t c = c0;
    for (; c + 4 <= c1; c += 4) {
      unsigned good = 0xf;
      __m256i v = requant(load(in, base + c, c, good), in, c);
      if (id != nullptr) v = _mm256_add_epi64(v, requant(load(*id, base + c, c, good), *id, c));
      v = _mm256_blendv_epi8(v, vhi, _mm256_cmpgt_epi64(v, vhi));
      v = _mm256_blendv_epi8(v, vlo, _mm256_cmpgt_epi64(vlo, v));
      // The clamped values fit int32 (lo, hi are a bit range of at most 32 bits): keep the low halves.
      const __m128i v32 = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(v, pick_low));
      if constexpr (Out::kPropagatesNaN) {
        _mm_storeu_ps(out.p + base + c, _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_cvtepi32_pd(v32), so)));
      } else {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out.p + base + c), v32);
      }
      if (good != 0xf) ok = redo_lanes(in, id, base, c, ~good & 0xfu, lo, hi, out_scale, out) && ok;
    }
    return scalar_cols(in, id, base, c, c1, lo, hi, out_scale, out) && ok;
  }
};

#endif

}  // namespace

#if defined(MNQ_HAVE_X86_SIMD)  // rows() of requant_simd.cpp calls these only there
bool requant_rows_avx2(const RequantSimdSide& in, const RequantSimdSide* id, int64_t cols, int64_t r0, int64_t r1,
                       i64 lo, i64 hi, double out_scale, const CodeOut& out) {
  return Avx2::rows(in, id, cols, r0, r1, lo, hi, out_scale, out);
}
bool requant_rows_avx2(const RequantSimdSide& in, const RequantSimdSide* id, int64_t cols, int64_t r0, int64_t r1,
                       i64 lo, i64 hi, double out_scale, const FakeOut& out) {
  return Avx2::rows(in, id, cols, r0, r1, lo, hi, out_scale, out);
}
#endif

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
