// The CPU kernel of mnq::quant_matmul (csrc/ops/quant_matmul.h): per product g (one batch index) of
// out[g] = fl32(fl64(q_a[g] @ q_b[g])·S_out), in parallel over g.
//
// A tile's codes: the certified vector quantizer (csrc/cpu/quant_simd.h: kernels/quant.h quantize_code's values,
// clamped to [−2^18, 2^18 − 1]) over the contiguous spans of the strided operand (rows of q / v / attn, columns of
// kᵀ), as int32 into a packed buffer (a: [M][K]; b: [K][Np], Np = N rounded up to 16, zero columns after N), then
// as float32 with the tile's bound: L = max_m Σ_k |q_a[m, k]| and Q = max |q_b|.
// Exactness of the float32 form: when no code lies at the clamp ends (|q| ≤ 2^18 − 2: the quantizer's own code,
// not a clamped one) and L·Q < 2^24, every product q_a·q_b and every partial sum of a row's products (in any order,
// with or without FMA) is an integer of magnitude ≤ L·Q < 2^24, hence a float32 value: each FMA is exact, and the
// accumulator equals the integer Σ_k q_a·q_b. The epilogue converts it to float64 (exact), multiplies by S_out
// (one rounding) and rounds to float32 (one rounding): the reference's fl32(fl64(acc)·S_out), on the AVX-512 path
// (cvtps_pd, mul_pd, cvtpd_ps) and the scalar one alike. The accumulators start at +0.0, so a zero sum is +0.0
// (−0 + +0 = +0), as the reference's.
// Any other tile (NaN, wide codes, a code at the clamp, L·Q ≥ 2^24) stops the kernel: it returns false and the op
// computes the whole call on its float64 path (csrc/ops/quant_matmul.cpp generic; the same values, exact while every
// partial sum stays below 2^53).
// AVX-512: a register-blocked micro-kernel of MR rows × 16·NV columns (NV = 2: 8 rows, 16 accumulators; NV = 1: 12
// rows), a's codes broadcast from the packed buffer, b's loaded as vectors; row remainders by smaller MR. AVX2: the
// same with 5 rows × 16 columns of 8-lane vectors (fast_tile_avx2). The scalar path: the same tiles with a scalar
// row loop (same values).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>

#include "csrc/cpu/isa.h"
#include "csrc/cpu/quant_simd.h"
#include "csrc/cpu/simd.h"
#include "csrc/ops/quant_matmul.h"
#include "kernels/quant.h"

