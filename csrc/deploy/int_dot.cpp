// Packed int8 dot products (see int_dot.h). Compiled with -march=native -O3 (CMakeLists.txt): the VNNI kernels
// exist where the build machine has AVX-512 VNNI, the portable loops everywhere.
#include "csrc/deploy/int_dot.h"

#include <algorithm>
#include <cstring>

#include "kernels/int_gemm.h"

#if defined(__AVX512VNNI__) && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#include <immintrin.h>
#define MNQ_DOT_VNNI 1
#endif

namespace mnq {
namespace deploy {
namespace {

int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

void abt_portable(const int8_t* a, int64_t lda, const int8_t* b, int64_t ldb, int64_t M, int64_t N, int64_t K,
                  int32_t* c, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      int32_t s = 0;  // |s| ≤ K·2^14 < 2^31
      for (int64_t d = 0; d < K; ++d) s += int32_t(a[i * lda + d]) * int32_t(b[j * ldb + d]);
      c[i * ldc + j] = s;
    }
  }
}

#ifdef MNQ_DOT_VNNI
inline __mmask16 lanes(int64_t left) { return left >= 16 ? __mmask16(0xffff) : __mmask16((1u << left) - 1); }

inline int32_t quad(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// The register tile: R rows of the packed unsigned operand (row stride `lda` bytes, `planes` byte planes
// `plane_stride` apart, highest plane first: acc ← acc·256 + plane) times CB blocks of 16 columns of the packed
// signed operand (64 bytes — 16 columns × one quad of the reduction — per (block, quad), blocks `block_stride`
// and quads `quad_stride` bytes apart), over kq quads. init: CB start vectors or null (zero). Stores rows < rows
// and columns < cols (masked).
template <int R, int CB>
void tile(const uint8_t* a, int64_t lda, int64_t plane_stride, int planes, const int8_t* b, int64_t block_stride,
          int64_t quad_stride, int64_t kq, const int32_t* init, int32_t* c, int64_t ldc, int64_t rows, int64_t cols) {
  __m512i acc[R][CB];
  for (int c_ = 0; c_ < CB; ++c_) {
    const __m512i v = init ? _mm512_loadu_si512(init + 16 * c_) : _mm512_setzero_si512();
    for (int r = 0; r < R; ++r) acc[r][c_] = v;
  }
  for (int p = planes - 1; p >= 0; --p) {
    if (p != planes - 1) {
      for (int r = 0; r < R; ++r) {
        for (int c_ = 0; c_ < CB; ++c_) acc[r][c_] = _mm512_slli_epi32(acc[r][c_], 8);
      }
    }
    const uint8_t* ap = a + p * plane_stride;
    for (int64_t q = 0; q < kq; ++q) {
      __m512i bv[CB];
      for (int c_ = 0; c_ < CB; ++c_) bv[c_] = _mm512_loadu_si512(b + c_ * block_stride + q * quad_stride);
      for (int r = 0; r < R; ++r) {
        const __m512i av = _mm512_set1_epi32(quad(ap + r * lda + 4 * q));
        for (int c_ = 0; c_ < CB; ++c_) acc[r][c_] = _mm512_dpbusd_epi32(acc[r][c_], av, bv[c_]);
      }
    }
  }
  for (int r = 0; r < R && r < rows; ++r) {
    for (int c_ = 0; c_ < CB; ++c_) {
      const __mmask16 m = lanes(cols - 16 * c_);
      if (m) _mm512_mask_storeu_epi32(c + r * ldc + 16 * c_, m, acc[r][c_]);
    }
  }
}

// Every register tile of an Mp × (NB·16) product (Mp a multiple of R): blocks of up to 4 column blocks.
template <int R>
void tiles(const uint8_t* a, int64_t lda, int64_t plane_stride, int planes, const int8_t* b, int64_t block_stride,
           int64_t quad_stride, int64_t kq, const int32_t* init, int32_t* c, int64_t ldc, int64_t M, int64_t N) {
  const int64_t NB = (N + 15) / 16;
  for (int64_t i = 0; i < M; i += R) {
    for (int64_t jb = 0; jb < NB; jb += 4) {
      const int64_t cb = std::min<int64_t>(4, NB - jb);
      const uint8_t* ai = a + i * lda;
      const int8_t* bj = b + jb * block_stride;
      const int32_t* ij = init ? init + 16 * jb : nullptr;
      int32_t* cij = c + i * ldc + 16 * jb;
      const int64_t rows = M - i, cols = N - 16 * jb;
      switch (cb) {
        case 1: tile<R, 1>(ai, lda, plane_stride, planes, bj, block_stride, quad_stride, kq, ij, cij, ldc, rows, cols); break;
        case 2: tile<R, 2>(ai, lda, plane_stride, planes, bj, block_stride, quad_stride, kq, ij, cij, ldc, rows, cols); break;
        case 3: tile<R, 3>(ai, lda, plane_stride, planes, bj, block_stride, quad_stride, kq, ij, cij, ldc, rows, cols); break;
        default: tile<R, 4>(ai, lda, plane_stride, planes, bj, block_stride, quad_stride, kq, ij, cij, ldc, rows, cols);
      }
    }
  }
}

// One column block (N ≤ 16, a head dimension of 16): 8 rows per tile keep 8 independent dpbusd chains in flight.
void run_tiles(const uint8_t* a, int64_t lda, int64_t plane_stride, int planes, const int8_t* b, int64_t block_stride,
               int64_t quad_stride, int64_t kq, const int32_t* init, int32_t* c, int64_t ldc, int64_t M, int64_t N) {
  if (N <= 16) {
    tiles<8>(a, lda, plane_stride, planes, b, block_stride, quad_stride, kq, init, c, ldc, M, N);
  } else {
    tiles<4>(a, lda, plane_stride, planes, b, block_stride, quad_stride, kq, init, c, ldc, M, N);
  }
}

// Σ_d b[j][d] of the 16 rows of one packed block (kq quads): vpdpbusd of the bytes 1 with the block.
inline __m512i block_sums(const int8_t* block, int64_t kq) {
  const __m512i ones = _mm512_set1_epi8(1);
  __m512i sum = _mm512_setzero_si512();
  for (int64_t q = 0; q < kq; ++q) sum = _mm512_dpbusd_epi32(sum, ones, _mm512_loadu_si512(block + 64 * q));
  return sum;
}

void abt_vnni(const int8_t* a, int64_t lda, const int8_t* b, int64_t ldb, int64_t M, int64_t N, int64_t K,
              int32_t* c, int64_t ldc, DotScratch& s) {
  const int64_t Kp = round_up(K, 4), kq = Kp / 4, Mp = round_up(M, 8), NB = (N + 15) / 16;
  // a + 128 (a XOR 0x80) as bytes, rows padded to Mp and the reduction to Kp (padding: the byte 128, times b's
  // zero padding)
  s.a.assign(size_t(Mp * Kp), 128);
  const __m512i flip = _mm512_set1_epi8(char(0x80));
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t d = 0; d < K; d += 64) {
      const __mmask64 m = K - d >= 64 ? ~__mmask64(0) : (__mmask64(1) << (K - d)) - 1;
      _mm512_mask_storeu_epi8(s.a.data() + i * Kp + d, m, _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, a + i * lda + d), flip));
    }
  }
  // b as [block of 16 rows][quad][16 rows][4 bytes] (one dword per row and quad), zero-padded
  s.b.assign(size_t(NB * kq * 64), 0);
  for (int64_t j = 0; j < N; ++j) {
    int8_t* bj = s.b.data() + (j / 16) * kq * 64 + (j % 16) * 4;
    const int8_t* src = b + j * ldb;
    for (int64_t q = 0; q < kq; ++q) std::memcpy(bj + 64 * q, src + 4 * q, size_t(std::min<int64_t>(4, K - 4 * q)));
  }
  // the accumulators start at −128·Σ_d b[j][d] (the correction of a + 128)
  s.bsum.resize(size_t(NB * 16));
  for (int64_t jb = 0; jb < NB; ++jb) {
    const __m512i corr = _mm512_slli_epi32(block_sums(s.b.data() + jb * kq * 64, kq), 7);
    _mm512_storeu_si512(s.bsum.data() + 16 * jb, _mm512_sub_epi32(_mm512_setzero_si512(), corr));
  }
  run_tiles(s.a.data(), Kp, 0, 1, s.b.data(), kq * 64, 64, kq, s.bsum.data(), c, ldc, M, N);
}

