// Exact integer matrix product for the deploy engine's batched attention products (csrc/deploy/int_matmul.cpp):
//   C[m][n] = Σ_k A[m][k] · B[k][n],  A int8 or int32 codes, B int8, accumulated in TC (int32 or int64).
// The caller picks TC from the bound K·max|A|·128: int32 when it is below 2^31 (q@kᵀ of 8-bit codes, and the
// softmax's 16-bit outputs @ v for up to 2^31 / 2^23 = 256 tokens), else int64 — no overflow, exact.
// The batched attention matrices are small (tokens × head dim), so one call per (batch, head) to a library
// GEMM costs more in call overhead than the arithmetic; this loop streams rows of B with the k loop outside
// and a contiguous n loop inside, which compilers vectorize (int32 multiply-add lanes).
#pragma once

#include <cstdint>

namespace mnq {
namespace kernels {

// a: [M, K] with row stride lda, b: [K, N] (int8, or those codes widened) with row stride ldb, c: [M, N] with row stride ldc (unit column
// strides). The fused attention (csrc/deploy/int_fused.cpp) reads q / v rows inside the qkv codes this way.
template <typename TA, typename TB, typename TC>
inline void int_gemm_strided(const TA* __restrict a, int64_t lda, const TB* __restrict b, int64_t ldb,
                             TC* __restrict c, int64_t ldc, int64_t M, int64_t N, int64_t K) {
  for (int64_t m = 0; m < M; ++m) {
    TC* __restrict cr = c + m * ldc;
    for (int64_t n = 0; n < N; ++n) cr[n] = 0;
    const TA* ar = a + m * lda;
    for (int64_t k = 0; k < K; ++k) {
      const TC av = static_cast<TC>(ar[k]);
      const TB* __restrict br = b + k * ldb;
      for (int64_t n = 0; n < N; ++n) cr[n] += av * static_cast<TC>(br[n]);
    }
  }
}

// a: [M, K], b: [K, N], c: [M, N], all contiguous row-major.
template <typename TA, typename TC>
inline void int_gemm(const TA* __restrict a, const int8_t* __restrict b, TC* __restrict c, int64_t M, int64_t N,
                     int64_t K) {
  int_gemm_strided(a, K, b, N, c, N, M, N, K);
}

}  // namespace kernels
}  // namespace mnq
