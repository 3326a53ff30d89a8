// CPU I-BERT LayerNorm: rows in parallel; per row one pass loading the codes into an int32 row buffer while
// summing Σq and Σq², the shift search over the centred row when V(0) ≥ 2^32 (usually one pass of one sum,
// find_shift), one pass writing
// the output. All integer math is kernels/ibert_layernorm.h; the loops are written so they vectorize. With AVX-512
// (isa.h), int32 and float32 input take the explicit passes of layernorm_simd.h instead (same values): int32 rows
// in groups of 8 (rows_simd_grouped); float32 rows up to 8192 columns in groups of 8 too, on this file's
// offset-code passes (float_codes, float_out), longer ones software-pipelined by one (rows_simd_pipelined).
#include "csrc/ops/ibert_layernorm.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <vector>
#include <bit>
#include <cmath>
#include <cstdint>

#include "csrc/cpu/isa.h"
#include "csrc/cpu/layernorm_simd.h"
#include "csrc/cpu/row_buffer.h"
#include "csrc/cpu/simd.h"
#include "csrc/cpu/vectorize.h"
#include "csrc/dispatch.h"
#include "kernels/layernorm_common.h"

namespace mnq {
namespace ops {
namespace cpu {
namespace {

using namespace mnq::kernels;

// V(s) of the row q centred at mean: find_shift's short pass.
MNQ_CPU_CLONES i64 shifted_sum(const int32_t* q, int32_t mean, int64_t cols, int s) {
  i64 a = 0;
  for (int64_t j = 0; j < cols; ++j) a += ibert_term(q[j] - mean, s);
  return a;
}

// (V(s − 1), V(s)) of the row q centred at mean: one pass of the shift search.
MNQ_CPU_CLONES void shifted_sums(const int32_t* q, int32_t mean, int64_t cols, int s, i64& below, i64& at) {
  i64 b = 0, a = 0;
  for (int64_t j = 0; j < cols; ++j) {
    b += ibert_term(q[j] - mean, s - 1);
    a += ibert_term(q[j] - mean, s);
  }
  below = b;
  at = a;
}

// The shift search (ibert_find_shift) with one shorter pass for the usual row: when V(0) alone proves V(s − 1) ≥
// 2^32 at the estimate s, a pass computing V(s) only (`single`) decides whenever V(s) < 2^32. The bound: with
// t = y/2^r, floor(t)² ≥ t² − 2|t|, so V(r) ≥ V(0)/4^r − 2·Σ|y|/2^r ≥ V(0)/4^r − 2·√(C·V(0))/2^r (Cauchy–
// Schwarz), evaluated in float64 with a 2^−20 relative margin (far above its rounding errors). Otherwise, and
// when V(s) ≥ 2^32, the search runs as ibert_find_shift defines it (`pair` computes (V(s − 1), V(s))).
template <class Single, class Pair>
int find_shift(i64& var, int64_t cols, const Single& single, const Pair& pair) {
  if (var >= kIbertVarLimit) {
    const int s = ibert_shift_estimate(var);
    // 1/r = 2^(1−s) from its exponent bits (1 ≤ s ≤ 15): the quotients by the powers of two r² and r are these
    // exact products, without two divisions and a libm call on the row's critical path.
    const double v0 = static_cast<double>(var);
    const double ir = std::bit_cast<double>(static_cast<uint64_t>(1023 + 1 - s) << 52);
    if (v0 * (ir * ir) - 2.0 * std::sqrt(static_cast<double>(cols) * v0) * ir >= 0x1p32 * (1.0 + 0x1p-20)) {
      const i64 at = single(s);
      if (at < kIbertVarLimit) {
        var = at;
        return s;
      }
    }
  }
  return ibert_find_shift(var, pair);
}

// Rows [r0, r1); q is a [cols] buffer. False as soon as a row holds a code outside [p.lo, p.hi].
template <class In, class Out>
MNQ_CPU_CLONES bool rows(In in, Out out, const LnParams& p, int64_t r0, int64_t r1, int32_t* q) {
  const int64_t cols = p.cols;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t base = r * cols;
    int bad = 0;
    i64 s = 0, ss = 0;
    for (int64_t j = 0; j < cols; ++j) {
      const int32_t v = static_cast<int32_t>(in.load(base + j, j, p.lo, p.hi, bad));  // |v| ≤ 2^21
      q[j] = v;
      s += v;
      ss += static_cast<i64>(v) * v;
    }
    if (bad) return false;
    const i64 mean = ln_mean(s, cols);
    i64 var = ln_centered_sumsq(s, ss, mean, cols);
    const int32_t mean32 = static_cast<int32_t>(mean);  // |mean| ≤ 2^21, so |q − mean| ≤ 2^22
    const int shift = find_shift(
        var, cols, [&](int sh) { return shifted_sum(q, mean32, cols, sh); },
        [&](int sh, i64& below, i64& at) { shifted_sums(q, mean32, cols, sh, below, at); });
    const LnFactor f = ibert_factor(var, shift);
    for (int64_t j = 0; j < cols; ++j) out.store(base + j, j, ln_affine_out(q[j] - mean32, f, p.bias_int[j]));
  }
  return true;
}

// A row after its load pass: its codes, mean and Σ(q − mean)².
struct LoadedRow {
  const int32_t* q;
  int32_t mean;  // |mean| ≤ 2^21, so |q − mean| ≤ 2^22; offset codes: both + 3·2^21 (float_codes)
  i64 var;
};

#if defined(MNQ_HAVE_X86_SIMD)
// The QAT form's passes (float32 input, I-BERT's range [−2^21, 2^21 − 1], rows up to kSum32Cols columns): its
// codes are written offset by o = 3·2^21, q' = q + o ∈ [2^22, 2^23), and the row's mean with them, m' = mean + o,
// so that every later pass, which reads only q' − m' = y, is unchanged (|q'|, |m'| < 2^23: no int32 overflow).
//
// Load pass (per 8 values, float64 lanes): p = fl64(x·inv) as LnFloatIn rounds it, then r = p + M rounded to
// nearest even (embedded rounding, whatever MXCSR says), M = 2^52 + o. Claim: q = rint(p) lies in [−2^21, 2^21)
// — ln_float_code's test — iff bits(r) lies in the block [B, B + 2^22), B = bits(2^52 + 2^22) (the 2^22 low bits
// of B are 0, so the test is (bits(r) XOR B) < 2^22, one VPTERNLOGQ folded into an OR accumulator); then r = M + q
// and the low 32 bits of bits(r) are q' = q + o.
//   ⇒: q ∈ [−2^21, 2^21) means p ∈ [−2^21 − 1/2, 2^21 − 1/2], so p + M ∈ [2^52 + 2^22 − 1/2, 2^52 + 2^23 − 1/2].
//      Rounding to nearest onto the doubles there — the integers of [2^52, 2^53] — gives M + q: the integer
//      nearest p + M is M + (the integer nearest p), and at a tie the even one, M + q with q even (M is even), as
//      rint. So r = 2^52 + (o + q), o + q ∈ [2^22, 2^23), and bits(r) = bits(2^52) + o + q ∈ [B, B + 2^22).
//   ⇐: bits(r) ∈ [B, B + 2^22) means r ∈ [2^52 + 2^22, 2^52 + 2^23). Rounding is monotone, so p + M lies within
//      1/2 of that interval, inside [2^52, 2^53), where (above) r = M + rint(p): rint(p) ∈ [−2^21, 2^21).
//   A NaN or ±inf r has exponent bits 0x7FF; a negative r has the sign bit: both outside the block.
// The sums: Σq' in the 16 int32 lanes, wrapping: each lane adds at most 512 codes (kSum32Cols), and its Σq =
// Σq' − n·o (n steps; the lanes past the row's end load x = 0, so q = 0, q' = o) is within ±2^30, so the lane's
// wrapped Σq' − n·o is its Σq exactly. Σq'² as VPMULDQ of each 64-bit lane's low 32 bits (q' < 2^23, one code per
// lane, no shift to the odd half), ≤ 8192·2^46 in int64 lanes; then Σq² = Σq'² − 2o·Σq − N·o² over all N = 16n
// lanes (the padding lanes' q' = o adds o² each, its q nothing).
//
// Output pass (float output with ln_bias_magic's bias_m): t = fma(q', f/2, −m'·f/2) is y·f/2 exactly. m'·f is a
// double: f = floor(2^31/std) is 2^31 (std = 1; m'·2^31 has m''s 23 significant bits) or ≤ 2^30 (std ≥ 2;
// m'·f < 2^23·2^30 = 2^53), so −m'·f/2 is exact; the FMA's exact result q'·f/2 − m'·f/2 = y·f/2 is a multiple
// of 1/2 with |y·f| < 2^32 (kernels/ibert_layernorm.h), a double, so it is t. Then r = t + (bias_int[c] + K)
// rounded toward −∞ is K + bias_int[c] + floor(y·f/2) = K + v exactly, by ln_bias_magic's bound
// (layernorm_simd.h), and fl32(fl64(v)·S_out[c]) is ln_out_row's value: the int32 y's subtraction saved, the
// codes converted straight from memory.
constexpr int32_t kCodeOffset = 3 << 21;             // o
constexpr double kCodeMagic = 0x1p52 + 3 * 0x1p21;   // M = 2^52 + o
constexpr int64_t kCodeBlock = 0x4330000000400000;  // B = bits(2^52 + 2^22)
constexpr double kOutMagic = 0x1.8p52;              // K = 1.5·2^52 (ln_bias_magic)

// One step of 16 values: x as two float32 halves (k: the lanes in the row, zero beyond).
template <bool kTail>
MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE void code_step(const float* x, int32_t* q, __mmask16 k, __m512d vinv,
                                                   __m512d magic, __m512i block, __m512i even, __m512i& bad,
                                                   __m512i& s1, __m512i& s2) {
  constexpr int kNearest = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  const __m256 x0 = kTail ? _mm256_maskz_loadu_ps(static_cast<__mmask8>(k), x) : _mm256_loadu_ps(x);
  const __m256 x1 = kTail ? _mm256_maskz_loadu_ps(static_cast<__mmask8>(k >> 8), x + 8) : _mm256_loadu_ps(x + 8);
  const __m512i t0 =
      _mm512_castpd_si512(_mm512_add_round_pd(_mm512_mul_pd(_mm512_cvtps_pd(x0), vinv), magic, kNearest));
  const __m512i t1 =
      _mm512_castpd_si512(_mm512_add_round_pd(_mm512_mul_pd(_mm512_cvtps_pd(x1), vinv), magic, kNearest));
  bad = _mm512_ternarylogic_epi64(bad, t0, block, 0xF6);  // bad | (t0 ^ B)
  bad = _mm512_ternarylogic_epi64(bad, t1, block, 0xF6);
  const __m512i c = _mm512_permutex2var_epi32(t0, even, t1);  // the low halves: q'
  if (kTail) {
    _mm512_mask_storeu_epi32(q, k, c);
  } else {
    _mm512_storeu_si512(q, c);
  }
  s1 = _mm512_add_epi32(s1, c);
  s2 = _mm512_add_epi64(s2, _mm512_add_epi64(_mm512_mul_epi32(t0, t0), _mm512_mul_epi32(t1, t1)));
}

// The load pass: q' into q [cols], Σq and Σq² of the codes q; false when a value has no code in range.
MNQ_TARGET_AVX512 bool float_codes(const float* x, int64_t cols, double inv, int32_t* q, i64& sum, i64& sumsq) {
  const __m512d vinv = _mm512_set1_pd(inv), magic = _mm512_set1_pd(kCodeMagic);
  const __m512i block = _mm512_set1_epi64(kCodeBlock);
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  __m512i bad = _mm512_setzero_si512(), s1 = _mm512_setzero_si512(), s2 = _mm512_setzero_si512();
  int64_t j = 0;
  for (; j + 16 <= cols; j += 16) code_step<false>(x + j, q + j, 0xffff, vinv, magic, block, even, bad, s1, s2);
  if (j < cols) {
    const __mmask16 k = static_cast<__mmask16>((1u << (cols - j)) - 1);
    code_step<true>(x + j, q + j, k, vinv, magic, block, even, bad, s1, s2);
  }
  const int64_t n = (cols + 15) / 16;  // steps
  s1 = _mm512_sub_epi32(s1, _mm512_set1_epi32(static_cast<int32_t>(static_cast<uint32_t>(n) * kCodeOffset)));
  sum = _mm512_reduce_add_epi64(_mm512_add_epi64(_mm512_cvtepi32_epi64(_mm512_castsi512_si256(s1)),
                                                 _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(s1, 1))));
  constexpr i64 o = kCodeOffset;
  sumsq = _mm512_reduce_add_epi64(s2) - 2 * o * sum - 16 * n * o * o;
  return _mm512_test_epi64_mask(bad, _mm512_set1_epi64(~((i64(1) << 22) - 1))) == 0;
}

// The output pass (see above): m' = mean + o, bias_m = ln_bias_magic's [cols].
MNQ_TARGET_AVX512 void float_out(const int32_t* q, int32_t mp, int64_t cols, i64 f, const double* bias_m,
                                 const double* s_out, float* value) {
  constexpr int kDown = _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC;
  const __m512d fh = _mm512_set1_pd(static_cast<double>(f) * 0.5);
  const __m512d c0 = _mm512_set1_pd(-static_cast<double>(static_cast<i64>(mp) * f) * 0.5);  // exact (above)
  const __m512d magic = _mm512_set1_pd(kOutMagic);
  int64_t j = 0;
  for (; j + 8 <= cols; j += 8) {
    const __m256i qv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + j));
    const __m512d t = _mm512_fmadd_pd(_mm512_cvtepi32_pd(qv), fh, c0);
    const __m512d r = _mm512_add_round_pd(t, _mm512_loadu_pd(bias_m + j), kDown);
    _mm256_storeu_ps(value + j, _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_sub_pd(r, magic), _mm512_loadu_pd(s_out + j))));
  }
  if (j < cols) {
    const __mmask8 k = static_cast<__mmask8>((1u << (cols - j)) - 1);
    const __m512d t = _mm512_fmadd_pd(_mm512_cvtepi32_pd(_mm256_maskz_loadu_epi32(k, q + j)), fh, c0);
    const __m512d r = _mm512_add_round_pd(t, _mm512_maskz_loadu_pd(k, bias_m + j), kDown);
    _mm256_mask_storeu_ps(value + j, k,
                          _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_sub_pd(r, magic), _mm512_maskz_loadu_pd(k, s_out + j))));
  }
}
#endif

