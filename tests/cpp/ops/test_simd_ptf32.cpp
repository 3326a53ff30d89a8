// PTF LayerNorm's float32 pass 2 (csrc/cpu/ptf_layernorm_simd32.cpp) at B's certification: channels whose β is
// searched so that the float32 form's w = fl32(bs32 − kr32·gs32) rounds B the other way from the definition while
// lying farther than the 2^−20 slack from the tie (a lane the error term E must send to ptf_out). Every element
// must equal ptf_out; the float32 form must have taken the row. (test_simd_rows.cpp covers the rest of the form.)
#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <vector>

#include "csrc/cpu/isa.h"
#include "csrc/cpu/ptf_layernorm_simd.h"

using namespace mnq::kernels;
namespace cpu = mnq::ops::cpu;

TEST_CASE("ptf float32 pass 2 redoes B's near ties where float32 rounds the other way", "[simd][ptf]") {
  if (cpu::supported_isa() != cpu::Isa::kAvx512) {
    WARN("no AVX-512 on this CPU: the PTF float32 pass 2 is not run");
    return;
  }
  std::mt19937 rng(31);
  std::normal_distribution<double> nd(0.0, 1.0);
  for (const int64_t cols : {17, 64, 197}) {
    const double sn = 4.0 / 127;
    std::vector<int32_t> shift(cols, 0), x(cols);
    std::vector<double> vals(4 * cols);
    i64 sx = 0, sxx = 0;
    for (int64_t c = 0; c < cols; ++c) {
      const double g = (c % 4 == 0 ? -1.0 : 1.0) * (0.7 + 0.3 * std::fabs(nd(rng)));
      ptf_channel_consts(0, 0, g, 0.1 * nd(rng), 1.0, cols, c, shift.data(), vals.data());
      x[c] = static_cast<int32_t>(std::lround(40.0 * nd(rng) + 25.0));
      sx += x[c];
      sxx += static_cast<i64>(x[c]) * x[c];
    }
    const PtfRow row = ptf_row(sx, sxx, cols, sn);
    double max_cg = 0.0;
    for (int64_t c = 0; c < cols; ++c) max_cg = std::fmax(max_cg, std::fabs(vals[c]));
    const PtfRowFast rf = ptf_row_fast(row, cols, 1.0 / sn, max_cg);
    const float kr32 = static_cast<float>(row.sx * rf.inv_std);
    int crafted = 0;
    for (int64_t c = 0; c < cols; ++c) {
      const double gamma = vals[cols + c];
      const int n = 7 - static_cast<int>(std::floor(std::log2(std::fabs(vals[c] / row.den))));
      const float gs32 = static_cast<float>(gamma / sn);
      for (int k = -4000; k <= 4000; ++k) {  // β near B = 37.5 + k·2^−20 (in units of 2^−N)
        const double beta = sn * (std::ldexp(37.5 + k * 0x1p-20, -n) + (row.sx / row.stdv) * (gamma / sn));
        const float bs32 = static_cast<float>(beta / sn);
        const double w = std::ldexp(static_cast<double>(std::fmaf(-kr32, gs32, bs32)), n);  // exact scaling
        const double t = (beta - (row.sx * gamma) / row.stdv) / sn;  // ptf_out's, in its order
        if (std::rint(std::ldexp(t, n)) != std::rint(w) && std::fabs(w - std::rint(w)) <= 0.5 - 0x1p-19) {
          vals[2 * cols + c] = beta;
          ++crafted;
          break;
        }
      }
    }
    INFO("cols " << cols << ": channels crafted " << crafted);
    REQUIRE(crafted > cols / 2);
    const PtfParams p{1, cols, kPtfLo, kPtfHi, shift.data(), vals.data(), vals.data() + cols, vals.data() + 2 * cols, sn};
    std::vector<double> buf(2 * cols);
    std::vector<float> buf32(5 * cols);
    cpu::PtfScaled sc = cpu::ptf_scaled_consts(p, buf.data());
    cpu::ptf_scaled_consts32(p, sc, buf32.data());
    std::vector<int64_t> code(cols, -7);
    REQUIRE(cpu::ptf_out_row32(x.data(), row, rf, p, sc, cpu::PtfRowOut{code.data(), nullptr, 0.0}));
    for (int64_t c = 0; c < cols; ++c) {
      INFO("c " << c);
      REQUIRE(code[c] == ptf_out(x[c], c, row, p));
    }
  }
}
