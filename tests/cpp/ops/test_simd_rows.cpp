// The explicit AVX-512 row paths of PTF LayerNorm and Log-Int-Softmax (csrc/cpu/ptf_layernorm_simd.h,
// log_int_softmax_simd.h) against the scalar definition (kernels/ptf_layernorm.h ptf_out, kernels/log_int_softmax.h
// lis_code), element by element, on the lanes the vector forms do not certify: PTF elements whose z = |A'|·2^N
// lies within 2^−20 of an integer (the fallback to ptf_out, counted so the test fails if none is exercised),
// γ = 0, constant rows; the short pass 2 (PtfScaled) with crafted uncertified lanes and refused rows; Log-Int-Softmax elements with t0 < 3 (the largest probabilities), e = 0 (masked), rows
// summing past 2^61 (the 128-bit form), every code width; every row length from 1 to 40 and 197 (the tails).
// Skipped (with a note) on a CPU without AVX-512: there the ops take the loops that tests/python/test_cpu_paths.py
// checks on every path.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/ilayernorm.h"
#include "csrc/cpu/isa.h"
#include "csrc/cpu/layernorm_simd.h"
#include "csrc/cpu/log_int_softmax_simd.h"
#include "csrc/cpu/ptf_layernorm_simd.h"

using namespace mnq::kernels;
namespace cpu = mnq::ops::cpu;

namespace {

bool have_avx512() { return cpu::supported_isa() == cpu::Isa::kAvx512; }

// Every row length from 1 to 40 (the tails of 8- and 16-lane steps) and 197 (a ViT's token count).
std::vector<int64_t> row_lengths() {
  std::vector<int64_t> lengths;
  for (int64_t n = 1; n <= 40; ++n) lengths.push_back(n);
  lengths.push_back(197);
  return lengths;
}

// One PTF row: codes q with per-channel shifts; checks pass 1 (buffer and sums, int32 and float input) and pass 2
// (int64 and float output) against the definition; returns how many elements ptf_out_fast would not certify.
int check_ptf_row(const std::vector<int32_t>& q, const std::vector<int32_t>& shift, const std::vector<double>& vals,
                  double s_base, double sn) {
  const int64_t cols = static_cast<int64_t>(q.size());
  const PtfParams p{1, cols, kPtfLo, kPtfHi, shift.data(), vals.data(), vals.data() + cols, vals.data() + 2 * cols, sn};
  i64 sx = 0, sxx = 0;
  std::vector<i64> x(cols);
  for (int64_t c = 0; c < cols; ++c) {
    x[c] = ptf_x(q[c], shift[c]);
    sx += x[c];
    sxx += x[c] * x[c];
  }
  const PtfRow row = ptf_row(sx, sxx, cols, sn);
  double max_cg = 0.0;
  for (int64_t c = 0; c < cols; ++c) max_cg = std::fmax(max_cg, std::fabs(p.cgamma[c]));
  const PtfRowFast rf = ptf_row_fast(row, cols, 1.0 / sn, max_cg);
  std::vector<float> xf(cols);
  std::vector<double> inv(cols);
  for (int64_t c = 0; c < cols; ++c) {
    inv[c] = 1.0 / (s_base * std::ldexp(1.0, shift[c]));
    xf[c] = static_cast<float>(q[c] * s_base * std::ldexp(1.0, shift[c]));
  }
  std::vector<float> inv32(cols);
  REQUIRE(cpu::ptf_inv32(inv.data(), cols, inv32.data()));
  int uncertified = 0;
  for (const int mode : {0, 1, 2}) {  // int32 codes, float32 values (float64 codes), float32 values with inv32
    const bool float_in = mode > 0;
    cpu::PtfRowIn in;
    if (float_in) {
      in.x = xf.data();
      in.inv_scale = inv.data();
      if (mode == 2) in.inv32 = inv32.data();
    } else {
      in.q = q.data();
    }
    std::vector<int32_t> buf(cols, -7);
    i64 gsx = 0, gsxx = 0;
    REQUIRE(cpu::ptf_load_row(in, p, buf.data(), gsx, gsxx));
    REQUIRE(gsx == sx);
    REQUIRE(gsxx == sxx);
    for (int64_t c = 0; c < cols; ++c) REQUIRE(buf[c] == x[c]);
    std::vector<int64_t> code(cols, -7);
    std::vector<float> value(cols, -7.0f);
    cpu::ptf_out_row(buf.data(), row, rf, p, cpu::PtfRowOut{code.data(), nullptr, 0.0});
    cpu::ptf_out_row(buf.data(), row, rf, p, cpu::PtfRowOut{nullptr, value.data(), sn});
    for (int64_t c = 0; c < cols; ++c) {
      const i64 want = ptf_out(x[c], c, row, p);
      INFO("cols " << cols << " c " << c);
      REQUIRE(code[c] == want);
      float fw = 0.0f;
      FloatOut{&fw, sn}.store(0, want);
      REQUIRE(std::memcmp(&fw, &value[c], sizeof fw) == 0);
      if (!float_in) {
        int exact = 0;
        ptf_out_fast(static_cast<int32_t>(x[c]), c, rf, row.sx, p, exact);
        uncertified += exact;
      }
    }
  }
  // A code outside the declared range fails pass 1.
  std::vector<int32_t> bad = q;
  bad[cols - 1] = static_cast<int32_t>(kPtfHi + 1);
  std::vector<int32_t> buf(cols);
  cpu::PtfRowIn in;
  in.q = bad.data();
  REQUIRE_FALSE(cpu::ptf_load_row(in, p, buf.data(), sx, sxx));
  return uncertified;
}

}  // namespace