namespace mnq {
namespace ops {
namespace cpu {
namespace {

using kernels::i64;
constexpr i64 kLo = -(i64(1) << 18), kHi = (i64(1) << 18) - 1;  // the certified quantizer's range (bits ≤ 19)
constexpr int64_t kExact = int64_t(1) << 24;                      // float32 integers: |v| ≤ 2^24

// One operand's quantizer: its scale, fl32(1/S) and the quantize_span path (kScalar where 1/S is outside the
// certified vector paths' range: quantize_simd_ok).
struct Quantizer {
  Isa path;
  double s;
  float r;
};

Quantizer quantizer(double s) {
  const Isa path = quantize_simd_ok(&s, 1, kLo, kHi) ? isa() : Isa::kScalar;
  return {path, s, static_cast<float>(1.0 / s)};
}

// Codes of the R×C tile x[i, j] = p[i·si + j·sj] into out[i·ld + j]; tmp holds R values. Nonzero when an input
// has no code (NaN; its slot is then not written).
int tile_codes(const Quantizer& q, const float* p, int64_t R, int64_t C, int64_t si, int64_t sj, int32_t* out,
               int64_t ld, int32_t* tmp) {
  int bad = 0;
  if (sj == 1 || C == 1) {  // rows are spans
    for (int64_t i = 0; i < R; ++i) {
      const QuantSpan sp{p + i * si, 0, C, &q.s, &q.r, false, kLo, kHi};
      bad |= quantize_span(q.path, sp, kernels::CodeOut{out + i * ld});
    }
  } else if (si == 1 || R == 1) {  // columns are spans (kᵀ)
    for (int64_t j = 0; j < C; ++j) {
      const QuantSpan sp{p + j * sj, 0, R, &q.s, &q.r, false, kLo, kHi};
      const int b = quantize_span(q.path, sp, kernels::CodeOut{tmp});
      bad |= b;
      if (b == 0) {
        for (int64_t i = 0; i < R; ++i) out[i * ld + j] = tmp[i];
      }
    }
  } else {
    for (int64_t i = 0; i < R; ++i) {
      for (int64_t j = 0; j < C; ++j) {
        i64 c = 0;
        bad |= static_cast<int>(!kernels::quantize_code(p[i * si + j * sj], q.s, kLo, kHi, c));
        out[i * ld + j] = static_cast<int32_t>(c);
      }
    }
  }
  return bad;
}

// f[i·ld + j] = q[i·ld + j] for the R×C block; returns max_i Σ_j |q| (row_l1) and max |q| (amax).
void to_float(const int32_t* q, float* f, int64_t R, int64_t C, int64_t ld, int64_t& row_l1, int64_t& amax) {
  int64_t l1max = 0;
  int32_t m = 0;
  for (int64_t i = 0; i < R; ++i) {
    int64_t l1 = 0;
    for (int64_t j = 0; j < C; ++j) {
      const int32_t v = q[i * ld + j];
      const int32_t a = v < 0 ? -v : v;  // |v| ≤ 2^18
      l1 += a;
      m = std::max(m, a);
      f[i * ld + j] = static_cast<float>(v);
    }
    l1max = std::max(l1max, l1);
  }
  row_l1 = l1max;
  amax = m;
}

// The float32 form, scalar: rows of A [M][lda] times B [K][ld] into o (acc: N floats).
void fast_tile_scalar(const float* A, int64_t lda, const float* B, int64_t M, int64_t K, int64_t N, int64_t ld,
                      float* o, int64_t o_sm, double s, float* acc) {
  for (int64_t i = 0; i < M; ++i) {
    std::fill(acc, acc + N, 0.0f);
    for (int64_t k = 0; k < K; ++k) {
      const float v = A[i * lda + k];
      for (int64_t n = 0; n < N; ++n) acc[n] += v * B[k * ld + n];
    }
    for (int64_t n = 0; n < N; ++n) o[i * o_sm + n] = static_cast<float>(static_cast<double>(acc[n]) * s);
  }
}

#if defined(MNQ_HAVE_X86_SIMD)
// Codes of the n floats at x as float32 integers into out[0, roundup16(n)) (lanes from n on: 0), the certified
// form of quant_simd.cpp's span_avx512: p = x·fl32(1/S) clamped to [lo, hi], q = rint(p) (vreduceps), certified by
// the margin test; a lane that fails it is recomputed by quantize_code itself. Accumulates |q| into l1 and max |q|
// into amax (lane-wise). False when an input has no code (NaN).
MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE bool span_codes(const Quantizer& qz, const float* x, int64_t n, float* out,
                                                      __m512& l1, __m512& amax) {
  const __m512 flo = _mm512_set1_ps(static_cast<float>(kLo)), fhi = _mm512_set1_ps(static_cast<float>(kHi));
  const __m512 r = _mm512_set1_ps(qz.r);
  const __m512 abs_mask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 m = n - j >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << (n - j)) - 1);
    const __m512 p = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + j), r);
    const __m512 pc = _mm512_min_ps(fhi, _mm512_max_ps(flo, p));  // NaN stays (second operand)
    const __m512 e = _mm512_reduce_ps(pc, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 q = _mm512_sub_ps(pc, e);
    const __mmask16 ok = rint_margin_lanes(pc, e, 0x1p-21f);
    if (ok != 0xFFFF) {
      _mm512_storeu_ps(out + j, q);
      for (unsigned bad = static_cast<__mmask16>(~ok); bad != 0; bad &= bad - 1) {
        const int l = __builtin_ctz(bad);
        i64 c = 0;
        if (!kernels::quantize_code(x[j + l], qz.s, kLo, kHi, c)) return false;
        out[j + l] = static_cast<float>(c);
      }
      q = _mm512_loadu_ps(out + j);
    } else {
      _mm512_storeu_ps(out + j, q);
    }
    const __m512 a = _mm512_and_ps(q, abs_mask);
    l1 = _mm512_add_ps(l1, a);
    amax = _mm512_max_ps(amax, a);
  }
  return true;
}