// Whether the QAT form's offset passes (above) take a call: float32 input on I-BERT's range, rows of ≤ 8192.
bool offset_codes(const LnRowIn& in, const LnParams& p) {
#if defined(MNQ_HAVE_X86_SIMD)
  return in.x != nullptr && p.lo == kIbertLnLo && p.hi == kIbertLnHi && p.cols <= 8192;
#else
  (void)in;
  (void)p;
  return false;
#endif
}

bool load_offset_row(const LnRowIn& in, const LnParams& p, int64_t r, int32_t* buf, LoadedRow& row) {
#if defined(MNQ_HAVE_X86_SIMD)
  i64 s = 0, ss = 0;
  if (!float_codes(in.x + r * p.cols, p.cols, in.inv_scale, buf, s, ss)) return false;
  const i64 mean = ln_mean(s, p.cols);
  row = LoadedRow{buf, static_cast<int32_t>(mean + kCodeOffset), ln_centered_sumsq(s, ss, mean, p.cols)};
  return true;
#else
  (void)in, (void)p, (void)r, (void)buf, (void)row;
  return false;
#endif
}

// The output pass of offset codes: float_out where bias_m is set, else ln_out_row.
void out_offset_row(const int32_t* q, int32_t m, int64_t cols, LnFactor f, const LnParams& p, const LnRowOut& out) {
#if defined(MNQ_HAVE_X86_SIMD)
  if (out.bias_m != nullptr) {
    float_out(q, m, cols, 2 * static_cast<i64>(f.half) + (f.odd_mask & 1), out.bias_m, out.s_out, out.value);
    return;
  }
#endif
  ln_out_row(q, m, cols, f, p.bias_int, out);
}