TEST_CASE("ptf layernorm avx512 rows equal ptf_out, fallback lanes included", "[simd]") {
  if (!have_avx512()) {
    WARN("no AVX-512 on this CPU: the PTF vector rows are not run");
    return;
  }
  std::mt19937 rng(11);
  std::normal_distribution<double> nd(0.0, 1.0);
  const double s_base = 6.0 / 127 / 8;
  int uncertified = 0;
  const std::vector<int64_t> lengths = row_lengths();
  for (const int64_t cols : lengths) {
    for (const double sn : {4.0 / 127, 1e-2, 3.0}) {
      std::vector<int32_t> shift(cols), q(cols);
      std::vector<double> vals(4 * cols);
      for (int64_t c = 0; c < cols; ++c) {
        const double g = c == 1 ? 0.0 : (c % 3 == 0 ? -1.0 : 1.0) * (0.5 + std::fabs(nd(rng)));
        ptf_channel_consts(static_cast<i64>(rng() % 4), 0, g, 0.1 * nd(rng), s_base, cols, c, shift.data(),
                           vals.data());
        q[c] = static_cast<int32_t>(std::lround(std::fmax(-32768.0, std::fmin(32767.0, 40.0 * nd(rng)))));
      }
      uncertified += check_ptf_row(q, shift, vals, s_base, sn);
      // Fallback lanes: C·γ chosen so that z = |A'|·2^N is an integer (plus at most a few ulps) for this row.
      i64 sx = 0, sxx = 0;
      for (int64_t c = 0; c < cols; ++c) {
        const i64 x = ptf_x(q[c], shift[c]);
        sx += x;
        sxx += x * x;
      }
      const double inv_den = 1.0 / ptf_row(sx, sxx, cols, sn).den;
      for (int64_t c = 0; c < cols; c += 2) vals[c] = (150.0 + c) / 256.0 / inv_den;  // z ≈ 150 + c
      uncertified += check_ptf_row(q, shift, vals, s_base, sn);
      std::fill(q.begin(), q.end(), 5);  // a constant row: std = 1
      uncertified += check_ptf_row(q, shift, vals, s_base, sn);
    }
  }
  REQUIRE(uncertified > 100);  // the crafted lanes did take the fallback
}