// Prefetch of the span kAhead spans after span i (of n, `stride` apart, `len` floats each): a tile's spans are
// separate cache lines (a head's row of q, k or v: 64 bytes, 768 apart in vit_mnist_tiny's qkv tensor) that arrive
// from L3 or memory in the model; requested this far ahead they overlap the conversion of the spans before them.
constexpr int64_t kAhead = 8;
MNQ_ALWAYS_INLINE void ahead(const float* p, int64_t i, int64_t n, int64_t stride, int64_t len) {
  if (i + kAhead >= n) return;
  const float* span = p + (i + kAhead) * stride;
  for (int64_t j = 0; j < len; j += 16) _mm_prefetch(reinterpret_cast<const char*>(span + j), _MM_HINT_T0);
}

// The R×C tile x[i, j] = p[i·si + j·sj] with rows (sj = 1) or columns (si = 1) contiguous, as float32 codes into
// f[i·ld + j] (ld = roundup16(C); columns C..ld zero); row_l1: max_i Σ_j |q| (when wanted), amax: max |q|
// (see span_codes: the float32 sums of nonnegative integers are exact below 2^24 and ≥ 2^24 otherwise, which is all
// the bound needs). tmp: C·roundup16(R) floats. False when an input has no code.
MNQ_TARGET_AVX512 bool tile_codes_avx512(const Quantizer& qz, const float* p, int64_t R, int64_t C, int64_t si,
                                         int64_t sj, float* f, int64_t ld, float* tmp, bool want_l1, float& row_l1,
                                         float& amax) {
  __m512 vmax = _mm512_setzero_ps();
  float l1max = 0.0f;
  if (sj == 1 || C == 1) {
    for (int64_t i = 0; i < R; ++i) {
      ahead(p, i, R, si, C);
      __m512 l1 = _mm512_setzero_ps();
      if (!span_codes(qz, p + i * si, C, f + i * ld, l1, vmax)) return false;
      if (want_l1) l1max = std::max(l1max, _mm512_reduce_add_ps(l1));
    }
  } else {
    const int64_t lt = (R + 15) / 16 * 16;
    __m512 l1 = _mm512_setzero_ps();
    for (int64_t j = 0; j < C; ++j) {
      ahead(p, j, C, sj, R);
      if (!span_codes(qz, p + j * sj, R, tmp + j * lt, l1, vmax)) return false;
    }
    for (int64_t i = 0; i < R; ++i) {
      float* row = f + i * ld;
      for (int64_t j = 0; j < C; ++j) row[j] = tmp[j * lt + i];
      std::fill(row + C, row + ld, 0.0f);
      if (want_l1) {
        float s = 0.0f;
        for (int64_t j = 0; j < C; ++j) s += std::fabs(row[j]);
        l1max = std::max(l1max, s);
      }
    }
  }
  row_l1 = l1max;
  amax = _mm512_reduce_max_ps(vmax);
  return true;
}

