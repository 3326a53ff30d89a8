// Log-Int-Softmax's AVX-512 row path (log_int_softmax_simd.h): intrinsics in functions compiled for AVX-512 (with
// CD, for VPLZCNTQ) whatever the file's -march; csrc/cpu/log_int_softmax.cpp calls them when isa() allows.
#include "csrc/cpu/log_int_softmax_simd.h"

#include "csrc/cpu/row_codes_simd.h"
#include "csrc/cpu/simd.h"

namespace mnq {
namespace ops {
namespace cpu {
namespace {

using kernels::i64;
using kernels::LisCode;
using kernels::LogIntSoftmaxParams;
using kernels::u128;
using kernels::u64;

#if defined(MNQ_HAVE_X86_SIMD)
#define MNQ_TARGET_AVX512CD __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx512cd")))

inline __mmask8 lanes8(int64_t n) { return n >= 8 ? 0xff : static_cast<__mmask8>((1u << n) - 1); }

// Stores the code (and mask byte, or value) of element i as the scalar output types do.
void store_one(const LisRowOut& out, int64_t i, LisCode v) {
  if (out.value != nullptr) {
    kernels::LisValueOut{out.value}.store(i, v);
  } else {
    kernels::LisCodeOut{out.code, out.mask}.store(i, v);
  }
}

// Pass 2: e[j] = tab[lim − min(m − q, lim)] (m − q taken modulo 2^32: the exact difference, ≥ 0) and Σe.
MNQ_TARGET_AVX512CD u128 exps(const int32_t* q, int64_t cols, int32_t mx, const i64* tab, uint32_t lim, u64* e) {
  const __m512i vm = _mm512_set1_epi32(mx), vlim = _mm512_set1_epi32(static_cast<int32_t>(lim));
  const __m512i low32 = _mm512_set1_epi64(0xffffffffLL);
  __m512i s_hi = _mm512_setzero_si512(), s_lo = _mm512_setzero_si512();
  for (int64_t j = 0; j < cols; j += 16) {
    const __mmask16 k = simd_lanes16(cols - j);
    const __m512i d = _mm512_min_epu32(_mm512_sub_epi32(vm, _mm512_maskz_loadu_epi32(k, q + j)), vlim);
    const __m512i idx = _mm512_sub_epi32(vlim, d);
    const __m512i e0 = _mm512_mask_i32gather_epi64(_mm512_setzero_si512(), static_cast<__mmask8>(k),
                                                   _mm512_castsi512_si256(idx), tab, 8);
    const __m512i e1 = _mm512_mask_i32gather_epi64(_mm512_setzero_si512(), static_cast<__mmask8>(k >> 8),
                                                   _mm512_extracti64x4_epi64(idx, 1), tab, 8);
    _mm512_mask_storeu_epi64(e + j, static_cast<__mmask8>(k), e0);
    _mm512_mask_storeu_epi64(e + j + 8, static_cast<__mmask8>(k >> 8), e1);
    s_hi = _mm512_add_epi64(s_hi, _mm512_add_epi64(_mm512_srli_epi64(e0, 32), _mm512_srli_epi64(e1, 32)));
    s_lo = _mm512_add_epi64(s_lo, _mm512_add_epi64(_mm512_and_si512(e0, low32), _mm512_and_si512(e1, low32)));
  }
  return (static_cast<u128>(static_cast<u64>(_mm512_reduce_add_epi64(s_hi))) << 32) +
         static_cast<u64>(_mm512_reduce_add_epi64(s_lo));
}

// Pass 3 for a row with s < 2^61 (bl = bit_length(s)): lis_exponent_u64's tests where t0 ≥ 3, i.e.
//   t = t0 − 1 + Σ_{k = t0−1}^{t0+1} [((2s + e) >> k) ≥ 3e]
// (shift counts ≥ 64 give 0 < 3e, the scalar form's clamped answer), then lis_code_from_t. e = 0 lanes: code 2^b − 1,
// masked. Lanes with t0 < 3 are finished by the scalar functions.
MNQ_TARGET_AVX512CD void codes(const u64* e, int64_t cols, u64 s, int bl, const kernels::LogIntSoftmaxConsts& c,
                               const LisRowOut& out) {
  const int top = (1 << c.bits) - 1;
  const __m512i one = _mm512_set1_epi64(1), vtop = _mm512_set1_epi64(top);
  // The output pointers as locals: the byte stores may alias anything, and members would be reloaded after each.
  uint8_t* const code_p = out.code;
  uint8_t* const mask_p = out.mask;
  float* const value_p = out.value;
  const __m512i s2 = _mm512_set1_epi64(static_cast<long long>(2 * s)), blm64 = _mm512_set1_epi64(bl - 64);
  for (int64_t j = 0; j < cols; j += 8) {
    const __mmask8 k = lanes8(cols - j);
    const __m512i ev = _mm512_maskz_loadu_epi64(k, e + j);
    const __mmask8 zero = _mm512_cmpeq_epi64_mask(ev, _mm512_setzero_si512());
    const __m512i e1 = _mm512_mask_mov_epi64(ev, zero, one);
    const __m512i t0v = _mm512_add_epi64(_mm512_lzcnt_epi64(e1), blm64);  // bl − bit_length(e)
    const __m512i a = _mm512_add_epi64(s2, e1);
    const __m512i e3 = _mm512_add_epi64(e1, _mm512_add_epi64(e1, e1));
    const __m512i k0 = _mm512_sub_epi64(t0v, one);
    __m512i t = k0;
    t = _mm512_mask_add_epi64(t, _mm512_cmpge_epu64_mask(_mm512_srlv_epi64(a, k0), e3), t, one);
    t = _mm512_mask_add_epi64(t, _mm512_cmpge_epu64_mask(_mm512_srlv_epi64(a, t0v), e3), t, one);
    t = _mm512_mask_add_epi64(t, _mm512_cmpge_epu64_mask(_mm512_srlv_epi64(a, _mm512_add_epi64(t0v, one)), e3), t,
                              one);
    const __mmask8 masked = _mm512_cmpgt_epi64_mask(t, vtop) | zero;
    const __m512i code = _mm512_mask_mov_epi64(_mm512_min_epi64(t, vtop), zero, vtop);
    if (value_p != nullptr) {
      // 2^−code as float32 bits (pow2_neg_f32): normal (127 − code) << 23 for code ≤ 126, the subnormal
      // 1 << (149 − code) up to 149, 0 beyond; 0 where masked.
      const __m512i normal = _mm512_slli_epi64(_mm512_sub_epi64(_mm512_set1_epi64(127), code), 23);
      const __m512i sub = _mm512_maskz_sllv_epi64(_mm512_cmple_epi64_mask(code, _mm512_set1_epi64(149)), one,
                                                  _mm512_sub_epi64(_mm512_set1_epi64(149), code));
      const __m512i bits = _mm512_mask_mov_epi64(sub, _mm512_cmple_epi64_mask(code, _mm512_set1_epi64(126)), normal);
      _mm256_mask_storeu_epi32(value_p + j, k,
                               _mm512_cvtepi64_epi32(_mm512_maskz_mov_epi64(static_cast<__mmask8>(~masked), bits)));
    } else if (k == 0xff) {  // VPMOVQB to a register and a plain 8-byte store: the masked narrowing store is slow
      _mm_storel_epi64(reinterpret_cast<__m128i*>(code_p + j), _mm512_cvtepi64_epi8(code));
      _mm_storel_epi64(reinterpret_cast<__m128i*>(mask_p + j), _mm512_cvtepi64_epi8(_mm512_maskz_mov_epi64(masked, one)));
    } else {
      _mm512_mask_cvtepi64_storeu_epi8(code_p + j, k, code);
      _mm512_mask_cvtepi64_storeu_epi8(mask_p + j, k, _mm512_maskz_mov_epi64(masked, one));
    }
    const __mmask8 small = k & ~zero & _mm512_cmplt_epi64_mask(t0v, _mm512_set1_epi64(3));
    for (unsigned r = small; r != 0; r &= r - 1) {
      const int64_t i = j + __builtin_ctz(r);
      store_one(out, i, kernels::lis_code_from_t(kernels::lis_exponent_u64(s, bl, e[i]), 0, c));
    }
  }
}
#endif

}  // namespace

bool lis_simd_available() {
#if defined(MNQ_HAVE_X86_SIMD)
  static const bool cd = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512cd") != 0;
  }();
  return cd;
#else
  return false;
#endif
}

bool lis_row(const LisRowIn& in, const LogIntSoftmaxParams& p, const i64* tab, uint32_t lim, int32_t* qbuf, u64* ebuf,
             const LisRowOut& out) {
#if defined(MNQ_HAVE_X86_SIMD)
  int32_t mx = 0, mn = 0;
  const bool ok = in.q != nullptr ? int_row_max_min(in.q, p.cols, p.lo, p.hi, mx, mn)
                                  : float_row_codes(in.x, p.cols, in.inv_scale, p.lo, p.hi, qbuf, mx, mn);
  if (!ok) return false;
  const int32_t* q = in.q != nullptr ? in.q : qbuf;
  const u128 s = exps(q, p.cols, mx, tab, lim, ebuf);
  if (s < (static_cast<u128>(1) << 61)) {
    const u64 s64 = static_cast<u64>(s);
    codes(ebuf, p.cols, s64, kernels::bit_length(s64), p.c, out);
  } else {
    for (int64_t j = 0; j < p.cols; ++j) store_one(out, j, kernels::lis_code(s, static_cast<i64>(ebuf[j]), p.c));
  }
  return true;
#else
  return false;
#endif
}

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
