// Packed int8 dot products of the deploy engine's attention core (csrc/deploy/int_fused.cpp): the scores q·kᵀ of
// int8 codes and the attention-weighted values a·v (softmax outputs, up to 24-bit non-negative integers, times
// int8 codes), exact in int32.
//
// Where the build has AVX-512 VNNI, `vpdpbusd` multiplies 4 unsigned bytes by 4 signed bytes and adds the four
// products to an int32 lane (no saturation: each product is within ±2^15 and the sum is taken in 32 bits), 64
// multiply-adds per instruction where the int32-lane loop (`vpmulld`) did 16 in two µops:
//   q·kᵀ: q ∈ [−128, 127] becomes the byte q + 128 (q XOR 0x80), so Σ_d (q_d + 128)·k_d = q·k + 128·Σ_d k_d and
//         the correction 128·Σ_d k_d per key is subtracted once (the accumulators start at −128·Σ_d k_d).
//   a·v:  a ∈ [0, 2^24) is split into unsigned byte planes a = Σ_p 256^p·a_p, a_p ∈ [0, 255]; the planes run from
//         the highest down, acc ← acc·256 + Σ_j a_p[j]·v[j], so the accumulator ends at Σ_j a[j]·v[j]. The int32
//         lanes wrap (mod 2^32) in between but the final value is exact whenever it lies in int32, which the
//         caller's bound K·max(a)·128 < 2^31 guarantees (|Σ a·v| ≤ K·max(a)·128). Planes: 1 for a < 2^8, 2 below
//         2^16 (I-ViT's 16-bit softmax), 3 below 2^24 (I-BERT's one-hot 2^16), chosen from the tile's maximum.
// Elsewhere (DotKernel::portable, or no VNNI) the same sums run as int32 loops: exact under the same bound.
// tests/cpp/deploy/test_deploy_dot.cpp checks both kernels against an int64 reference on odd shapes and every tail.
#pragma once

#include <cstdint>
#include <vector>

namespace mnq {
namespace deploy {

// A thread's packed operands, reused from tile to tile (one per at::parallel_for chunk).
struct DotScratch {
  std::vector<uint8_t> a;
  std::vector<int8_t> b;
  std::vector<int32_t> bsum;
};

enum class DotKernel { best, portable };

// True when the build has the VNNI kernels (DotKernel::best then uses them).
bool dot_has_vnni();

// c[i·ldc + j] = Σ_{d<K} a[i·lda + d]·b[j·ldb + d] for i < M, j < N (a·bᵀ of int8 codes), ldc ≥ N. Exact for
// K < 2^17 (|Σ| ≤ K·2^14 < 2^31).
void dot_abt_s8(const int8_t* a, int64_t lda, const int8_t* b, int64_t ldb, int64_t M, int64_t N, int64_t K,
                int32_t* c, int64_t ldc, DotScratch& s, DotKernel kernel = DotKernel::best);

// c[i·ldc + n] = Σ_{j<K} a[i·lda + j]·b[j·ldb + n] for i < M, n < N: a int32, b int8, ldc ≥ N. Exact when every
// |c| < 2^31 and every partial sum of the portable loop too (both hold when K·max|a|·128 < 2^31). The VNNI
// kernel takes tiles with 0 ≤ a < 2^24; other tiles run the portable loop.
void dot_ab_s8(const int32_t* a, int64_t lda, const int8_t* b, int64_t ldb, int64_t M, int64_t N, int64_t K,
               int32_t* c, int64_t ldc, DotScratch& s, DotKernel kernel = DotKernel::best);

}  // namespace deploy
}  // namespace mnq