// MR rows × NV vectors of 16 columns: acc = A[0:MR, :] @ B[:, 0:16·NV] (A's rows lda apart, B's ld), then the
// epilogue into o's first `valid` columns (valid > 16·(NV − 1)).
template <int MR, int NV>
MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE void block(const float* A, int64_t lda, int64_t K, const float* B, int64_t ld,
                                               float* o, int64_t o_sm, int64_t valid, __m512d s) {
  __m512 acc[MR][NV];
  for (int r = 0; r < MR; ++r) {
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  }
  for (int64_t k = 0; k < K; ++k) {
    __m512 b[NV];
    for (int v = 0; v < NV; ++v) b[v] = _mm512_loadu_ps(B + k * ld + 16 * v);
    for (int r = 0; r < MR; ++r) {
      const __m512 a = _mm512_set1_ps(A[r * lda + k]);
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(a, b[v], acc[r][v]);
    }
  }
  for (int v = 0; v < NV; ++v) {
    const int64_t left = valid - 16 * v;
    const __mmask16 m = left >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << left) - 1);
    for (int r = 0; r < MR; ++r) {
      // fl32(fl64(acc)·S_out): the exact conversion, one rounding for the product, one for the float32
      const __m256 lo = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(acc[r][v])), s));
      const __m256 hi = _mm512_cvtpd_ps(_mm512_mul_pd(_mm512_cvtps_pd(_mm512_extractf32x8_ps(acc[r][v], 1)), s));
      _mm512_mask_storeu_ps(o + r * o_sm + 16 * v, m, _mm512_insertf32x8(_mm512_castps256_ps512(lo), hi, 1));
    }
  }
}

// The row remainder r < MR: block<r, NV>.
template <int MR, int NV>
MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE void block_tail(int r, const float* A, int64_t lda, int64_t K, const float* B,
                                                    int64_t ld, float* o, int64_t o_sm, int64_t valid, __m512d s) {
  if constexpr (MR > 0) {
    if (r == MR) {
      block<MR, NV>(A, lda, K, B, ld, o, o_sm, valid, s);
    } else {
      block_tail<MR - 1, NV>(r, A, lda, K, B, ld, o, o_sm, valid, s);
    }
  }
}

template <int NV>
MNQ_TARGET_AVX512 void column_panel(const float* A, int64_t lda, int64_t M, int64_t K, const float* B, int64_t ld,
                                    float* o, int64_t o_sm, int64_t valid, __m512d s) {
  constexpr int kMR = NV == 2 ? 8 : 12;
  int64_t i = 0;
  for (; i + kMR <= M; i += kMR) block<kMR, NV>(A + i * lda, lda, K, B, ld, o + i * o_sm, o_sm, valid, s);
  if (i < M) {
    block_tail<kMR - 1, NV>(static_cast<int>(M - i), A + i * lda, lda, K, B, ld, o + i * o_sm, o_sm, valid, s);
  }
}

MNQ_TARGET_AVX512 void fast_tile_avx512(const float* A, int64_t lda, const float* B, int64_t M, int64_t K,
                                        int64_t N, int64_t ld, float* o, int64_t o_sm, double s) {
  const __m512d sv = _mm512_set1_pd(s);
  for (int64_t j = 0; j < N; j += 32) {
    if (ld - j >= 32) {
      column_panel<2>(A, lda, M, K, B + j, ld, o + j, o_sm, N - j, sv);
    } else {
      column_panel<1>(A, lda, M, K, B + j, ld, o + j, o_sm, N - j, sv);
    }
  }
}

// AVX2 (8 lanes, 16 ymm registers): the same tiles and values as the AVX-512 micro-kernel above — MR rows × two
// vectors of 8 columns (MR = 5: 10 accumulators, two B vectors and the broadcast; with 6 GCC spilled a B vector to
// the stack, 9.8 → 5.1 ms on 8×6×197×64 q@kᵀ against 8.1 for 6 and 6.3 for 4), every FMA exact by the header's
// bound, so the order of the sums does not matter — and the same epilogue fl32(fl64(acc)·S_out) by 4-lane halves
// (rounded to nearest as MXCSR says, as the scalar path's conversions and product are). Columns past `valid` are
// not stored (B's padding columns are zeros).

