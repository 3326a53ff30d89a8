// Log-Int-Softmax's AVX-512 row path (log_int_softmax_simd.h): intrinsics in functions compiled for AVX-512 (with
// CD, for VPLZCNTQ) whatever the file's -march; csrc/cpu/log_int_softmax.cpp calls them when isa() allows.
#include "csrc/cpu/log_int_softmax_simd.h"

#include "csrc/cpu/prefetch.h"
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

// Stores the code (and mask byte, or value) of element i as the scalar output types do.
void store_one(const LisRowOut& out, int64_t i, LisCode v) {
  if (out.value != nullptr) {
    kernels::LisValueOut{out.value}.store(i, v);
  } else {
    kernels::LisCodeOut{out.code, out.mask}.store(i, v);
  }
}

// Pass 2: e[j] = ibert_exp(−d) with d = min(m − q, lim) (m − q taken modulo 2^32: the exact difference, ≥ 0), from
// the caller's table (TableExps: tab[lim − d], two 8-lane gathers) or from i-exp's own form in registers (RegExps,
// facts.reg), and Σe. kWide: the sum kept as two 64-bit sums of the 32-bit halves (each < cols·2^32); otherwise
// (cols·max(e) < 2^63, the caller's test) one 64-bit sum. Lanes outside the row get e = 0.
struct TableExps {
  const i64* tab;
  __m512i vlim;
  MNQ_TARGET_AVX512CD MNQ_ALWAYS_INLINE void operator()(__m512i d, __mmask16 k, __m512i& e0, __m512i& e1) const {
    const __m512i idx = _mm512_sub_epi32(vlim, d);
    e0 = _mm512_mask_i32gather_epi64(_mm512_setzero_si512(), static_cast<__mmask8>(k), _mm512_castsi512_si256(idx),
                                     tab, 8);
    e1 = _mm512_mask_i32gather_epi64(_mm512_setzero_si512(), static_cast<__mmask8>(k >> 8),
                                     _mm512_extracti64x4_epi64(idx, 1), tab, 8);
  }
};

// d ≤ lim < 2^16, so VPMULHUW of d (the low word of its lane; the high word is 0) by the magic gives z =
// floor(d/|x0|) (the magic is checked for every d ∈ [0, lim] by lis_table_facts), VPMULLW r = d − |x0|·z (z·|x0| ≤
// lim < 2^16), one VPERMT2D reads p[r] from two registers (k64, |x0| > 32: two from four, chosen by bit 5 of r),
// and e = p[r] << (n − z) in 64-bit lanes.
template <bool k64>
struct RegExps {
  __m512i magic, x0, n, p0, p1, p2, p3;
  MNQ_TARGET_AVX512CD explicit RegExps(const LisTableFacts& f)
      : magic(_mm512_set1_epi32(f.magic)), x0(_mm512_set1_epi32(f.x0)), n(_mm512_set1_epi32(f.n)),
        p0(_mm512_loadu_si512(f.p)), p1(_mm512_loadu_si512(f.p + 16)), p2(_mm512_loadu_si512(f.p + 32)),
        p3(_mm512_loadu_si512(f.p + 48)) {}
  MNQ_TARGET_AVX512CD MNQ_ALWAYS_INLINE void operator()(__m512i d, __mmask16 k, __m512i& e0, __m512i& e1) const {
    const __m512i z = _mm512_mulhi_epu16(d, magic);
    const __m512i r = _mm512_sub_epi32(d, _mm512_mullo_epi16(z, x0));
    __m512i pv = _mm512_permutex2var_epi32(p0, r, p1);
    if (k64) {
      pv = _mm512_mask_blend_epi32(_mm512_test_epi32_mask(r, _mm512_set1_epi32(32)), pv,
                                   _mm512_permutex2var_epi32(p2, r, p3));
    }
    const __m512i sh = _mm512_sub_epi32(n, z);
    e0 = _mm512_maskz_sllv_epi64(static_cast<__mmask8>(k), _mm512_cvtepu32_epi64(_mm512_castsi512_si256(pv)),
                                 _mm512_cvtepu32_epi64(_mm512_castsi512_si256(sh)));
    e1 = _mm512_maskz_sllv_epi64(static_cast<__mmask8>(k >> 8), _mm512_cvtepu32_epi64(_mm512_extracti64x4_epi64(pv, 1)),
                                 _mm512_cvtepu32_epi64(_mm512_extracti64x4_epi64(sh, 1)));
  }
};

