// Fused CPU paths of the deploy engine (see int_fused.h). Compiled with -march=native -O3 (CMakeLists.txt) so the
// row loops of kernels/int_requant.h and kernels/int_gemm.h vectorize for the build machine.
#include "csrc/deploy/int_fused.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <vector>

#include "csrc/deploy/int_blocks.h"
#include "kernels/int_gemm.h"
#include "kernels/int_requant.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#include <immintrin.h>
#define MNQ_DEPLOY_AVX512 1
#endif

namespace mnq {
namespace deploy {
namespace {

constexpr int64_t kFast = int64_t(1) << 31;  // |input| bound of the 64-bit epilogue
std::atomic<bool> g_fused{true};

#ifdef MNQ_DEPLOY_AVX512
// Eight lanes of kernels/int_requant.h's epilogue before the clamp: v (int64 lanes, |v| < 2^31) times m
// (|m| < 2^31; vpmuldq of the low halves is exact), rounded half to even by k.
inline __m512i requant8(__m512i v, __m512i m, __m512i k) {
  const __m512i one = _mm512_set1_epi64(1);
  const __m512i p = _mm512_mul_epi32(v, m);
  const __m512i half_m1 = _mm512_sub_epi64(_mm512_sllv_epi64(one, _mm512_sub_epi64(k, one)), one);
  const __m512i odd = _mm512_and_si512(_mm512_srav_epi64(p, k), one);
  return _mm512_srav_epi64(_mm512_add_epi64(_mm512_add_epi64(p, half_m1), odd), k);
}

inline __m512i load8(const int8_t* p, __mmask8 mask) { return _mm512_cvtepi8_epi64(_mm_maskz_loadu_epi8(mask, p)); }
inline __m512i load8(const int32_t* p, __mmask8 mask) {
  return _mm512_cvtepi32_epi64(_mm256_maskz_loadu_epi32(mask, p));
}
inline __m512i load8(const int64_t* p, __mmask8 mask) { return _mm512_maskz_loadu_epi64(mask, p); }
inline void store8(int8_t* o, __m512i q, __mmask8 mask) { _mm512_mask_cvtepi64_storeu_epi8(o, mask, q); }
inline void store8(int32_t* o, __m512i q, __mmask8 mask) { _mm512_mask_cvtepi64_storeu_epi32(o, mask, q); }
inline __mmask8 tail_mask(int64_t left) { return left >= 8 ? __mmask8(0xff) : __mmask8((1u << left) - 1); }
#endif

template <typename TI, typename TO>
void requant_row_exact(const TI* in, const int32_t* bias, const kernels::RequantPairs& r, int64_t n, TO* out);

// The fused epilogue of one row (kernels/int_requant.h): 8 lanes at a time where the build has AVX-512 (the tail
// masked), else the scalar loop. int32 input without bias is always in the fast range; otherwise a chunk holding
// a value of 2^31 or more (I-ViT / I-BERT LayerNorm codes may reach 2^30 + β) takes the exact 128-bit kernel.
template <typename TI, typename TO>
void epilogue_row(const TI* in, const int32_t* bias, const kernels::RequantPairs& r, int64_t n, TO* out) {
  constexpr bool kAlwaysFast = sizeof(TI) <= 4;
#ifdef MNQ_DEPLOY_AVX512
  const __m512i lo = _mm512_set1_epi64(r.lo), hi = _mm512_set1_epi64(r.hi);
  const __m512i m0 = _mm512_set1_epi64(r.m[0]), k0 = _mm512_set1_epi64(r.k[0]);
  const __m512i limit = _mm512_set1_epi64(kFast - 1);
  for (int64_t j = 0; j < n; j += 8) {
    const __mmask8 mask = tail_mask(n - j);
    __m512i v = load8(in + j, mask);
    if (bias) v = _mm512_add_epi64(v, load8(bias + j, mask));
    if ((!kAlwaysFast || bias) && _mm512_cmpgt_epi64_mask(_mm512_abs_epi64(v), limit)) {
      requant_row_exact(in + j, bias ? bias + j : nullptr,
                        kernels::RequantPairs{r.m + (r.per_channel ? j : 0), r.k + (r.per_channel ? j : 0),
                                              r.per_channel, r.lo, r.hi},
                        std::min<int64_t>(8, n - j), out + j);
      continue;
    }
    const __m512i m = r.per_channel ? _mm512_maskz_loadu_epi64(mask, r.m + j) : m0;
    const __m512i k = r.per_channel ? _mm512_mask_loadu_epi64(k0, mask, r.k + j) : k0;
    store8(out + j, _mm512_max_epi64(_mm512_min_epi64(requant8(v, m, k), hi), lo), mask);
  }
#else
  for (int64_t j = 0; j < n; ++j) {
    const int64_t v = int64_t(in[j]) + (bias ? int64_t(bias[j]) : 0);
    const int64_t c = r.per_channel ? j : 0;
    const int64_t q = (kAlwaysFast && !bias) || (v < kFast && v > -kFast)
                          ? kernels::round_shr_fast(v * r.m[c], r.k[c])
                          : kernels::requant(v, kernels::Dyadic{r.m[c], int(r.k[c])});
    out[j] = static_cast<TO>(std::clamp(q, r.lo, r.hi));
  }
#endif
}

// clamp(requant(q) + requant(id)) of one row, both per tensor (the fused residual add), |q|, |id| < 2^31.
template <typename TI, typename TO>
void epilogue_add_row(const TI* q, const int32_t* id, const kernels::RequantPairs& r, int64_t m_id, int64_t k_id,
                      int64_t n, TO* out) {
#ifdef MNQ_DEPLOY_AVX512
  const __m512i lo = _mm512_set1_epi64(r.lo), hi = _mm512_set1_epi64(r.hi);
  const __m512i m = _mm512_set1_epi64(r.m[0]), k = _mm512_set1_epi64(r.k[0]);
  const __m512i mi = _mm512_set1_epi64(m_id), ki = _mm512_set1_epi64(k_id);
  for (int64_t j = 0; j < n; j += 8) {
    const __mmask8 mask = tail_mask(n - j);
    const __m512i sum = _mm512_add_epi64(requant8(load8(q + j, mask), m, k), requant8(load8(id + j, mask), mi, ki));
    store8(out + j, _mm512_max_epi64(_mm512_min_epi64(sum, hi), lo), mask);
  }
#else
  for (int64_t j = 0; j < n; ++j) {
    const int64_t v = kernels::round_shr_fast(int64_t(q[j]) * r.m[0], r.k[0]) +
                      kernels::round_shr_fast(int64_t(id[j]) * m_id, k_id);
    out[j] = static_cast<TO>(std::clamp(v, r.lo, r.hi));
  }
#endif
}

#ifdef MNQ_DEPLOY_AVX512
// c[i][0, Npad) = Σ_k a[i][k] · b[k][·] in int32 lanes (vpmulld): b int32 [K][ldb], Npad and ldb multiples of 16
// (zero-padded columns). Exact while every partial sum stays below 2^31 (the callers' bounds).
template <typename TA>
void gemm_i32(const TA* a, int64_t lda, const int32_t* b, int64_t ldb, int32_t* c, int64_t ldc, int64_t M,
              int64_t Npad, int64_t K) {
  for (int64_t i = 0; i < M; ++i) {
    const TA* ar = a + i * lda;
    int32_t* cr = c + i * ldc;
    int64_t n = 0;
    for (; n + 64 <= Npad; n += 64) {
      __m512i c0 = _mm512_setzero_si512(), c1 = c0, c2 = c0, c3 = c0;
      for (int64_t k = 0; k < K; ++k) {
        const __m512i av = _mm512_set1_epi32(int32_t(ar[k]));
        const int32_t* br = b + k * ldb + n;
        c0 = _mm512_add_epi32(c0, _mm512_mullo_epi32(av, _mm512_loadu_si512(br)));
        c1 = _mm512_add_epi32(c1, _mm512_mullo_epi32(av, _mm512_loadu_si512(br + 16)));
        c2 = _mm512_add_epi32(c2, _mm512_mullo_epi32(av, _mm512_loadu_si512(br + 32)));
        c3 = _mm512_add_epi32(c3, _mm512_mullo_epi32(av, _mm512_loadu_si512(br + 48)));
      }
      _mm512_storeu_si512(cr + n, c0);
      _mm512_storeu_si512(cr + n + 16, c1);
      _mm512_storeu_si512(cr + n + 32, c2);
      _mm512_storeu_si512(cr + n + 48, c3);
    }
    for (; n < Npad; n += 16) {
      __m512i c0 = _mm512_setzero_si512();
      for (int64_t k = 0; k < K; ++k) {
        c0 = _mm512_add_epi32(c0, _mm512_mullo_epi32(_mm512_set1_epi32(int32_t(ar[k])),
                                                      _mm512_loadu_si512(b + k * ldb + n)));
      }
      _mm512_storeu_si512(cr + n, c0);
    }
  }
}
#endif

kernels::RequantPairs pairs_of(const Requant& r) {
  return {r.m.data_ptr<int64_t>(), r.k.data_ptr<int64_t>(), r.m.numel() > 1, -(int64_t(1) << (r.bits - 1)),
          (int64_t(1) << (r.bits - 1)) - 1};
}

// The exact 128-bit requant (kernels/common.h) of one row: the fallback for values beyond 2^31.
template <typename TI, typename TO>
void requant_row_exact(const TI* in, const int32_t* bias, const kernels::RequantPairs& r, int64_t n, TO* out) {
  for (int64_t j = 0; j < n; ++j) {
    const int64_t c = r.per_channel ? j : 0;
    const int64_t v = int64_t(in[j]) + (bias ? int64_t(bias[j]) : 0);
    const int64_t q = kernels::requant(v, kernels::Dyadic{r.m[c], int(r.k[c])});
    out[j] = static_cast<TO>(std::clamp(q, r.lo, r.hi));
  }
}

// Rows of `in` (n wide) → rows of `out`, in parallel.
template <typename TI, typename TO>
void requant_rows(const TI* in, const int32_t* bias, const kernels::RequantPairs& r, int64_t rows, int64_t n,
                  TO* out) {
  at::parallel_for(0, rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(n, 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i) epilogue_row(in + i * n, bias, r, n, out + i * n);
  });
}

}  // namespace

void set_fused(bool on) { g_fused = on; }
bool fused() { return g_fused; }

bool fusable(const Requant& r) {
  return g_fused && r.m.defined() && r.m.is_cpu() && r.k.is_cpu() && r.bits <= 32 &&
         kernels::fast_requant_ok(r.m.data_ptr<int64_t>(), r.k.data_ptr<int64_t>(), r.m.numel());
}

at::Tensor requant_fused(const at::Tensor& q_in, const at::Tensor& bias, const Requant& r, at::ScalarType out_type) {
  const at::Tensor q = q_in.contiguous();
  const int64_t n = q.dim() == 0 ? 1 : q.size(-1), rows = n == 0 ? 0 : q.numel() / n;
  at::Tensor out = at::empty(q.sizes(), q.options().dtype(out_type));
  const kernels::RequantPairs p = pairs_of(r);
  const int32_t* b = bias.defined() ? bias.data_ptr<int32_t>() : nullptr;
  auto run = [&](auto* in) {
    if (out_type == at::kChar) {
      requant_rows(in, b, p, rows, n, out.data_ptr<int8_t>());
    } else {
      requant_rows(in, b, p, rows, n, out.data_ptr<int32_t>());
    }
  };
  TORCH_CHECK(out_type == at::kChar || out_type == at::kInt, "requant_fused: int8 or int32 output");
  TORCH_CHECK(out_type == at::kInt || r.bits <= 8, "requant_fused: int8 output of ", r.bits, "-bit codes");
  if (q.scalar_type() == at::kInt) {
    run(q.data_ptr<int32_t>());
  } else {
    TORCH_CHECK(q.scalar_type() == at::kLong, "requant_fused: int32 or int64 input, got ", q.scalar_type());
    run(q.data_ptr<int64_t>());
  }
  return out;
}

bool requant_add_fusable(const at::Tensor& q, const at::Tensor& id, const Requant& r, const Requant& rid) {
  return q.is_cpu() && (q.scalar_type() == at::kChar || q.scalar_type() == at::kInt) && id.scalar_type() == at::kInt &&
         q.sizes() == id.sizes() && fusable(r) && fusable(rid) && r.m.numel() == 1 && rid.m.numel() == 1;
}

at::Tensor requant_add_fused(const at::Tensor& q_in, const at::Tensor& id_in, const Requant& r, const Requant& rid) {
  const at::Tensor q = q_in.contiguous(), id = id_in.contiguous();
  at::Tensor out = at::empty(q.sizes(), q.options().dtype(at::kInt));
  const kernels::RequantPairs p = pairs_of(r);
  const int64_t m_id = rid.m.data_ptr<int64_t>()[0], k_id = rid.k.data_ptr<int64_t>()[0], n = q.numel();
  const int32_t* ip = id.data_ptr<int32_t>();
  int32_t* op = out.data_ptr<int32_t>();
  constexpr int64_t kChunk = 16384;
  at::parallel_for(0, (n + kChunk - 1) / kChunk, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t j = c * kChunk, len = std::min(kChunk, n - j);
      if (q.scalar_type() == at::kChar) {
        epilogue_add_row(q.data_ptr<int8_t>() + j, ip + j, p, m_id, k_id, len, op + j);
      } else {
        epilogue_add_row(q.data_ptr<int32_t>() + j, ip + j, p, m_id, k_id, len, op + j);
      }
    }
  });
  return out;
}

