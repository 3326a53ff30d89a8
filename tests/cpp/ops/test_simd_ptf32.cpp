// PTF LayerNorm's float32 pass 2 (csrc/cpu/ptf_layernorm_simd32.cpp) at B's certification: channels whose β is
// searched so that the float32 form's w = fl32(bs32 − kr32·gs32) rounds B the other way from the definition while
// lying farther than the 2^−20 slack from the tie (a lane the error term E must send to ptf_out). Every element
// must equal ptf_out; the float32 form must have taken the row. (test_simd_rows.cpp covers the rest of the form.)
#include <catch2/catch.hpp>

#include <bit>
#include <cmath>
#include <random>
#include <vector>

#include "csrc/cpu/fake_store_simd.h"
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

// The float32 stores of the float32 pass 2 (PtfRowOut::out32): fake_store32 certifies fma(v, hi, fl32(v·lo)) =
// fl32(fl64(v)·S) on the codes [−512, 511] only; codes beyond must be redone (ptf_out and FloatOut). S_next is
// searched so that the pair is certified there yet gives another float32 for some code q in [512, 8191]; channels
// with x = 0 and β crafted to make that code (±q, and codes inside the range around them) must still store
// FloatOut's value bit for bit, and a zero code from a negative num must store +0.0 (a −0.0 of the float32 rounding
// would differ in its bits).
TEST_CASE("ptf float32 pass 2 stores codes beyond the certified range through the definition", "[simd][ptf]") {
  if (cpu::supported_isa() != cpu::Isa::kAvx512) {
    WARN("no AVX-512 on this CPU: the PTF float32 pass 2 is not run");
    return;
  }
  const auto f32_of = [](double s) { return static_cast<float>(s); };
  double sn = 0.0;
  int64_t q_bad = 0;
  cpu::FakeStore32 fs;
  for (int k = 1; k < 200000 && q_bad == 0; ++k) {
    const double s = 0.05 * (1.0 + k * 0x1p-31);
    fs = cpu::fake_store32(cpu::Isa::kAvx512, s, -cpu::kPtfOut32Max - 1, cpu::kPtfOut32Max);
    if (!fs.ok) continue;
    for (int64_t q = cpu::kPtfOut32Max + 1; q < 8192; ++q) {
      const float qf = static_cast<float>(q);
      if (std::fmaf(qf, fs.hi, qf * fs.lo) != f32_of(static_cast<double>(q) * s)) {
        sn = s;
        q_bad = q;
        break;
      }
    }
  }
  INFO("S_next " << sn << ", code " << q_bad);
  REQUIRE(q_bad != 0);
  for (const int64_t cols : {16, 37, 197}) {
    std::mt19937 rng(static_cast<unsigned>(cols));
    std::normal_distribution<double> nd(0.0, 1.0);
    std::vector<int32_t> shift(cols, 0), x(cols);
    std::vector<double> vals(4 * cols);
    i64 sx = 0, sxx = 0;
    for (int64_t c = 0; c < cols; ++c) {
      x[c] = c % 3 == 1 ? 0 : static_cast<int32_t>(std::lround(40.0 * nd(rng)));
      sx += x[c];
      sxx += static_cast<i64>(x[c]) * x[c];
    }
    const PtfRow row = ptf_row(sx, sxx, cols, sn);
    // A = C·γ/den in [32, 128] (the float32 form's row tests hold with |β/S_next| up to ~2^13)
    for (int64_t c = 0; c < cols; ++c) {
      const double gamma = (c % 2 == 0 ? 1.0 : -1.0) * (32.0 + 96.0 * std::fabs(std::sin(1.0 + c))) * row.den / cols;
      // x = 0 channels: t ≈ the target code + 0.25 (no tie); targets ±q_bad, ±(q_bad + 1), codes in range and 0 from
      // a negative t (−0.25)
      const int64_t targets[] = {q_bad, -q_bad, q_bad + 1, 300, -512, 511, 0};
      const double t = c % 3 == 1 ? static_cast<double>(targets[(c / 3) % 7]) + (targets[(c / 3) % 7] == 0 ? -0.25 : 0.25)
                                  : 0.1 * nd(rng);
      const double beta = sn * t + (row.sx * gamma) / row.stdv;
      ptf_channel_consts(0, 0, gamma, beta, 1.0, cols, c, shift.data(), vals.data());
    }
    const PtfParams p{1, cols, kPtfLo, kPtfHi, shift.data(), vals.data(), vals.data() + cols, vals.data() + 2 * cols, sn};
    double max_cg = 0.0;
    for (int64_t c = 0; c < cols; ++c) max_cg = std::fmax(max_cg, std::fabs(vals[c]));
    const PtfRowFast rf = ptf_row_fast(row, cols, 1.0 / sn, max_cg);
    std::vector<double> buf(2 * cols);
    std::vector<float> buf32(5 * cols);
    cpu::PtfScaled sc = cpu::ptf_scaled_consts(p, buf.data());
    cpu::ptf_scaled_consts32(p, sc, buf32.data());
    std::vector<float> value(cols, -7.0f);
    cpu::PtfRowOut out{nullptr, value.data(), sn};
    out.out32 = true;
    out.s_hi = fs.hi;
    out.s_lo = fs.lo;
    REQUIRE(cpu::ptf_out_row32(x.data(), row, rf, p, sc, out));
    int beyond = 0, zeros = 0;
    for (int64_t c = 0; c < cols; ++c) {
      const i64 want = ptf_out(x[c], c, row, p);
      float expect = 0.0f;
      FloatOut{&expect, sn}.store(0, want);
      beyond += want == q_bad || want == -q_bad;
      zeros += c % 3 == 1 && want == 0;
      INFO("c " << c << " code " << want);
      REQUIRE(std::bit_cast<uint32_t>(value[c]) == std::bit_cast<uint32_t>(expect));
    }
    INFO("cols " << cols);
    REQUIRE(beyond > 0);
    if (cols > 20) REQUIRE(zeros > 0);
  }
}