namespace {

// Pass 2's short forms (ptf_out_row with PtfScaled: the float64 one, then with the float32 copies the float32 one,
// ptf_layernorm_simd32.cpp) on one row of shifted codes x against ptf_out, int64 and float output; returns whether
// the float64 short form took the row, and counts in took32 whether the float32 form did.
bool check_ptf_short(const std::vector<int32_t>& x, const std::vector<int32_t>& shift, const std::vector<double>& vals,
                     double sn, int* took32 = nullptr) {
  const int64_t cols = static_cast<int64_t>(x.size());
  const PtfParams p{1, cols, kPtfLo, kPtfHi, shift.data(), vals.data(), vals.data() + cols, vals.data() + 2 * cols, sn};
  i64 sx = 0, sxx = 0;
  for (const int32_t v : x) {
    sx += v;
    sxx += static_cast<i64>(v) * v;
  }
  const PtfRow row = ptf_row(sx, sxx, cols, sn);
  std::vector<double> buf(2 * cols);
  std::vector<float> buf32(5 * cols);
  cpu::PtfScaled sc = cpu::ptf_scaled_consts(p, buf.data());
  const PtfRowFast rf = ptf_row_fast(row, cols, 1.0 / sn, sc.max_cg);
  bool took = false;
  for (const bool f32 : {false, true}) {
    if (f32) cpu::ptf_scaled_consts32(p, sc, buf32.data());
    std::vector<int64_t> code(cols, -7);
    std::vector<float> value(cols, -7.0f);
    const bool t = cpu::ptf_out_row(x.data(), row, rf, p, cpu::PtfRowOut{code.data(), nullptr, 0.0}, &sc);
    REQUIRE(cpu::ptf_out_row(x.data(), row, rf, p, cpu::PtfRowOut{nullptr, value.data(), sn}, &sc) == t);
    if (!f32) took = t;
    for (int64_t c = 0; c < cols; ++c) {
      const i64 want = ptf_out(x[c], c, row, p);
      INFO("cols " << cols << " c " << c << " float32 consts " << f32 << " short form " << t);
      REQUIRE(code[c] == want);
      float fw = 0.0f;
      FloatOut{&fw, sn}.store(0, want);
      REQUIRE(std::memcmp(&fw, &value[c], sizeof fw) == 0);
    }
  }
  if (took32 != nullptr) {
    std::vector<int64_t> scratch(cols);
    *took32 += cpu::ptf_out_row32(x.data(), row, rf, p, sc, cpu::PtfRowOut{scratch.data(), nullptr, 0.0});
  }
  return took;
}

}  // namespace