// Rows j .. j+3 (zero past K), columns n .. n+15 (zero past N) of b → 16 columns × 4 bytes: the byte
// interleave of four rows (unpack 8-bit, then 16-bit).
inline void pack_quad(const int8_t* b, int64_t ldb, int64_t j, int64_t K, int64_t n, int64_t N, int8_t* out) {
  const __mmask16 m = lanes(N - n);
  __m128i r[4];
  for (int t = 0; t < 4; ++t) r[t] = j + t < K ? _mm_maskz_loadu_epi8(m, b + (j + t) * ldb + n) : _mm_setzero_si128();
  const __m128i t0 = _mm_unpacklo_epi8(r[0], r[1]), t1 = _mm_unpackhi_epi8(r[0], r[1]);
  const __m128i t2 = _mm_unpacklo_epi8(r[2], r[3]), t3 = _mm_unpackhi_epi8(r[2], r[3]);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm_unpacklo_epi16(t0, t2));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 16), _mm_unpackhi_epi16(t0, t2));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 32), _mm_unpacklo_epi16(t1, t3));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 48), _mm_unpackhi_epi16(t1, t3));
}

// false (nothing written) when a tile value lies outside [0, 2^24).
bool ab_vnni(const int32_t* a, int64_t lda, const int8_t* b, int64_t ldb, int64_t M, int64_t N, int64_t K,
             int32_t* c, int64_t ldc, DotScratch& s) {
  const int64_t Kp = round_up(K, 4), kq = Kp / 4, Mp = round_up(M, 8), NB = (N + 15) / 16;
  // the byte planes of a, [plane][Mp][Kp], zero-padded: planes 0 and 1 written with the tile's min / max scan,
  // plane 2 only when a value reaches 2^16
  s.a.assign(size_t(3 * Mp * Kp), 0);
  __m512i lo = _mm512_setzero_si512(), hi = lo;
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < K; j += 16) {
      const __mmask16 m = lanes(K - j);
      const __m512i v = _mm512_maskz_loadu_epi32(m, a + i * lda + j);
      lo = _mm512_min_epi32(lo, v);
      hi = _mm512_max_epi32(hi, v);
      uint8_t* out = s.a.data() + i * Kp + j;
      _mm_mask_storeu_epi8(out, m, _mm512_cvtepi32_epi8(v));  // the low byte of each lane
      _mm_mask_storeu_epi8(out + Mp * Kp, m, _mm512_cvtepi32_epi8(_mm512_srli_epi32(v, 8)));
    }
  }
  const int32_t a_lo = _mm512_reduce_min_epi32(lo), a_hi = _mm512_reduce_max_epi32(hi);
  if (a_lo < 0 || a_hi >= (1 << 24)) return false;
  const int planes = a_hi < (1 << 8) ? 1 : (a_hi < (1 << 16) ? 2 : 3);
  if (planes == 3) {
    for (int64_t i = 0; i < M; ++i) {
      for (int64_t j = 0; j < K; j += 16) {
        const __mmask16 m = lanes(K - j);
        const __m512i v = _mm512_srli_epi32(_mm512_maskz_loadu_epi32(m, a + i * lda + j), 16);
        _mm_mask_storeu_epi8(s.a.data() + 2 * Mp * Kp + i * Kp + j, m, _mm512_cvtepi32_epi8(v));
      }
    }
  }
  // b as [quad of rows][block of 16 columns][16 columns][4 bytes], zero-padded
  s.b.resize(size_t(kq * NB * 64));
  for (int64_t q = 0; q < kq; ++q) {
    for (int64_t nb = 0; nb < NB; ++nb) pack_quad(b, ldb, 4 * q, K, 16 * nb, N, s.b.data() + (q * NB + nb) * 64);
  }
  run_tiles(s.a.data(), Kp, Mp * Kp, planes, s.b.data(), 64, NB * 64, kq, nullptr, c, ldc, M, N);
  return true;
}
#endif

}  // namespace