at::Tensor linear_act(const IntLinear& l, const at::Tensor& q, const Requant& act, at::ScalarType out_type,
                      Profile* prof) {
  if (!g_fused || !q.is_cpu() || l.wide || l.in_bits > 8 || !fusable(act)) {
    at::Tensor h;
    {
      ProfileScope scope(prof, "requant");
      h = act(l(q, prof));
    }
    return out_type == at::kChar ? h.to(at::kChar) : h;
  }
  ProfileScope scope(prof, "linear");
  const int64_t K = l.weight.size(1), N = l.weight.size(0);
  std::vector<int64_t> out_shape(q.sizes().begin(), q.sizes().end());
  out_shape.back() = N;
  const at::Tensor a = (q.scalar_type() == at::kChar ? q : q.to(at::kChar)).reshape({-1, K});
  const int64_t M = a.size(0);
  at::Tensor out = at::empty({M, N}, q.options().dtype(out_type));
  const at::Tensor wt = l.weight.t();
  const kernels::RequantPairs p = pairs_of(act);
  const int32_t* bias = l.bias.defined() ? l.bias.data_ptr<int32_t>() : nullptr;
  // Blocks of rows whose int32 accumulators fit in L2 (≈ 256 KiB); one GEMM call per block.
  const int64_t block = std::clamp<int64_t>((int64_t(1) << 16) / std::max<int64_t>(N, 1), 16, 4096);
  at::parallel_for(0, (M + block - 1) / block, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t bi = b0; bi < b1; ++bi) {
      const int64_t r0 = bi * block, r1 = std::min(M, r0 + block);
      at::Tensor acc = at::empty({r1 - r0, N}, a.options().dtype(at::kInt));
      at::_int_mm_out(acc, a.slice(0, r0, r1), wt);
      const int32_t* ap = acc.data_ptr<int32_t>();
      for (int64_t i = 0; i < r1 - r0; ++i) {
        if (out_type == at::kChar) {
          epilogue_row(ap + i * N, bias, p, N, out.data_ptr<int8_t>() + (r0 + i) * N);
        } else {
          epilogue_row(ap + i * N, bias, p, N, out.data_ptr<int32_t>() + (r0 + i) * N);
        }
      }
    }
  });
  return out.view(out_shape);
}