// The short form runs on rows whose every channel has N in [0, 31] unclamped (so no γ = 0): random rows, rows
// with lanes crafted so that z = |A'|·2^N is an integer (M, N uncertified) or w' = B's real value a half-integer (B
// uncertified), which must be redone with ptf_out; rows it must refuse (N clamped at 0 or 31) take the general form.
TEST_CASE("ptf layernorm avx512 short pass 2 equals ptf_out", "[simd]") {
  if (!have_avx512()) {
    WARN("no AVX-512 on this CPU: the PTF vector rows are not run");
    return;
  }
  std::mt19937 rng(12);
  std::normal_distribution<double> nd(0.0, 1.0);
  int took = 0, refused = 0, took32 = 0, took32_before = 0, crafted32 = 0, refused32 = 0;
  int refused_w = 0, refused_small = 0, refused_num = 0;
  const std::vector<int64_t> lengths = row_lengths();
  for (const int64_t cols : lengths) {
    for (const double sn : {4.0 / 127, 1e-2, 3.0, 1e-7, 1e5}) {
      std::vector<int32_t> shift(cols), x(cols);
      std::vector<double> vals(4 * cols);
      for (int64_t c = 0; c < cols; ++c) {
        const double g = (c % 3 == 0 ? -1.0 : 1.0) * (0.5 + std::fabs(nd(rng)));
        ptf_channel_consts(static_cast<i64>(rng() % 4), 0, g, 0.3 * nd(rng) + 0.5, 6.0 / 127 / 8, cols, c,
                           shift.data(), vals.data());
        const double q = std::fmax(-32768.0, std::fmin(32767.0, 40.0 * nd(rng) + 25.0));
        x[c] = static_cast<int32_t>(ptf_x(std::lround(q), shift[c]));
      }
      const bool plain = check_ptf_short(x, shift, vals, sn, &took32);
      refused32 += plain && took32 == took32_before;
      took32_before = took32;
      // Rows the float32 form must refuse: β/S_next large against min|A| (|w| and B's error E beyond its
      // bounds), and one channel's γ small (2^N so large that |num| could reach 2^24).
      // And codes near 2^18: |M·x| beyond 2^24, where fl32(α·x + b) would round.
      for (const int bound : {0, 1, 2}) {
        std::vector<double> v2 = vals;
        std::vector<int32_t> x2 = x;
        if (bound == 0) {
          for (int64_t c = 0; c < cols; ++c) v2[2 * cols + c] *= 3000.0;
        } else if (bound == 1) {
          v2[0] *= 0x1p-17;
          v2[cols] *= 0x1p-17;
        } else {
          // ±(2·10^5 + 100·i) in pairs: Σx = 0 (kr = 0) and β/S_next small, so that only |num| exceeds its bound
          for (int64_t c = 0; c < cols; ++c) x2[c] = c + 1 == cols && cols % 2 ? 0 : (c % 2 ? -1 : 1) * (200000 + 50 * c);
          for (int64_t c = 0; c < cols; ++c) v2[2 * cols + c] *= 1e-3;
        }
        int t32 = 0;
        const bool t = check_ptf_short(x2, shift, v2, sn, &t32);
        (bound == 0 ? refused_w : bound == 1 ? refused_small : refused_num) += t && t32 == 0;
      }
      took += plain;
      refused += !plain;
      i64 sx = 0, sxx = 0;
      for (const int32_t v : x) {
        sx += v;
        sxx += static_cast<i64>(v) * v;
      }
      const PtfRow row = ptf_row(sx, sxx, cols, sn);
      const double inv_den = 1.0 / row.den;
      for (int64_t c = 0; c < cols; ++c) {
        if (c % 3 == 0) {  // z' = 150 + c/3 exactly, or an ulp away
          vals[c] = std::nextafter((150.0 + c / 3) / 256.0 / inv_den, c % 2 ? 0.0 : 1e300);
        } else if (c % 3 == 1) {  // w' ≈ 37.5 (B's real value a half-integer) for the N of this channel, or
          // a little above or below it (2^−20..2^−8: near ties of the float32 form's wider margin)
          const double a = vals[c] * inv_den;
          const int n = 7 - static_cast<int>(std::floor(std::log2(std::fabs(a))));
          const double delta = (c / 3) % 15 == 0 ? 0.0 : ((c / 3) % 2 ? 1.0 : -1.0) * std::ldexp(1.0, -7 - (c / 3) % 14);
          vals[2 * cols + c] = sn * (std::ldexp(37.5 + delta, -n) + (row.sx / row.stdv) * (vals[cols + c] / sn));
        }
      }
      took += check_ptf_short(x, shift, vals, sn, &crafted32);
      took32_before = took32;
    }
  }
  INFO("rows on the short form " << took << ", refused " << refused << "; float32 form: random rows " << took32
                                  << ", crafted " << crafted32 << ", refused " << refused32);
  REQUIRE(took > 200);  // the crafted rows did take the short form (and so its redo of the crafted lanes)
  REQUIRE(refused > 10);
  REQUIRE(crafted32 > 40);  // and the float32 form (its redo of the crafted lanes)
  INFO("float32 form refused for |w|, E: " << refused_w << ", small γ: " << refused_small << ", |num|: "
                                             << refused_num);
  REQUIRE(refused_w > 50);  // rows the float32 form refuses and the float64 one takes, for each kind of bound
  REQUIRE(refused_small > 50);
  REQUIRE(refused_num > 50);
}