// e has room for whole steps (cols rounded up to 16; 0 is stored past cols); q_padded: so has q (the row buffer of
// the float codes, stored whole by float_row_codes_each), which is then loaded whole (a masked load of lines just
// stored waits for the store to retire; the input itself is never read past its end).
template <bool kWide, class Exps>
MNQ_TARGET_AVX512CD MNQ_ALWAYS_INLINE u128 exps(const int32_t* q, int64_t cols, int32_t mx, uint32_t lim, const Exps& ex, u64* e,
                              bool q_padded) {
  const __m512i vm = _mm512_set1_epi32(mx), vlim = _mm512_set1_epi32(static_cast<int32_t>(lim));
  const __m512i low32 = _mm512_set1_epi64(0xffffffffLL);
  __m512i s_hi = _mm512_setzero_si512(), s_lo = _mm512_setzero_si512();
  for (int64_t j = 0; j < cols; j += 16) {
    const __mmask16 k = simd_lanes16(cols - j);
    const __m512i qv = q_padded ? _mm512_loadu_si512(q + j) : _mm512_maskz_loadu_epi32(k, q + j);
    const __m512i d = _mm512_min_epu32(_mm512_sub_epi32(vm, qv), vlim);
    __m512i e0, e1;
    ex(d, k, e0, e1);  // 0 outside k
    _mm512_storeu_si512(e + j, e0);
    _mm512_storeu_si512(e + j + 8, e1);
    if (kWide) {
      s_hi = _mm512_add_epi64(s_hi, _mm512_add_epi64(_mm512_srli_epi64(e0, 32), _mm512_srli_epi64(e1, 32)));
      s_lo = _mm512_add_epi64(s_lo, _mm512_add_epi64(_mm512_and_si512(e0, low32), _mm512_and_si512(e1, low32)));
    } else {
      s_lo = _mm512_add_epi64(s_lo, _mm512_add_epi64(e0, e1));
    }
  }
  return (static_cast<u128>(static_cast<u64>(_mm512_reduce_add_epi64(s_hi))) << 32) +
         static_cast<u64>(_mm512_reduce_add_epi64(s_lo));
}

// Pass 2 with the variant the facts select (the sources built here: intrinsics only in AVX-512 functions, whatever
// the file's -march).
MNQ_TARGET_AVX512CD MNQ_ALWAYS_INLINE u128 row_exps(const int32_t* q, int64_t cols, int32_t mx, const i64* tab, uint32_t lim,
                                  const LisTableFacts& facts, u64* e, bool q_padded) {
  if (facts.reg && facts.x0 > 32) {
    const RegExps<true> ex(facts);
    return facts.wide ? exps<true>(q, cols, mx, lim, ex, e, q_padded) : exps<false>(q, cols, mx, lim, ex, e, q_padded);
  }
  if (facts.reg) {
    const RegExps<false> ex(facts);
    return facts.wide ? exps<true>(q, cols, mx, lim, ex, e, q_padded) : exps<false>(q, cols, mx, lim, ex, e, q_padded);
  }
  const TableExps ex{tab, _mm512_set1_epi32(static_cast<int32_t>(lim))};
  return facts.wide ? exps<true>(q, cols, mx, lim, ex, e, q_padded) : exps<false>(q, cols, mx, lim, ex, e, q_padded);
}