// fl32(fl64(acc)·S_out) of 8 accumulators into dst's first min(left, 8) floats.
MNQ_TARGET_AVX2 MNQ_ALWAYS_INLINE void store8_avx2(__m256 acc, float* dst, int64_t left, __m256d s) {
  const __m128 lo = _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(acc)), s));
  const __m128 hi = _mm256_cvtpd_ps(_mm256_mul_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(acc, 1)), s));
  if (left >= 8) {
    _mm256_storeu_ps(dst, _mm256_set_m128(hi, lo));
  } else {
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int32_t>(left)),
                                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    _mm256_maskstore_ps(dst, mask, _mm256_set_m128(hi, lo));
  }
}

template <int MR>
MNQ_TARGET_AVX2 MNQ_ALWAYS_INLINE void block_avx2(const float* A, int64_t lda, int64_t K, const float* B, int64_t ld,
                                                  float* o, int64_t o_sm, int64_t valid, __m256d s) {
  __m256 acc[MR][2];
  for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    const __m256 b0 = _mm256_loadu_ps(B + k * ld), b1 = _mm256_loadu_ps(B + k * ld + 8);
    for (int r = 0; r < MR; ++r) {
      const __m256 a = _mm256_broadcast_ss(A + r * lda + k);
      acc[r][0] = _mm256_fmadd_ps(a, b0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(a, b1, acc[r][1]);
    }
  }
  // (Each accumulator by its constant index: a loop over them with a runtime exit kept the array in memory.)
  for (int r = 0; r < MR; ++r) {
    store8_avx2(acc[r][0], o + r * o_sm, valid, s);
    if (valid > 8) store8_avx2(acc[r][1], o + r * o_sm + 8, valid - 8, s);
  }
}

template <int MR>
MNQ_TARGET_AVX2 MNQ_ALWAYS_INLINE void block_tail_avx2(int r, const float* A, int64_t lda, int64_t K, const float* B,
                                                       int64_t ld, float* o, int64_t o_sm, int64_t valid, __m256d s) {
  if constexpr (MR > 0) {
    if (r == MR) {
      block_avx2<MR>(A, lda, K, B, ld, o, o_sm, valid, s);
    } else {
      block_tail_avx2<MR - 1>(r, A, lda, K, B, ld, o, o_sm, valid, s);
    }
  }
}

// A [M][lda] @ B [K][ld] (ld a multiple of 16, zero columns from N) into o, 16 columns per panel.
MNQ_TARGET_AVX2 void fast_tile_avx2(const float* A, int64_t lda, const float* B, int64_t M, int64_t K, int64_t N,
                                    int64_t ld, float* o, int64_t o_sm, double s) {
  constexpr int kMR = 5;
  const __m256d sv = _mm256_set1_pd(s);
  for (int64_t j = 0; j < N; j += 16) {
    int64_t i = 0;
    for (; i + kMR <= M; i += kMR) block_avx2<kMR>(A + i * lda, lda, K, B + j, ld, o + i * o_sm + j, o_sm, N - j, sv);
    if (i < M) {
      block_tail_avx2<kMR - 1>(static_cast<int>(M - i), A + i * lda, lda, K, B + j, ld, o + i * o_sm + j, o_sm, N - j,
                               sv);
    }
  }
}
#endif

}  // namespace