bool load_simd_row(const LnRowIn& in, const LnParams& p, int64_t r, int32_t* buf, LoadedRow& row) {
  const LnRowIn ri = in.at(r * p.cols);
  i64 s = 0, ss = 0;
  if (!ln_load_row(ri, p.cols, p.lo, p.hi, buf, s, ss)) return false;
  const i64 mean = ln_mean(s, p.cols);
  row = LoadedRow{ri.codes(buf), static_cast<int32_t>(mean), ln_centered_sumsq(s, ss, mean, p.cols)};
  return true;
}

// Rows [r0, r1) on the AVX-512 passes (layernorm_simd.h); `in` and `out` point at row 0, buf is a [2, cols] buffer.
// Software-pipelined by one row: row r + 1's load pass runs between row r's shift search and its output pass, so
// that row r's scalar chain (isqrt, the 64-bit division of f) overlaps it instead of stalling the output pass, and
// row r + 1's mean division overlaps row r's output pass. (A rejected row stops the loop with rows before it
// unwritten: the caller then discards or recomputes the whole output.) Float input outside offset_codes (rows
// over 8192 columns) takes this form: with ln_load_row's float passes rows_simd_grouped measured 2–3% slower (the
// group's codes, 12 KB at C = 384, written by its load passes), and prefetching the next rows from the output
// pass made both forms slower.
bool rows_simd_pipelined(const LnRowIn& in, const LnRowOut& out, const LnParams& p, int64_t r0, int64_t r1,
                         int32_t* buf) {
  const int64_t cols = p.cols;
  LoadedRow row{};
  if (r0 < r1 && !load_simd_row(in, p, r0, buf, row)) return false;
  for (int64_t r = r0; r < r1; ++r) {
    i64 var = row.var;
    const int32_t* const q = row.q;
    const int32_t m = row.mean;
    const int shift = find_shift(
        var, cols, [&](int sh) { return ln_shift_sum(q, m, cols, sh); },
        [&](int sh, i64& below, i64& at) { ln_shift_sums(q, m, cols, sh, below, at); });
    const LnFactor f = ibert_factor(var, shift);
    LoadedRow next{};
    if (r + 1 < r1 && !load_simd_row(in, p, r + 1, buf + ((r + 1 - r0) & 1) * cols, next)) return false;
    ln_out_row(q, m, cols, f, p.bias_int, out.at(r * cols));
    row = next;
  }
  return true;
}