bool attention_core(const IntAttention& attn, const at::Tensor& qkv, int64_t H, at::Tensor& out, Profile* prof) {
  const int64_t B = qkv.size(0), N = qkv.size(1), C = qkv.size(2) / 3, hd = C / H;
  const IntRange av_range = attn.softmax.out_range();
  const double a_max = double(std::max(-av_range.lo, av_range.hi));
  if (!g_fused || !qkv.is_cpu() || qkv.scalar_type() != at::kChar || !qkv.is_contiguous() || attn.av_act.bits > 8 ||
      !fusable(attn.scores_act) || !fusable(attn.av_act) || (attn.bias_codes.defined() && !fusable(attn.bias_act)) ||
      double(N) * a_max * 128.0 >= 2147483648.0 || attn.scores_act.m.numel() != 1 || attn.av_act.m.numel() != 1 ||
      (attn.bias_codes.defined() && attn.bias_act.m.numel() != 1)) {
    return false;
  }
  const int8_t* base = qkv.data_ptr<int8_t>();
  const int64_t ld = 3 * C;  // row stride of the qkv codes
  const kernels::RequantPairs sp = pairs_of(attn.scores_act);
  const int64_t m_b = attn.bias_codes.defined() ? attn.bias_act.m.item<int64_t>() : 0;
  const int64_t k_b = attn.bias_codes.defined() ? attn.bias_act.k.item<int64_t>() : 0;
  const int32_t* bias = attn.bias_codes.defined() ? attn.bias_codes.data_ptr<int32_t>() : nullptr;  // [1, H, N, N]
  const int32_t* mask = attn.mask_codes.defined() ? attn.mask_codes.data_ptr<int32_t>() : nullptr;  // [nW, N, N]
  const int64_t nw = attn.mask_codes.defined() ? attn.mask_codes.size(0) : 1;
  at::Tensor scores = at::empty({B, H, N, N}, qkv.options().dtype(at::kInt));
  int32_t* sc = scores.data_ptr<int32_t>();
  {
    ProfileScope scope(prof, "attn_matmul");
    const int64_t Np = (N + 15) / 16 * 16;  // kᵀ and the accumulators padded to 16-lane blocks
    at::parallel_for(0, B * H, 1, [&](int64_t g0, int64_t g1) {
      std::vector<int32_t> kt(size_t(hd * Np), 0);
      std::vector<int32_t> acc(size_t(N * Np));
      for (int64_t g = g0; g < g1; ++g) {
        const int64_t b = g / H, h = g % H;
        const int8_t* q = base + b * N * ld + h * hd;
        const int8_t* k = q + C;
        for (int64_t j = 0; j < N; ++j) {
          for (int64_t d = 0; d < hd; ++d) kt[size_t(d * Np + j)] = k[j * ld + d];  // kᵀ [hd, Np]
        }
#ifdef MNQ_DEPLOY_AVX512
        gemm_i32(q, ld, kt.data(), Np, acc.data(), Np, N, Np, hd);
#else
        kernels::int_gemm_strided(q, ld, kt.data(), Np, acc.data(), Np, N, N, hd);
#endif
        int32_t* s = sc + g * N * N;
        for (int64_t i = 0; i < N; ++i) {
          if (bias) {
            epilogue_add_row(acc.data() + i * Np, bias + (h * N + i) * N, sp, m_b, k_b, N, s + i * N);
          } else {
            epilogue_row(acc.data() + i * Np, nullptr, sp, N, s + i * N);
          }
          if (mask) {
            const int32_t* mr = mask + ((b % nw) * N + i) * N;
            for (int64_t j = 0; j < N; ++j) s[i * N + j] += mr[j];
          }
        }
      }
    });
  }
  const at::Tensor a = attn.softmax(scores, prof).contiguous();  // int32, [B, H, N, N]
  TORCH_CHECK(a.scalar_type() == at::kInt, "attention_core: the softmax gave ", a.scalar_type());
  const int32_t* ap = a.data_ptr<int32_t>();
  out = at::empty({B, N, C}, qkv.options().dtype(at::kChar));
  int8_t* op = out.data_ptr<int8_t>();
  const kernels::RequantPairs vp = pairs_of(attn.av_act);
  ProfileScope scope(prof, "attn_matmul");
  const int64_t hp = (hd + 15) / 16 * 16;
  at::parallel_for(0, B * H, 1, [&](int64_t g0, int64_t g1) {
    std::vector<int32_t> v32(size_t(N * hp), 0);
    std::vector<int32_t> acc(size_t(N * hp));
    for (int64_t g = g0; g < g1; ++g) {
      const int64_t b = g / H, h = g % H;
      const int8_t* v = base + b * N * ld + 2 * C + h * hd;
      for (int64_t j = 0; j < N; ++j) {
        for (int64_t d = 0; d < hd; ++d) v32[size_t(j * hp + d)] = v[j * ld + d];  // v [N, hp] as int32
      }
#ifdef MNQ_DEPLOY_AVX512
      gemm_i32(ap + g * N * N, N, v32.data(), hp, acc.data(), hp, N, hp, N);
#else
      kernels::int_gemm_strided(ap + g * N * N, N, v32.data(), hp, acc.data(), hp, N, hd, N);
#endif
      for (int64_t i = 0; i < N; ++i) {
        epilogue_row(acc.data() + i * hp, nullptr, vp, hd, op + (b * N + i) * C + h * hd);
      }
    }
  });
  return true;
}

}  // namespace deploy
}  // namespace mnq
