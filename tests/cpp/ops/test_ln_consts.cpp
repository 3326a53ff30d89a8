// The per-call constants of the LayerNorms computed by vector loops against their scalar definitions, bit for bit:
// cpu::ln_affine_consts (I-LayerNorm / I-BERT LayerNorm: kernels::ln_affine_channel per channel, float32 and
// float64 γ/β, accepted and rejected channels) and cpu::ptf_scaled_consts (PTF LayerNorm's β/S_next, γ/S_next and
// their extremes), on every row length from 1 to 40 (the 8-lane tails), 197 and 384.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "csrc/cpu/isa.h"
#include "csrc/cpu/layernorm_simd.h"
#include "csrc/cpu/ptf_layernorm_simd.h"
#include "kernels/ptf_layernorm.h"

using namespace mnq::kernels;
namespace cpu = mnq::ops::cpu;

namespace {

std::vector<int64_t> lengths() {
  std::vector<int64_t> n;
  for (int64_t c = 1; c <= 40; ++c) n.push_back(c);
  n.push_back(197);
  n.push_back(384);
  return n;
}

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

// γ, β of one trial: mostly ordinary values, with the extremes ln_affine_channel distinguishes mixed in.
void fill(std::mt19937_64& rng, int64_t cols, double sy, bool with_bad, std::vector<double>& g, std::vector<double>& b) {
  std::normal_distribution<double> nd;
  g.resize(cols);
  b.resize(cols);
  const double inf = std::numeric_limits<double>::infinity(), nan = std::numeric_limits<double>::quiet_NaN();
  for (int64_t c = 0; c < cols; ++c) {
    g[c] = nd(rng) + 0.5;
    b[c] = 0.1 * nd(rng);
    switch (rng() % 12) {
      case 0: g[c] = std::ldexp(1.0 + 0.5 * nd(rng), -40 + static_cast<int>(rng() % 80)); break;  // tiny/huge γ
      case 1: b[c] = std::ldexp(g[c] * sy, 62) * (1.0 - 0x1p-40); break;                          // |bias_int| ≈ 2^62
      case 2: b[c] = -std::ldexp(g[c] * sy, 62); break;                                           // = −2^62
      case 3: b[c] = 0.0; break;
      default: break;
    }
    if (with_bad && rng() % 16 == 0) {
      const double bad[] = {0.0, -0.0, inf, -inf, nan};
      if (rng() & 1) {
        g[c] = bad[rng() % 5];
      } else {
        b[c] = rng() % 3 == 0 ? nan : std::ldexp(g[c] * sy, 63);  // |bias_int| = 2^63 > 2^62
      }
    }
  }
}

}  // namespace

TEST_CASE("ln_affine_consts equals ln_affine_channel on every channel, float32 and float64", "[layernorm][consts]") {
  std::mt19937_64 rng(21);
  int rejected = 0;
  for (const int64_t cols : lengths()) {
    const double sy = ln_sy(cols);
    for (int trial = 0; trial < 40; ++trial) {
      std::vector<double> g, b;
      fill(rng, cols, sy, trial % 2 == 1, g, b);
      std::vector<float> g32(g.begin(), g.end()), b32(b.begin(), b.end());
      for (int form = 0; form < 4; ++form) {  // γ float32/float64 × β float32/float64
        const bool gf = form & 1, bf = form & 2;
        std::vector<i64> bias_int(cols);
        std::vector<double> s_out(cols);
        const bool ok = cpu::ln_affine_consts(gf ? g32.data() : nullptr, gf ? nullptr : g.data(),
                                              bf ? b32.data() : nullptr, bf ? nullptr : b.data(), cols, sy,
                                              bias_int.data(), s_out.data());
        bool want_ok = true;
        for (int64_t c = 0; c < cols; ++c) {
          const double gc = gf ? static_cast<double>(g32[c]) : g[c], bc = bf ? static_cast<double>(b32[c]) : b[c];
          const LnAffineChannel a = ln_affine_channel(gc, bc, sy);
          want_ok &= a.ok;
          if (ok) {
            INFO("cols " << cols << " c " << c << " form " << form);
            REQUIRE(bias_int[c] == a.bias_int);
            REQUIRE(same_bits(s_out[c], a.s_out));
          }
        }
        REQUIRE(ok == want_ok);
        rejected += !ok;
      }
    }
  }
  REQUIRE(rejected > 0);  // the rejection path was exercised
}

TEST_CASE("ptf_scaled_consts equals its scalar definition", "[ptf][consts]") {
  if (cpu::supported_isa() != cpu::Isa::kAvx512) {
    WARN("no AVX-512 on this CPU: ptf_scaled_consts (the vector path's) is not run");
    return;
  }
  std::mt19937_64 rng(23);
  std::normal_distribution<double> nd;
  for (const int64_t cols : lengths()) {
    for (int trial = 0; trial < 20; ++trial) {
      std::vector<double> vals(4 * cols);
      std::vector<int32_t> shift(cols, 0);
      for (int64_t c = 0; c < cols; ++c) {
        const double g = trial == 0 && c == cols / 2 ? 0.0 : std::ldexp(nd(rng), static_cast<int>(rng() % 20) - 10);
        ptf_channel_consts(static_cast<i64>(rng() % 4), 0, g, 3.0 * nd(rng), 6.0 / 127 / 8, cols, c, shift.data(),
                           vals.data());
      }
      const double sn = std::ldexp(1.0 + 0.3 * std::fabs(nd(rng)), -static_cast<int>(rng() % 12));
      const PtfParams p{1, cols, kPtfLo, kPtfHi, shift.data(), vals.data(), vals.data() + cols,
                        vals.data() + 2 * cols, sn};
      std::vector<double> buf(2 * cols, -7.0);
      const cpu::PtfScaled sc = cpu::ptf_scaled_consts(p, buf.data());
      double cg_min = std::fabs(p.cgamma[0]), cg_max = 0.0, b_max = 0.0, g_max = 0.0;
      for (int64_t c = 0; c < cols; ++c) {
        const double bs = p.beta[c] / sn, gs = p.gamma[c] / sn;
        REQUIRE(same_bits(sc.beta_s[c], bs));
        REQUIRE(same_bits(sc.gamma_s[c], gs));
        cg_min = std::fmin(cg_min, std::fabs(p.cgamma[c]));
        cg_max = std::fmax(cg_max, std::fabs(p.cgamma[c]));
        b_max = std::fmax(b_max, std::fabs(bs));
        g_max = std::fmax(g_max, std::fabs(gs));
      }
      REQUIRE(same_bits(sc.min_cg, cg_min));
      REQUIRE(same_bits(sc.max_cg, cg_max));
      REQUIRE(same_bits(sc.max_bs, b_max));
      REQUIRE(same_bits(sc.max_gs, g_max));
      REQUIRE(same_bits(sc.inv_min_cg, 1.0 / cg_min));
    }
  }
}