// Rows [r0, r1) of int32 input on the AVX-512 passes (layernorm_simd.h), the codes read in place; `in` and `out`
// point at row 0. kGroup rows at a time: their load passes, then their shift searches and factors, then their
// output passes, so that each row's scalar chain (the mean's division, the search's square root, isqrt and the
// 64-bit division of f) overlaps the other rows' passes instead of stalling its own output pass. ~5% faster than
// rows_simd_pipelined on int32 input. With `offset` (offset_codes: float32 input), the same on the offset-code
// passes, the group's codes in buf [kGroup, cols]: 0–3% faster than pipelined at batch 8, ~7% at batch 1 (least
// of 40 calls, 4 alternated runs: 0.025–0.026 vs 0.027–0.028 ms at 1×197×384). (A rejected row stops the loop
// with its group unwritten: the caller then discards or recomputes the whole output.)
constexpr int64_t kGroup = 8;

bool rows_simd_grouped(const LnRowIn& in, const LnRowOut& out, const LnParams& p, int64_t r0, int64_t r1,
                       bool offset, int32_t* buf) {
  const int64_t cols = p.cols;
  for (int64_t r = r0; r < r1; r += kGroup) {
    const int64_t n = std::min<int64_t>(kGroup, r1 - r);
    LoadedRow row[kGroup];
    for (int64_t i = 0; i < n; ++i) {
      const bool ok = offset ? load_offset_row(in, p, r + i, buf + i * cols, row[i])
                             : load_simd_row(in, p, r + i, nullptr, row[i]);  // int32: no buffer written
      if (!ok) return false;
    }
    LnFactor f[kGroup];
    for (int64_t i = 0; i < n; ++i) {
      i64 var = row[i].var;
      const int32_t* const q = row[i].q;
      const int32_t m = row[i].mean;
      const int shift = find_shift(
          var, cols, [&](int sh) { return ln_shift_sum(q, m, cols, sh); },
          [&](int sh, i64& below, i64& at) { ln_shift_sums(q, m, cols, sh, below, at); });
      f[i] = ibert_factor(var, shift);
    }
    for (int64_t i = 0; i < n; ++i) {
      if (offset) {
        out_offset_row(row[i].q, row[i].mean, cols, f[i], p, out.at((r + i) * cols));
      } else {
        ln_out_row(row[i].q, row[i].mean, cols, f[i], p.bias_int, out.at((r + i) * cols));
      }
    }
  }
  return true;
}