// Pass 3 for a row with s < 2^61, 16 elements per step as two 8-lane halves. With a = 2s + e and
// K = floor(log2(a / 3e)) (a ≥ 3e since s ≥ e), the general threshold test of the header is
//   ((2s + e) >> k) ≥ 3e  ⟺  a ≥ 3e·2^k  ⟺  k ≤ K,
// so v reaches K_j for j ≥ 3 exactly when j − 1 ≤ K. When K ≥ 2 (v ≥ K_3 = 6, hence v ≥ 2 and v ≥ 3 too) the count
// of reached thresholds is t = 2 + (K − 1) = K + 1. And K is one shifted compare: with D = bit_length(a) −
// bit_length(3e) ≥ 0, a / 3e ∈ (2^(D−1), 2^(D+1)), so K = D when (a >> D) ≥ 3e and D − 1 otherwise, i.e.
//   t = D + [(a >> D) ≥ 3e]          (lanes with t < 3, i.e. K < 2: the row's few largest probabilities)
// When K < 2 (the lanes computing t < 3: the row's few largest probabilities) no threshold j ≥ 3 is reached and t is
// the header's first two tests, t = [2s ≥ 3e] + [2s > 5e], taken only in the 8-lane halves that have such a lane
// (a branch, taken about once per row: 9 operations of ~20 per half skipped elsewhere) and selected where t < 3.
// In rows shorter than kAlwaysSmallCols every half computes them (always: the branch is then always taken): the
// half holding the row's max is in a random step of few, so the branch was mispredicted about once per row, which
// cost more than the 9 operations per half (Log-Int-Softmax 0.70 → 0.60 ms at 64×4×50×50, 0.53 → 0.25 ms at
// 256×4×16×16; at 197 columns the branch stays ~4% faster).
// Bounds: e ≤ s < 2^61, so a < 2^63, 3e < 2^63 and 5e < 2^64 (unsigned compares).
// e = 0 lanes: code 2^b − 1, masked.
struct LisHalf {
  __m512i code;     // min(t, top), top where e = 0
  __mmask8 masked;  // e = 0 or t > top
};

// kZeros = false: the table (hence the row) holds no e = 0, and the lanes outside k load 1. e is loaded whole (the
// row buffer has room for whole steps, 0 past the row: exps).
constexpr int64_t kAlwaysSmallCols = 96;

template <bool kZeros, bool kAlways>
MNQ_TARGET_AVX512CD MNQ_ALWAYS_INLINE LisHalf half(const u64* e, __mmask8 k, __m512i s2, __m512i vtop) {
  const __m512i one = _mm512_set1_epi64(1);
  const __m512i whole = _mm512_loadu_si512(e);
  const __m512i ev = kZeros ? _mm512_maskz_mov_epi64(k, whole) : _mm512_mask_mov_epi64(one, k, whole);
  const __mmask8 zero = kZeros ? _mm512_cmpeq_epi64_mask(ev, _mm512_setzero_si512()) : 0;
  const __m512i e1 = kZeros ? _mm512_mask_mov_epi64(ev, zero, one) : ev;  // e = 0 lanes (and outside k): e ≥ 1
  const __m512i a = _mm512_add_epi64(s2, e1);
  const __m512i e3 = _mm512_add_epi64(e1, _mm512_add_epi64(e1, e1));
  const __m512i d = _mm512_sub_epi64(_mm512_lzcnt_epi64(e3), _mm512_lzcnt_epi64(a));  // D
  const __m512i tk = _mm512_mask_add_epi64(d, _mm512_cmpge_epu64_mask(_mm512_srlv_epi64(a, d), e3), d, one);
  const __mmask8 small = _mm512_cmplt_epi64_mask(tk, _mm512_set1_epi64(3));
  __m512i t = tk;
  if (kAlways || __builtin_expect(small != 0, 0)) {  // long rows: in about one step of a row, skipped elsewhere
    const __mmask8 j1 = _mm512_cmpge_epu64_mask(s2, e3);                                        // 2s ≥ 3e
    const __mmask8 j2 = _mm512_cmpgt_epu64_mask(s2, _mm512_add_epi64(e3, _mm512_add_epi64(e1, e1)));  // 2s > 5e
    const __m512i t1 = _mm512_maskz_mov_epi64(j1, one);
    t = _mm512_mask_mov_epi64(tk, small, _mm512_mask_add_epi64(t1, j2, t1, one));
  }
  const __mmask8 masked = _mm512_cmpgt_epi64_mask(t, vtop) | zero;
  const __m512i code = _mm512_min_epi64(t, vtop);
  return LisHalf{kZeros ? _mm512_mask_mov_epi64(code, zero, vtop) : code, masked};
}

