// The float64 form of the I-LayerNorm / I-BERT LayerNorm output pass (csrc/cpu/layernorm_simd.h: ln_bias_magic,
// ln_out_row with LnRowOut::bias_m) against the definition fl32(fl64(ln_affine_out(q − mean, f, bias_int[c]))·S[c]),
// element by element: every row length 1..40 and 197 (the 8-lane tails), odd and even f up to 2^31 (I-BERT's
// std = 1), |y| up to 2^22, bias_int at ±2^50 (the bound) and S_out[c] that put values on float32 ties; and the
// bound itself: ln_bias_magic refuses |bias_int| > 2^50, and a crafted value just past it shows the form would
// then be wrong (so the bound is not decorative). Skipped (with a note) on a CPU without AVX-512.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "csrc/cpu/isa.h"
#include "csrc/cpu/layernorm_simd.h"

using namespace mnq::kernels;
namespace cpu = mnq::ops::cpu;

namespace ln_out_test {

bool have_avx512() { return cpu::supported_isa() == cpu::Isa::kAvx512; }

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

float definition(int32_t q, int32_t mean, i64 f, i64 bias, double s) {
  return static_cast<float>(static_cast<double>(ln_affine_out(q - mean, ln_factor(f), bias)) * s);
}

// Runs ln_out_row's float64 form on one row and compares every element with the definition; bias_m is built by
// ln_bias_magic (which must accept the row's bias).
void check_row(const std::vector<int32_t>& q, int32_t mean, i64 f, const std::vector<i64>& bias,
               const std::vector<double>& s) {
  const int64_t n = static_cast<int64_t>(q.size());
  std::vector<double> bias_m(n);
  REQUIRE(cpu::ln_bias_magic(bias.data(), n, bias_m.data()));
  std::vector<float> got(n + 1, -7.0f);  // one past the row: must stay untouched
  cpu::LnRowOut out{nullptr, got.data(), s.data(), bias_m.data()};
  cpu::ln_out_row(q.data(), mean, n, ln_factor(f), bias.data(), out);
  for (int64_t j = 0; j < n; ++j) {
    const float want = definition(q[j], mean, f, bias[j], s[j]);
    INFO("n " << n << " j " << j << " q " << q[j] << " mean " << mean << " f " << f << " bias " << bias[j]);
    REQUIRE(same_bits(got[j], want));
  }
  REQUIRE(got[n] == -7.0f);
}

}  // namespace ln_out_test



TEST_CASE("ln_out_row's float64 form equals the definition", "[simd][layernorm]") {
  if (!ln_out_test::have_avx512()) {
    WARN("no AVX-512 on this CPU: ln_out_row's float64 form is not run");
    return;
  }
  std::mt19937_64 rng(21);
  const i64 b50 = i64(1) << 50;
  const std::vector<i64> factors = {1, 2, 3, 64, 65, 2047, 2048, (i64(1) << 25) + 1, (i64(1) << 31) - 1,
                                    i64(1) << 31};
  std::vector<int64_t> lengths;
  for (int64_t n = 1; n <= 40; ++n) lengths.push_back(n);
  lengths.push_back(197);
  for (int64_t n : lengths) {
    for (i64 f : factors) {
      // |y·f/2| < 2^32 as on every row of both ops (layernorm_simd.h): |y| ≤ 2^22 and ≤ 2^32 / f.
      const i64 ymax = std::min<i64>(i64(1) << 22, (i64(1) << 32) / f);
      const int32_t mean = static_cast<int32_t>(static_cast<i64>(rng() % (2 * (1 << 21))) - (1 << 21));
      std::vector<int32_t> q(n);
      std::vector<i64> bias(n);
      std::vector<double> s(n);
      for (int64_t j = 0; j < n; ++j) {
        const i64 y = static_cast<i64>(rng() % (2 * ymax + 1)) - ymax;
        q[j] = static_cast<int32_t>(mean + y);
        switch (rng() % 4) {  // bias at the bound, small, or random up to it
          case 0: bias[j] = (rng() & 1) ? b50 : -b50; break;
          case 1: bias[j] = static_cast<i64>(rng() % 2001) - 1000; break;
          default: bias[j] = static_cast<i64>(rng() % (2 * static_cast<uint64_t>(b50) + 1)) - b50;
        }
        // S_out = Sy·γ: a general double, or a power of two that makes fl64(v)·S exact and its float32 rounding
        // a tie whenever v has a 1 just below float32's last bit.
        s[j] = (rng() & 1) ? std::ldexp(1.0 + static_cast<double>(rng() % 1000) / 1000.0, -20 - (rng() % 20))
                           : std::ldexp(1.0, -static_cast<int>(rng() % 40));
      }
      q[0] = mean;  // y = 0
      ln_out_test::check_row(q, mean, f, bias, s);
    }
  }
}

TEST_CASE("ln_bias_magic's bound: 2^50, and the float64 form past it would be wrong", "[simd][layernorm]") {
  std::vector<double> m(2);
  const i64 b50 = i64(1) << 50;
  std::vector<i64> ok = {b50, -b50}, over = {b50 + 1, 0}, under = {0, -b50 - 1};
  REQUIRE(cpu::ln_bias_magic(ok.data(), 2, m.data()));
  REQUIRE(m[0] == 0x1.8p52 + 0x1p50);
  REQUIRE_FALSE(cpu::ln_bias_magic(over.data(), 2, m.data()));
  REQUIRE_FALSE(cpu::ln_bias_magic(under.data(), 2, m.data()));
  if (!ln_out_test::have_avx512()) return;
  // bias_int = T = m·2^28 + 2^27 (m = 2^23 + 2^22, even), y = 1, f = 2: v = T + 1, and with S = 2^−28 the value
  // v·S lies just above the float32 tie m + 1/2, so the definition gives m + 1. K + v ≥ 2^53 is odd, not a double:
  // the form, forced onto this bias, rounds K + v down to K + T and gives the tie's even neighbour m.
  const i64 mm = (i64(1) << 23) + (i64(1) << 22);
  const i64 t = mm * (i64(1) << 28) + (i64(1) << 27);
  const std::vector<int32_t> q = {6};
  const std::vector<i64> bias = {t};
  const std::vector<double> s = {0x1p-28};
  const std::vector<double> forced = {static_cast<double>(t) + 0x1.8p52};  // exact: t is even, K + t < 2^54
  float got = -7.0f;
  cpu::ln_out_row(q.data(), 5, 1, ln_factor(2), bias.data(), cpu::LnRowOut{nullptr, &got, s.data(), forced.data()});
  REQUIRE(ln_out_test::definition(6, 5, 2, t, 0x1p-28) == static_cast<float>(mm + 1));
  REQUIRE(got == static_cast<float>(mm));
  REQUIRE_FALSE(cpu::ln_bias_magic(bias.data(), 1, m.data()));
}