// simd_in / simd_out (int32 or float32 input): the AVX-512 passes when isa() allows them.
template <class In, class Out>
bool run(In in, Out out, const LnParams& p, const LnRowIn* simd_in = nullptr, const LnRowOut* simd_out = nullptr) {
  std::atomic<bool> all_ok{true};
  const int64_t grain = std::max<int64_t>(1, 16384 / p.cols);
  const bool simd = simd_in != nullptr && isa() == Isa::kAvx512;
  // Float output: the float64 form of the output pass when every |bias_int| ≤ 2^50 (ln_bias_magic).
  std::vector<double> bias_m(simd && simd_out->value != nullptr ? p.cols : 0);
  LnRowOut out_simd = simd_out != nullptr ? *simd_out : LnRowOut{};
  if (!bias_m.empty() && ln_bias_magic(p.bias_int, p.cols, bias_m.data())) out_simd.bias_m = bias_m.data();
  at::parallel_for(0, p.rows, grain, [&](int64_t r0, int64_t r1) {
    const bool offset = simd && offset_codes(*simd_in, p);
    RowBuffer<int32_t> q(offset ? kGroup * p.cols : simd ? 2 * p.cols : p.cols);
    bool ok;
    if (!simd) {
      ok = rows(in, out, p, r0, r1, q.data());
    } else if (simd_in->x != nullptr && !offset) {
      ok = rows_simd_pipelined(*simd_in, out_simd, p, r0, r1, q.data());
    } else {
      ok = rows_simd_grouped(*simd_in, out_simd, p, r0, r1, offset, q.data());
    }
    if (!ok) all_ok = false;
  });
  return all_ok;
}

}  // namespace

bool ibert_layernorm(const at::Tensor& in, const at::Tensor& out, const LnParams& p, double inv_scale,
                     const at::Tensor& s_out) {
  if (in.scalar_type() == at::kFloat) {
    const LnRowIn si{nullptr, in.data_ptr<float>(), inv_scale};
    const LnRowOut so{nullptr, out.data_ptr<float>(), s_out.data_ptr<double>()};
    return run(LnFloatIn{in.data_ptr<float>(), inv_scale},
               LnChannelFloatOut{out.data_ptr<float>(), s_out.data_ptr<double>()}, p, &si, &so);
  }
  if (in.scalar_type() == at::kInt) {
    const LnRowIn si{in.data_ptr<int32_t>(), nullptr, 0.0};
    const LnRowOut so{out.data_ptr<int64_t>(), nullptr, nullptr};
    return run(LnIntIn<int32_t>{in.data_ptr<int32_t>()}, LnIntOut{out.data_ptr<int64_t>()}, p, &si, &so);
  }
  return MNQ_DISPATCH_INT(in.scalar_type(), "ibert_layernorm", [&] {
    return run(LnIntIn<scalar_t>{in.data_ptr<scalar_t>()}, LnIntOut{out.data_ptr<int64_t>()}, p);
  });
}

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