bool dot_has_vnni() {
#ifdef MNQ_DOT_VNNI
  return true;
#else
  return false;
#endif
}

void dot_abt_s8(const int8_t* a, int64_t lda, const int8_t* b, int64_t ldb, int64_t M, int64_t N, int64_t K,
                int32_t* c, int64_t ldc, DotScratch& s, DotKernel kernel) {
#ifdef MNQ_DOT_VNNI
  if (kernel == DotKernel::best) return abt_vnni(a, lda, b, ldb, M, N, K, c, ldc, s);
#endif
  (void)s;
  (void)kernel;
  abt_portable(a, lda, b, ldb, M, N, K, c, ldc);
}

void dot_ab_s8(const int32_t* a, int64_t lda, const int8_t* b, int64_t ldb, int64_t M, int64_t N, int64_t K,
               int32_t* c, int64_t ldc, DotScratch& s, DotKernel kernel) {
#ifdef MNQ_DOT_VNNI
  if (kernel == DotKernel::best && ab_vnni(a, lda, b, ldb, M, N, K, c, ldc, s)) return;
#endif
  (void)s;
  (void)kernel;
  kernels::int_gemm_strided(a, lda, b, ldb, c, ldc, M, N, K);
}

}  // namespace deploy
}  // namespace mnq