bool quant_matmul(const QuantMatmulArgs& p) {
  const int64_t M = p.M, K = p.K, N = p.N, ld = (N + 15) / 16 * 16, lda = (K + 15) / 16 * 16;
  int64_t G = 1;
  for (int d = 0; d < p.nbatch; ++d) G *= p.batch[d];
  const Quantizer qa = quantizer(p.s_a), qb = quantizer(p.s_b);
  const bool wide = isa() == Isa::kAvx512;
  [[maybe_unused]] const bool avx2 = isa() == Isa::kAvx2;
  // Scratch (4-byte words): a's float32 codes M·lda, b's K·ld; their int32 codes (other ISAs, other strides); tmp:
  // a column-span tile's codes (K·roundup16(M) or N·roundup16(K)), tile_codes' column, the scalar path's row.
  const int64_t n_f = M * lda + K * ld;
  const int64_t n_tmp = std::max({lda * M, ld * K, (M + 15) / 16 * 16 * K, (K + 15) / 16 * 16 * N, N});
  const int64_t words = 2 * n_f + n_tmp;
  const int64_t work = std::max<int64_t>(1, M * K + K * N + M * N);
  std::atomic<bool> all_fast{true};
  at::parallel_for(0, G, std::max<int64_t>(1, at::internal::GRAIN_SIZE / work), [&](int64_t g0, int64_t g1) {
    at::Tensor buf = at::empty({words}, at::TensorOptions().dtype(at::kInt));
    float* fa = reinterpret_cast<float*>(buf.data_ptr<int32_t>());
    float* fb = fa + M * lda;
    int32_t* ca = reinterpret_cast<int32_t*>(fb + K * ld);
    int32_t* cb = ca + M * lda;
    int32_t* tmp = cb + K * ld;
    for (int64_t g = g0; g < g1 && all_fast.load(std::memory_order_relaxed); ++g) {
      int64_t rem = g, oa = 0, ob = 0, oo = 0;
      for (int d = p.nbatch - 1; d >= 0; --d) {
        const int64_t idx = rem % p.batch[d];
        rem /= p.batch[d];
        oa += idx * p.a_bs[d];
        ob += idx * p.b_bs[d];
        oo += idx * p.o_bs[d];
      }
      const float* a = p.a + oa;
      const float* b = p.b + ob;
      float* o = p.out + oo;
      bool ok = false;
#if defined(MNQ_HAVE_X86_SIMD)
      const bool vec_a = wide && (p.a_sk == 1 || K == 1 || p.a_sm == 1 || M == 1);
      const bool vec_b = wide && (p.b_sn == 1 || N == 1 || p.b_sk == 1 || K == 1);
      if (vec_a && vec_b) {
        float l1_a = 0, max_a = 0, l1_b = 0, max_b = 0;
        float* ft = reinterpret_cast<float*>(tmp);
        ok = tile_codes_avx512(qa, a, M, K, p.a_sm, p.a_sk, fa, lda, ft, true, l1_a, max_a) &&
             tile_codes_avx512(qb, b, K, N, p.b_sk, p.b_sn, fb, ld, ft, false, l1_b, max_b) &&
             max_a < kHi && max_b < kHi && (max_b == 0 || (l1_a < kExact && double(l1_a) * max_b < kExact));
      } else
#endif
      {
        int bad = tile_codes(qa, a, M, K, p.a_sm, p.a_sk, ca, lda, tmp);
        bad |= tile_codes(qb, b, K, N, p.b_sk, p.b_sn, cb, ld, tmp);
        if (bad == 0) {
          for (int64_t k = 0; k < K; ++k) std::fill(cb + k * ld + N, cb + (k + 1) * ld, 0);
          int64_t l1_a = 0, max_a = 0, l1_b = 0, max_b = 0;
          to_float(ca, fa, M, K, lda, l1_a, max_a);
          to_float(cb, fb, K, ld, ld, l1_b, max_b);
          ok = max_a < kHi && max_b < kHi && (max_b == 0 || (l1_a < kExact && l1_a * max_b < kExact));
        }
      }
      if (!ok) {
        all_fast = false;
        return;
      }
#if defined(MNQ_HAVE_X86_SIMD)
      if (wide) {
        fast_tile_avx512(fa, lda, fb, M, K, N, ld, o, p.o_sm, p.s_out);
        continue;
      }
      if (avx2) {
        fast_tile_avx2(fa, lda, fb, M, K, N, ld, o, p.o_sm, p.s_out);
        continue;
      }
#endif
      fast_tile_scalar(fa, lda, fb, M, K, N, ld, o, p.o_sm, p.s_out, reinterpret_cast<float*>(tmp));
    }
  });
  return all_fast;
}

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