template <bool kZeros, bool kNormal, bool kAlways>
MNQ_TARGET_AVX512CD MNQ_ALWAYS_INLINE void codes(const u64* e, int64_t cols, u64 s,
                                                 const kernels::LogIntSoftmaxConsts& c, const LisRowOut& out) {
  const int top = (1 << c.bits) - 1;
  const __m512i vtop = _mm512_set1_epi64(top);
  // The output pointers as locals: the byte stores may alias anything, and members would be reloaded after each.
  uint8_t* const code_p = out.code;
  uint8_t* const mask_p = out.mask;
  float* const value_p = out.value;
  const __m512i s2 = _mm512_set1_epi64(static_cast<long long>(2 * s));
  const __m512i even32 = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  for (int64_t j = 0; j < cols; j += 16) {
    const __mmask16 k = simd_lanes16(cols - j);
    const LisHalf h0 = half<kZeros, kAlways>(e + j, static_cast<__mmask8>(k), s2, vtop);
    const LisHalf h1 = half<kZeros, kAlways>(e + j + 8, static_cast<__mmask8>(k >> 8), s2, vtop);
    const __mmask16 masked = static_cast<__mmask16>(h0.masked | (static_cast<unsigned>(h1.masked) << 8));
    // The 16 codes (< 2^8) as int32 lanes: the low dwords of both halves, one VPERMT2D.
    const __m512i code = _mm512_permutex2var_epi32(h0.code, even32, h1.code);
    if (value_p != nullptr) {
      // 2^−code as float32 bits (pow2_neg_f32): normal (127 − code) << 23 for code ≤ 126, the subnormal
      // 1 << (149 − code) up to 149, 0 beyond; 0 where masked. kNormal (top ≤ 126, b ≤ 6): only the first.
      const __m512i normal = _mm512_slli_epi32(_mm512_sub_epi32(_mm512_set1_epi32(127), code), 23);
      __m512i bits = normal;
      if (!kNormal) {
        const __m512i sub =
            _mm512_maskz_sllv_epi32(_mm512_cmple_epi32_mask(code, _mm512_set1_epi32(149)), _mm512_set1_epi32(1),
                                    _mm512_sub_epi32(_mm512_set1_epi32(149), code));
        bits = _mm512_mask_mov_epi32(sub, _mm512_cmple_epi32_mask(code, _mm512_set1_epi32(126)), normal);
      }
      _mm512_mask_storeu_epi32(value_p + j, k, _mm512_maskz_mov_epi32(static_cast<__mmask16>(~masked), bits));
    } else {
      // VPMOVDB to a register and one 16-byte store each (the masked narrowing store is slow).
      const __m128i bytes = _mm512_cvtepi32_epi8(code);
      const __m128i mbytes = _mm_maskz_mov_epi8(masked, _mm_set1_epi8(1));
      if (k == 0xffff) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(code_p + j), bytes);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(mask_p + j), mbytes);
      } else {
        _mm_mask_storeu_epi8(code_p + j, k, bytes);
        _mm_mask_storeu_epi8(mask_p + j, k, mbytes);
      }
    }
  }
}

// The rows [r0, r1) (lis_rows), the row loop and its passes in one function.
template <bool kZeros, bool kNormal>
MNQ_TARGET_AVX512CD bool rows(const LisRowIn& in, const LogIntSoftmaxParams& p, const i64* tab, uint32_t lim,
                              int32_t* qbuf, u64* ebuf, const LisRowOut& out, const LisTableFacts& facts, int64_t r0,
                              int64_t r1, bool prefetch) {
  const int64_t cols = p.cols;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t base = r * cols;
    if (prefetch && r + kPrefetchRows < r1) {  // prefetch.h
      const int64_t next = base + kPrefetchRows * cols;
      const LisRowIn ni = in.at(next);
      const LisRowOut no = out.at(next);
      prefetch_lines<false>(ni.q != nullptr ? static_cast<const void*>(ni.q) : ni.x, cols * 4);
      if (no.value != nullptr) {
        prefetch_lines<true>(no.value, cols * 4);
      } else {
        prefetch_lines<true>(no.code, cols);
        prefetch_lines<true>(no.mask, cols);
      }
    }
    const LisRowIn ri = in.at(base);
    const LisRowOut ro = out.at(base);
    int32_t mx = 0;
    const bool ok = ri.q != nullptr ? int_row_max(ri.q, cols, p.lo, p.hi, mx)
                                    : float_row_codes_max(ri.x, cols, ri.inv_scale, p.lo, p.hi, qbuf, mx, true);
    if (!ok) return false;
    const int32_t* q = ri.q != nullptr ? ri.q : qbuf;
    const u128 s = row_exps(q, cols, mx, tab, lim, facts, ebuf, ri.q == nullptr);
    if (s < (static_cast<u128>(1) << 61)) {
      if (cols < kAlwaysSmallCols) {
        codes<kZeros, kNormal, true>(ebuf, cols, static_cast<u64>(s), p.c, ro);
      } else {
        codes<kZeros, kNormal, false>(ebuf, cols, static_cast<u64>(s), p.c, ro);
      }
    } else {
      for (int64_t j = 0; j < cols; ++j) store_one(ro, j, kernels::lis_code(s, static_cast<i64>(ebuf[j]), p.c));
    }
  }
  return true;
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