TEST_CASE("log-int-softmax avx512 rows equal lis_code", "[simd]") {
  if (!have_avx512() || !cpu::lis_simd_available()) {
    WARN("no AVX-512 (with CD) on this CPU: the Log-Int-Softmax vector rows are not run");
    return;
  }
  std::mt19937 rng(12);
  const std::vector<int64_t> lengths = row_lengths();
  int small_t0 = 0, wide_rows = 0, zeros = 0, no_zero_rows = 0, narrow_rows = 0, reg_rows = 0, gather_rows = 0;
  // |x0| = 12, 3, 24 (the second register of p), 32 (the two-register form's bound), 33 (four registers), 64 (the
  // register form's bound), 65, 1 and 23104
  for (const double scale : {8.0 / 127, 0.3, 0.03, 0.022003174603174603, 0.021326153846153846, 0.6931471805599453 / 63.5,
                             0.6931471805599453 / 64.5, 1.5, 3e-5}) {
    for (const int variant : {2, 4, 8, -8}) {
      // bits = |variant|; −8: the upper half of the table zeroed, so that the rows hold e = 0 lanes (the masked
      // code), which i-exp itself gives at no scale of this list. The definition below reads the same table.
      const int bits = variant < 0 ? -variant : variant;
      LogIntSoftmaxParams p{1, 0, log_int_softmax_consts(scale, bits), INT32_MIN, INT32_MAX};
      const i64 lo = p.c.ex.n * p.c.ex.x0;
      const uint32_t lim = static_cast<uint32_t>(-lo);
      std::vector<i64> tab(lim + 1);
      for (i64 i = 0; i <= lim; ++i) tab[i] = variant < 0 && 2 * i < lim ? 0 : ibert_exp(i - lim, p.c.ex);
      for (const int64_t cols : lengths) {
        p.cols = cols;
        std::vector<int32_t> q(cols);
        for (int64_t c = 0; c < cols; ++c) q[c] = static_cast<int32_t>(rng() % 256) - 128;
        if (cols > 3) q[2] = q[0] - 100000;  // far below the max: e = 0
        std::vector<float> xf(cols);
        for (int64_t c = 0; c < cols; ++c) xf[c] = static_cast<float>(q[c] * scale);
        // the definition
        i64 m = INT32_MIN;
        for (const int32_t v : q) m = v > m ? v : m;
        std::vector<i64> e(cols);
        u128 s = 0;
        for (int64_t c = 0; c < cols; ++c) {
          const i64 d = m - q[c];
          e[c] = tab[lim - (d < lim ? d : lim)];  // = ibert_exp(q[c] − m) (clamped at n·x0, as i-exp clamps)
          s += static_cast<u128>(e[c]);
        }
        wide_rows += s >= (static_cast<u128>(1) << 61);
        std::vector<int32_t> qbuf(cols + 16);  // lis_row's scratch: whole steps past the row's end
        std::vector<u64> ebuf(cols + 16);
        std::vector<uint8_t> code(cols, 77), mask(cols, 77);
        std::vector<float> value(cols, -7.0f);
        cpu::LisRowIn in;
        in.q = q.data();
        // The table's facts select the variants (no e = 0 test, one 64-bit sum) where they allow; the defaults
        // (the general variants) must give the same codes.
        const cpu::LisTableFacts facts = cpu::lis_table_facts(tab.data(), lim, cols);
        REQUIRE(cpu::lis_row(in, p, tab.data(), lim, qbuf.data(), ebuf.data(),
                             cpu::LisRowOut{code.data(), mask.data(), nullptr}, facts));
        cpu::LisRowIn fin;
        fin.x = xf.data();
        fin.inv_scale = 1.0 / scale;
        REQUIRE(cpu::lis_row(fin, p, tab.data(), lim, qbuf.data(), ebuf.data(),
                             cpu::LisRowOut{nullptr, nullptr, value.data()}, facts));
        std::vector<uint8_t> code_g(cols, 77), mask_g(cols, 77);
        REQUIRE(cpu::lis_row(in, p, tab.data(), lim, qbuf.data(), ebuf.data(),
                             cpu::LisRowOut{code_g.data(), mask_g.data(), nullptr}));
        REQUIRE(code_g == code);
        REQUIRE(mask_g == mask);
        no_zero_rows += !facts.zeros;
        narrow_rows += !facts.wide;
        reg_rows += facts.reg;  // i-exp's register form (|x0| ≤ 64, the table i-exp's own) instead of gathers
        gather_rows += !facts.reg;
        if (variant > 0) REQUIRE(facts.reg == (scale >= 0.0108 && scale < 1.0));
        for (int64_t c = 0; c < cols; ++c) {
          const LisCode want = lis_code(s, e[c], p.c);
          INFO("scale " << scale << " variant " << variant << " cols " << cols << " c " << c);
          REQUIRE(static_cast<int>(code[c]) == want.code);
          REQUIRE(static_cast<bool>(mask[c]) == want.masked);
          float fw = 0.0f;
          LisValueOut{&fw}.store(0, want);
          REQUIRE(std::memcmp(&fw, &value[c], sizeof fw) == 0);
          zeros += e[c] == 0;
          if (e[c] > 0 && s < (static_cast<u128>(1) << 61)) {
            small_t0 += lis_exponent(s, e[c]) < 3;  // the lanes of the first two tests (K_1, K_2)
          }
        }
        // A code outside the declared range fails the row.
        LogIntSoftmaxParams narrow = p;
        narrow.hi = q[0] - 1;
        REQUIRE_FALSE(cpu::lis_row(in, narrow, tab.data(), lim, qbuf.data(), ebuf.data(),
                                   cpu::LisRowOut{code.data(), mask.data(), nullptr}));
      }
    }
  }
  // Exact ties of round(s / e) (s/e = 3/2, 5/2, …, where K_1 and K_2 differ from the general threshold): rows
  // over a table of small multiples of K, every pair and triple of its entries.
  const LogIntSoftmaxParams p{1, 3, log_int_softmax_consts(8.0 / 127, 4), INT32_MIN, INT32_MAX};
  const uint32_t lim = static_cast<uint32_t>(-(p.c.ex.n * p.c.ex.x0));
  // (e, s) = (14, 35)·2^19 is a tie of K_2 at t0 = 2, (6, 9)·2^20 one of K_1 at t0 = 1.
  const i64 mult[9] = {21, 14, 7, 6, 4, 3, 2, 1, 5};
  std::vector<i64> tab(lim + 1, 0);
  for (int d = 0; d < 9; ++d) tab[lim - d] = mult[d] << 19;
  int ties = 0;
  for (int a = 0; a < 9; ++a) {
    for (int b = 0; b < 9; ++b) {
      for (int n = 2; n <= 3; ++n) {
        const std::vector<int32_t> q = n == 2 ? std::vector<int32_t>{0, -a} : std::vector<int32_t>{0, -a, -b};
        LogIntSoftmaxParams pn = p;
        pn.cols = n;
        u128 s = 0;
        for (const int32_t v : q) s += static_cast<u128>(tab[lim + v]);
        std::vector<int32_t> qbuf(n + 16);
        std::vector<u64> ebuf(n + 16);
        std::vector<uint8_t> code(n), mask(n);
        cpu::LisRowIn in;
        in.q = q.data();
        REQUIRE(cpu::lis_row(in, pn, tab.data(), lim, qbuf.data(), ebuf.data(),
                             cpu::LisRowOut{code.data(), mask.data(), nullptr},
                             cpu::lis_table_facts(tab.data(), lim, n)));
        for (int c = 0; c < n; ++c) {
          const i64 e = tab[lim + q[c]];
          const LisCode want = lis_code(s, e, p.c);
          REQUIRE(static_cast<int>(code[c]) == want.code);
          REQUIRE(static_cast<bool>(mask[c]) == want.masked);
          ties += 2 * static_cast<i64>(s) == 5 * e || 2 * static_cast<i64>(s) == 3 * e;
        }
      }
    }
  }
  REQUIRE(ties > 4);
  REQUIRE(small_t0 > 100);
  REQUIRE(no_zero_rows > 100);  // both variants of each pass were taken
  REQUIRE(narrow_rows > 100);
  REQUIRE(reg_rows > 100);
  REQUIRE(gather_rows > 100);
  REQUIRE(wide_rows > 10);
  REQUIRE(zeros > 100);
}

