// The attention core's packed dot products (csrc/deploy/int_dot.h) against an int64 reference, element by element:
// the VNNI kernels (where the build has them) and the portable loops, on odd shapes — rows, columns and reductions
// not multiples of 4, 8 or 16, every column tail 1..17 — strided operands inside a wider row (as q, k, v sit in
// the qkv codes), the extreme codes ±128/127, softmax weights of 1, 2 and 3 byte planes (I-BERT's 2^16), values
// beyond the VNNI range (the portable fallback), and outputs that must not be written past the tile.
#include <catch2/catch.hpp>

#include <cstdint>
#include <random>
#include <vector>

#include "csrc/deploy/int_dot.h"

using namespace mnq::deploy;

namespace {

struct Shape {
  int64_t M, N, K;
};

const std::vector<Shape> kShapes = {{1, 1, 1},   {3, 5, 7},    {8, 16, 16},  {50, 50, 16}, {49, 49, 16},
                                    {9, 17, 15}, {13, 33, 64}, {4, 65, 3},   {197, 20, 64}, {17, 1, 33},
                                    {7, 48, 4},  {2, 3, 129}};

std::vector<int8_t> codes(std::mt19937& g, int64_t n, bool extreme, int b_max = 127) {
  std::uniform_int_distribution<int> d(-b_max - 1, b_max), e(0, 1);
  std::vector<int8_t> v(static_cast<size_t>(n));
  for (auto& x : v) x = int8_t(extreme ? (e(g) ? 127 : -128) : d(g));
  return v;
}

}  // namespace

TEST_CASE("packed q·kᵀ equals the int64 reference", "[deploy][dot]") {
  std::mt19937 g(7);
  for (const bool extreme : {false, true}) {
    for (const Shape& s : kShapes) {
      const int64_t lda = s.K + 5, ldb = s.K + 3, ldc = s.N + 2;  // strided rows, as inside the qkv codes
      const auto a = codes(g, s.M * lda, extreme), b = codes(g, s.N * ldb, extreme);
      for (const DotKernel kernel : {DotKernel::best, DotKernel::portable}) {
        std::vector<int32_t> c(size_t(s.M * ldc), -7);
        DotScratch scratch;
        dot_abt_s8(a.data(), lda, b.data(), ldb, s.M, s.N, s.K, c.data(), ldc, scratch, kernel);
        for (int64_t i = 0; i < s.M; ++i) {
          for (int64_t j = 0; j < ldc; ++j) {
            int64_t ref = -7;  // columns past N untouched
            if (j < s.N) {
              ref = 0;
              for (int64_t d = 0; d < s.K; ++d) ref += int64_t(a[size_t(i * lda + d)]) * b[size_t(j * ldb + d)];
            }
            INFO("M " << s.M << " N " << s.N << " K " << s.K << " i " << i << " j " << j << " portable "
                      << (kernel == DotKernel::portable));
            REQUIRE(c[size_t(i * ldc + j)] == ref);
          }
        }
      }
    }
  }
}

TEST_CASE("packed a·v equals the int64 reference for every byte-plane count", "[deploy][dot]") {
  std::mt19937 g(11);
  // a_hi: the largest softmax weight (inclusive): one plane, two (I-ViT 2^15 − 1), three (I-BERT 2^16), 2^24 − 1,
  // and beyond the VNNI range (2^24, and negative values: the portable loop)
  for (const int32_t a_hi : {255, 32767, 65536, (1 << 24) - 1, 1 << 24}) {
    for (const bool negative : {false, true}) {
      for (const Shape& s : kShapes) {
        const int64_t lda = s.K + 1, ldb = s.N + 9, ldc = s.N + 1;
        // weights beyond 2^16 against codes in [−2, 1], so that the sums stay in int32 (the caller's bound)
        const int b_max = a_hi > 65536 ? 1 : 127;
        if (double(s.K) * a_hi * (b_max + 1) >= 2147483648.0) continue;
        std::uniform_int_distribution<int32_t> da(negative ? -a_hi : 0, a_hi);
        std::vector<int32_t> a(size_t(s.M * lda));
        for (auto& x : a) x = da(g);
        a[0] = a_hi;  // the tile's maximum decides the plane count
        const auto b = codes(g, s.K * ldb, false, b_max);
        for (const DotKernel kernel : {DotKernel::best, DotKernel::portable}) {
          std::vector<int32_t> c(size_t(s.M * ldc), -7);
          DotScratch scratch;
          dot_ab_s8(a.data(), lda, b.data(), ldb, s.M, s.N, s.K, c.data(), ldc, scratch, kernel);
          for (int64_t i = 0; i < s.M; ++i) {
            for (int64_t n = 0; n < ldc; ++n) {
              int64_t ref = -7;
              if (n < s.N) {
                ref = 0;
                for (int64_t j = 0; j < s.K; ++j) ref += int64_t(a[size_t(i * lda + j)]) * b[size_t(j * ldb + n)];
              }
              INFO("M " << s.M << " N " << s.N << " K " << s.K << " a_hi " << a_hi << " i " << i << " n " << n);
              REQUIRE(c[size_t(i * ldc + n)] == ref);
            }
          }
        }
      }
    }
  }
}