LisTableFacts lis_table_facts(const i64* tab, uint32_t lim, int64_t cols, int n) {
  LisTableFacts f;
  f.zeros = false;
  i64 mx = 0;
  for (uint32_t i = 0; i <= lim; ++i) {
    f.zeros |= tab[i] == 0;
    mx = tab[i] > mx ? tab[i] : mx;
  }
  f.wide = static_cast<u128>(static_cast<u64>(mx)) * static_cast<u64>(cols) >= (static_cast<u128>(1) << 63);
  // The register form: lim = n·|x0| with 2 ≤ |x0| ≤ 64 and n < 32, p[r] = tab[lim − r] >> n for r < |x0|, the magic
  // ceil(2^16/|x0|); taken only if it reproduces every entry (a table that is not i-exp's keeps the gathers).
  const uint32_t x0 = n > 0 ? lim / static_cast<uint32_t>(n) : 0;
  if (n <= 0 || n >= 32 || x0 < 2 || x0 > 64 || x0 * static_cast<uint32_t>(n) != lim) return f;
  f.x0 = static_cast<int32_t>(x0);
  f.n = n;
  f.magic = static_cast<int32_t>((65536 + x0 - 1) / x0);
  for (uint32_t r = 0; r < x0; ++r) {
    const i64 v = tab[lim - r] >> n;
    if (v > INT32_MAX) return f;
    f.p[r] = static_cast<int32_t>(v);
  }
  for (uint32_t d = 0; d <= lim; ++d) {  // what exps_reg computes, against the table
    const uint32_t z = (d * static_cast<uint32_t>(f.magic)) >> 16;
    const uint32_t r = d - x0 * z;
    if (r >= x0 || z > static_cast<uint32_t>(n) ||
        (static_cast<u64>(f.p[r]) << (n - static_cast<int>(z))) != static_cast<u64>(tab[lim - d])) {
      return f;
    }
  }
  f.reg = true;
  return f;
}

bool lis_rows(const LisRowIn& in, const LogIntSoftmaxParams& p, const i64* tab, uint32_t lim, int32_t* qbuf,
              u64* ebuf, const LisRowOut& out, const LisTableFacts& facts, int64_t r0, int64_t r1, bool prefetch) {
#if defined(MNQ_HAVE_X86_SIMD)
  const bool normal = p.c.bits <= 6;  // every code ≤ 2^b − 1 ≤ 126: 2^−code is a normal float32
  if (facts.zeros) {
    return normal ? rows<true, true>(in, p, tab, lim, qbuf, ebuf, out, facts, r0, r1, prefetch)
                  : rows<true, false>(in, p, tab, lim, qbuf, ebuf, out, facts, r0, r1, prefetch);
  }
  return normal ? rows<false, true>(in, p, tab, lim, qbuf, ebuf, out, facts, r0, r1, prefetch)
                : rows<false, false>(in, p, tab, lim, qbuf, ebuf, out, facts, r0, r1, prefetch);
#else
  return false;
#endif
}

bool lis_row(const LisRowIn& in, const LogIntSoftmaxParams& p, const i64* tab, uint32_t lim, int32_t* qbuf, u64* ebuf,
             const LisRowOut& out, const LisTableFacts& facts) {
  LogIntSoftmaxParams one = p;
  one.rows = 1;
  return lis_rows(in, one, tab, lim, qbuf, ebuf, out, facts, 0, 1, false);
}

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