TEST_CASE("ilayernorm_std8 equals ilayernorm_std", "[simd]") {
  if (!have_avx512()) {
    WARN("no AVX-512 on this CPU: ilayernorm_std8 is not run");
    return;
  }
  // Around every power of two and the squares (where the Newton steps' floors change), both ends, and random values
  // up to the bound 2^48.
  std::vector<i64> vars;
  for (int b = 0; b <= 48; ++b) {
    for (i64 d = -3; d <= 3; ++d) vars.push_back((i64(1) << b) + d);
  }
  for (i64 r = 1; r <= 4096; r *= 2) {
    for (i64 d = -1; d <= 1; ++d) vars.push_back(r * r + d);
  }
  std::mt19937_64 rng(13);
  for (int i = 0; i < 20000; ++i) vars.push_back(static_cast<i64>(rng() >> (16 + rng() % 40)));
  vars.push_back(0);
  vars.push_back(i64(1) << 48);
  // Squares ± 1 up to 2^48: var = n² − 1 makes the steps alternate between n − 1 and n (the early stop of
  // ilayernorm_std8 must then pick the 10th by parity), n² and n² + 1 settle at n.
  for (i64 n = 2; n <= (i64(1) << 24); n = n * 5 / 4 + 1) {
    for (i64 d = -1; d <= 1; ++d) vars.push_back(n * n + d);
  }
  // Every value once with all 8 lanes equal, so that the steps stop as early as that value allows.
  for (const i64 v0 : vars) {
    const i64 v = std::max<i64>(0, std::min<i64>(v0, i64(1) << 48));
    i64 var[8], k[8], f[8];
    for (int l = 0; l < 8; ++l) var[l] = v;
    cpu::ilayernorm_std8(var, k, f);
    INFO("var " << v << " in every lane");
    REQUIRE(k[0] == ilayernorm_std(v));
    REQUIRE(f[0] == kInt31Max / k[0]);
    for (int l = 1; l < 8; ++l) REQUIRE(k[l] == k[0]);
  }
  while (vars.size() % 8 != 0) vars.push_back(7);
  for (size_t i = 0; i < vars.size(); i += 8) {
    i64 var[8], k[8], f[8], k2[8];
    for (int l = 0; l < 8; ++l) var[l] = std::max<i64>(0, std::min<i64>(vars[i + l], i64(1) << 48));
    cpu::ilayernorm_std8(var, k);
    cpu::ilayernorm_std8(var, k2, f);
    for (int l = 0; l < 8; ++l) {
      INFO("var " << var[l]);
      REQUIRE(k[l] == ilayernorm_std(var[l]));
      REQUIRE(k2[l] == k[l]);
      REQUIRE(f[l] == kInt31Max / k[l]);  // ilayernorm_factor's f
    }
  }
}
