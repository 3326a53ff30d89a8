// The LayerNorm kernels (ilayernorm.cuh, ibert_layernorm.cuh, ptf_layernorm.cuh) in the simulator, through their
// launch_* functions, against per-row references from the scalar math of their .h (the loops of the CPU backends;
// PTF's reference is ptf_out itself, which the CPU's certified fast path equals).
#include <algorithm>
#include <functional>
#include <set>

#include "kernels/ibert_layernorm.cuh"
#include "kernels/ilayernorm.cuh"
#include "kernels/layernorm_common.cuh"
#include "kernels/ptf_layernorm.cuh"
#include "rowwise.h"

using namespace mnq::kernels;
using namespace mnq::simtest;

namespace {

constexpr i64 kMaxCols = 65536;

struct LnLoaders {
  template <class T>
  LnIntIn<T> ints(const T* p) const {
    return LnIntIn<T>{p};
  }
  LnFloatIn floats(const float* p, double scale) const { return LnFloatIn{p, 1.0 / scale}; }
};

// Per-channel affine constants for up to 65536 channels (a row of C uses the first C).
struct Affine {
  std::vector<i64> bias_int;
  std::vector<double> s_out;
  explicit Affine(std::mt19937_64& rng) {
    std::uniform_int_distribution<int> bits(0, 62);
    std::uniform_real_distribution<double> g(0.1, 3.0);
    for (i64 c = 0; c < kMaxCols; ++c) {
      const i64 m = (i64(1) << bits(rng)) - 1;
      bias_int.push_back(std::uniform_int_distribution<i64>(-m, m)(rng));
      s_out.push_back((c % 3 ? 1 : -1) * g(rng) * 1e-6);
    }
  }
};

// Loads the row's codes; false when one is outside [lo, hi].
template <class In>
bool load_row(const In& in, i64 base, i64 cols, i64 lo, i64 hi, std::vector<i64>& q) {
  int bad = 0;
  q.resize(static_cast<size_t>(cols));
  for (i64 j = 0; j < cols; ++j) q[j] = in.load(base + j, j, lo, hi, bad);
  return bad == 0;
}

template <class In, class Out>
bool ref_ilayernorm(const In& in, const Out& out, const LnParams& p) {
  bool all = true;
  std::vector<i64> q;
  for (i64 r = 0; r < p.rows; ++r) {
    if (!load_row(in, r * p.cols, p.cols, p.lo, p.hi, q)) {
      all = all && Out::kPropagatesNaN;  // a float row is all NaN (the NaN policy), codes are reported
      ln_row_nan(out, r * p.cols, p.cols, 0, 1);
      continue;
    }
    i64 s = 0, ss = 0;
    for (const i64 v : q) {
      s += v;
      ss += v * v;
    }
    i64 mean = 0;
    const LnFactor f = ilayernorm_factor(s, ss, p.cols, mean);
    for (i64 j = 0; j < p.cols; ++j) {
      out.store(r * p.cols + j, j, ln_affine_out(static_cast<int32_t>(q[j] - mean), f, p.bias_int[j]));
    }
  }
  return all;
}

template <class In, class Out>
bool ref_ibert_layernorm(const In& in, const Out& out, const LnParams& p, std::vector<int>* shifts) {
  bool all = true;
  std::vector<i64> q;
  for (i64 r = 0; r < p.rows; ++r) {
    if (!load_row(in, r * p.cols, p.cols, p.lo, p.hi, q)) {
      all = all && Out::kPropagatesNaN;  // a float row is all NaN (the NaN policy), codes are reported
      ln_row_nan(out, r * p.cols, p.cols, 0, 1);
      continue;
    }
    i64 s = 0, ss = 0;
    for (const i64 v : q) {
      s += v;
      ss += v * v;
    }
    const i64 mean = ln_mean(s, p.cols);
    i64 var = ln_centered_sumsq(s, ss, mean, p.cols);
    const int shift = ibert_find_shift(var, [&](int sh, i64& below, i64& at) {
      for (const i64 v : q) {
        below += ibert_term(static_cast<int32_t>(v - mean), sh - 1);
        at += ibert_term(static_cast<int32_t>(v - mean), sh);
      }
    });
    if (shifts) shifts->push_back(shift);
    const LnFactor f = ibert_factor(var, shift);
    for (i64 j = 0; j < p.cols; ++j) {
      out.store(r * p.cols + j, j, ln_affine_out(static_cast<int32_t>(q[j] - mean), f, p.bias_int[j]));
    }
  }
  return all;
}

// run(in, rows, cols, flag) of an I-LayerNorm-like op: int64 codes, or float32 values with per-channel S_out.
template <class Launch, class Ref>
auto affine_run(const Affine& a, i64 lo, i64 hi, Launch launch, Ref ref, const char* what) {
  return [&a, lo, hi, launch, ref, what](auto in, i64 rows, i64 cols, int* flag) {
    const LnParams p{rows, cols, lo, hi, a.bias_int.data()};
    const size_t len = static_cast<size_t>(rows * cols);
    if constexpr (std::is_same_v<decltype(in), LnFloatIn>) {
      return run_both<float>(
          len,
          [&](float* o) {
            return LnChannelFloatOut{o, a.s_out.data()};
          },
          [&](LnChannelFloatOut o) { return launch(in, o, p, flag); },
          [&](LnChannelFloatOut o) { return ref(in, o, p); }, std::string(what) + " (float)");
    } else {
      return run_both<int64_t>(
          len, [](int64_t* o) { return LnIntOut{o}; }, [&](LnIntOut o) { return launch(in, o, p, flag); },
          [&](LnIntOut o) { return ref(in, o, p); }, what);
    }
  };
}

TEST_CASE("sim: ilayernorm kernel equals its row reference", "[sim][ilayernorm]") {
  std::mt19937_64 rng(21);
  const Affine a(rng);
  auto run = affine_run(
      a, kIlnLo, kIlnHi,
      [](auto in, auto out, const LnParams& p, int* flag) { return launch_ilayernorm(in, out, p, flag, nullptr); },
      [](auto in, auto out, const LnParams& p) { return ref_ilayernorm(in, out, p); }, "ilayernorm");
  sweep_rows(LnLoaders{}, run, RowRange{kIlnLo, kIlnHi, 15, 0.02}, 22);
  bad_rows(LnLoaders{}, run, RowRange{kIlnLo, kIlnHi, 15, 0.02}, 23, true);
}

TEST_CASE("sim: ibert_layernorm kernel equals its row reference", "[sim][ibert_layernorm]") {
  std::mt19937_64 rng(24);
  const Affine a(rng);
  auto run = affine_run(
      a, kIbertLnLo, kIbertLnHi,
      [](auto in, auto out, const LnParams& p, int* flag) { return launch_ibert_layernorm(in, out, p, flag, nullptr); },
      [](auto in, auto out, const LnParams& p) { return ref_ibert_layernorm(in, out, p, nullptr); }, "ibert_layernorm");
  sweep_rows(LnLoaders{}, run, RowRange{kIbertLnLo, kIbertLnHi, 21, 0.02}, 25);
  bad_rows(LnLoaders{}, run, RowRange{kIbertLnLo, kIbertLnHi, 21, 0.02}, 26, true);
}

TEST_CASE("sim: ibert_layernorm rows take every shift of the search", "[sim][ibert_layernorm]") {
  // Rows of 22-bit codes of spread 2^9 … 2^21 in half-octave steps: V(0) from below 2^32 (shift 0) to ~2^50.
  std::mt19937_64 rng(27);
  const Affine a(rng);
  const i64 cols = 769, rows = 25;
  std::vector<int32_t> q(static_cast<size_t>(rows * cols));
  for (i64 r = 0; r < rows; ++r) {
    const i64 m = std::llround(std::exp2(9.0 + 0.5 * static_cast<double>(r)));
    const auto row = random_codes<int32_t>(rng, static_cast<size_t>(cols), -m, m - 1);
    std::copy(row.begin(), row.end(), q.begin() + r * cols);
  }
  const LnParams p{rows, cols, kIbertLnLo, kIbertLnHi, a.bias_int.data()};
  std::vector<int64_t> got(q.size()), want(q.size());
  std::vector<int> shifts;
  Flag f;
  REQUIRE(launch_ibert_layernorm(LnIntIn<int32_t>{q.data()}, LnIntOut{got.data()}, p, f.get(), nullptr));
  REQUIRE(ref_ibert_layernorm(LnIntIn<int32_t>{q.data()}, LnIntOut{want.data()}, p, &shifts));
  require_same(got, want, "ibert_layernorm");
  const std::set<int> seen(shifts.begin(), shifts.end());
  for (int s = 0; s <= 9; ++s) {
    INFO("shift " << s);
    CHECK(seen.count(s) == 1);
  }
}

// PTF: per-channel α (so per-channel float scales and shifts), γ, β for up to 65536 channels.
struct PtfChannels {
  double s_base = 0.02, scale_next = 0.05;
  std::vector<int> alpha;
  std::vector<double> gamma, beta, inv_scale;
  explicit PtfChannels(std::mt19937_64& rng) {
    std::uniform_int_distribution<int> al(0, 3);
    std::uniform_real_distribution<double> g(0.2, 1.5), b(-1.0, 1.0);
    for (i64 c = 0; c < kMaxCols; ++c) {
      alpha.push_back(al(rng));
      gamma.push_back((c % 5 ? 1 : -1) * g(rng));
      beta.push_back(b(rng));
      inv_scale.push_back(1.0 / (s_base * std::ldexp(1.0, alpha.back())));
    }
  }
};

struct PtfLoaders {
  const PtfChannels* ch;
  template <class T>
  LnIntIn<T> ints(const T* p) const {
    return LnIntIn<T>{p};
  }
  LnChannelFloatIn floats(const float* p, double) const { return LnChannelFloatIn{p, ch->inv_scale.data()}; }
};

template <class In, class Out>
bool ref_ptf_layernorm(const In& in, const Out& out, const PtfParams& p) {
  bool all = true;
  std::vector<i64> q;
  for (i64 r = 0; r < p.rows; ++r) {
    if (!load_row(in, r * p.cols, p.cols, p.lo, p.hi, q)) {
      all = all && Out::kPropagatesNaN;  // a float row is all NaN (the NaN policy), codes are reported
      ln_row_nan(out, r * p.cols, p.cols, 0, 1);
      continue;
    }
    i64 sx = 0, sxx = 0;
    for (i64 j = 0; j < p.cols; ++j) {
      const i64 x = ptf_x(q[j], p.shift[j]);
      sx += x;
      sxx += x * x;
    }
    const PtfRow row = ptf_row(sx, sxx, p.cols, p.scale_next);
    for (i64 j = 0; j < p.cols; ++j) out.store(r * p.cols + j, j, ptf_out(ptf_x(q[j], p.shift[j]), j, row, p));
  }
  return all;
}

TEST_CASE("sim: ptf_layernorm kernel equals its row reference", "[sim][ptf_layernorm]") {
  std::mt19937_64 rng(28);
  const PtfChannels ch(rng);
  auto run = [&](auto in, i64 rows, i64 cols, int* flag) {
    // The host constants of csrc/ops/ptf_layernorm.cpp for the first `cols` channels.
    const int a_min = *std::min_element(ch.alpha.begin(), ch.alpha.begin() + cols);
    std::vector<int32_t> shift(static_cast<size_t>(cols));
    std::vector<double> cgamma(static_cast<size_t>(cols));
    for (i64 c = 0; c < cols; ++c) {
      shift[c] = ch.alpha[c] - a_min;
      cgamma[c] = static_cast<double>(cols) * ch.gamma[c];
    }
    REQUIRE(ptf_b_bound(1.0, 1.5, cols, ch.scale_next) <= kPtfMaxB);
    const PtfParams p{rows,           cols,         kPtfLo, kPtfHi, shift.data(), cgamma.data(), ch.gamma.data(),
                      ch.beta.data(), ch.scale_next};
    const size_t len = static_cast<size_t>(rows * cols);
    if constexpr (std::is_same_v<decltype(in), LnChannelFloatIn>) {
      return run_both<float>(
          len,
          [&](float* o) {
            return LnFloatOut{o, ch.scale_next};
          },
          [&](LnFloatOut o) { return launch_ptf_layernorm(in, o, p, flag, nullptr); },
          [&](LnFloatOut o) { return ref_ptf_layernorm(in, o, p); }, "ptf_layernorm (float)");
    } else {
      return run_both<int64_t>(
          len, [](int64_t* o) { return LnIntOut{o}; },
          [&](LnIntOut o) { return launch_ptf_layernorm(in, o, p, flag, nullptr); },
          [&](LnIntOut o) { return ref_ptf_layernorm(in, o, p); }, "ptf_layernorm");
    }
  };
  sweep_rows(PtfLoaders{&ch}, run, RowRange{kPtfLo, kPtfHi, 15, ch.s_base}, 29);
  bad_rows(PtfLoaders{&ch}, run, RowRange{kPtfLo, kPtfHi, 15, ch.s_base}, 30, true);
}

// The affine constants of the CUDA QAT path, computed by a kernel from γ and β in device memory: the host's values
// (ln_affine_channel, whose expressions are the reference's floor((β/γ)/Sy) and Sy·γ), and S_out = NaN exactly where
// the host raises (γ zero or not finite, |bias_int| > 2^62 or not finite).
TEST_CASE("sim: LayerNorm affine constants from device memory equal the host's", "[sim][ilayernorm][device-scale]") {
  std::mt19937_64 rng(31);
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  for (const i64 cols : {i64(1), i64(257), i64(768), kMaxCols}) {
    std::uniform_real_distribution<double> g(-3.0, 3.0), b(-2.0, 2.0);
    std::vector<double> gamma(static_cast<size_t>(cols)), beta(static_cast<size_t>(cols));
    for (i64 c = 0; c < cols; ++c) {
      gamma[c] = g(rng);
      beta[c] = b(rng);
    }
    if (cols >= 257) {  // what the host rejects: γ 0, ±inf, NaN; β NaN, inf, or |β/γ| beyond 2^32·√C
      const double bad_g[] = {0.0, -0.0, inf, -inf, nan};
      for (int k = 0; k < 5; ++k) gamma[10 + k] = bad_g[k];
      beta[20] = nan;
      beta[21] = inf;
      beta[22] = 1e30;
      gamma[23] = 1e-300;
    }
    std::vector<i64> bias_int(static_cast<size_t>(cols), 7);
    std::vector<double> s_out(static_cast<size_t>(cols), 7.0);
    launch_ln_affine_consts(gamma.data(), beta.data(), cols, bias_int.data(), s_out.data(), nullptr);
    const double sy = std::sqrt(static_cast<double>(cols)) / 1073741824.0;
    for (i64 c = 0; c < cols; ++c) {
      INFO(cols << " channels, channel " << c << ": gamma " << gamma[c] << ", beta " << beta[c]);
      const double bi = std::floor((beta[c] / gamma[c]) / sy);
      const bool host_ok = std::isfinite(gamma[c]) && gamma[c] != 0.0 && std::fabs(bi) <= std::ldexp(1.0, 62);
      REQUIRE(host_ok == !std::isnan(s_out[c]));
      REQUIRE(bias_int[c] == (host_ok ? static_cast<i64>(bi) : 0));
      if (host_ok) REQUIRE(s_out[c] == sy * gamma[c]);
    }
  }
}

// I-LayerNorm and I-BERT LayerNorm with the input scale in device memory (dev_scale): the host constants' output
// for a scale in range, NaN rows outside it (0, negative, infinite, NaN, or 1/S not finite).
TEST_CASE("sim: LayerNorm kernels with the scale in device memory equal the host constants",
          "[sim][ilayernorm][ibert_layernorm][device-scale]") {
  std::mt19937_64 rng(32);
  const Affine a(rng);
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  const std::vector<double> good{1e-3, 0.02, 1.0, 1e6}, bad{0.0, -0.05, inf, nan, 4e-309};
  for (const bool ibert : {false, true}) {
    INFO((ibert ? "ibert_layernorm" : "ilayernorm"));
    const i64 lo = ibert ? kIbertLnLo : kIlnLo, hi = ibert ? kIbertLnHi : kIlnHi;
    auto launch = [&](const double* dev, double s, const float* x, float* o, i64 rows, i64 cols) {
      const LnParams p{rows, cols, lo, hi, a.bias_int.data(), dev};
      const LnFloatIn in{x, dev ? -1.0 : 1.0 / s};
      const LnChannelFloatOut out{o, a.s_out.data()};
      Flag f;
      const bool r = ibert ? launch_ibert_layernorm(in, out, p, f.get(), nullptr)
                           : launch_ilayernorm(in, out, p, f.get(), nullptr);
      REQUIRE(f.mem == 0x5a5a5a5a);  // float path: the flag is never touched
      return r;
    };
    device_scale_rows(launch, good, bad, lo, hi, ibert ? 34 : 33);
  }
}

// PTF LayerNorm's QAT constants from device memory (one warp: α_min, max |γ|, max |β|, the checks) equal the
// host's (csrc/ops/ptf_layernorm.cpp host_consts: ptf_channel_consts after the same checks); the kernel with them and
// S_next from device memory equals the host launch; any failed check gives 1/S = NaN everywhere, hence NaN rows.
TEST_CASE("sim: ptf_layernorm constants and S_next from device memory equal the host's",
          "[sim][ptf_layernorm][device-scale]") {
  std::mt19937_64 rng(35);
  const PtfChannels ch(rng);
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  for (const i64 cols : {i64(1), i64(33), i64(769)}) {
    std::vector<i64> alpha(ch.alpha.begin(), ch.alpha.begin() + cols);
    std::vector<double> gamma(ch.gamma.begin(), ch.gamma.begin() + cols), beta(ch.beta.begin(), ch.beta.begin() + cols);
    auto consts = [&](const std::vector<i64>& al, const std::vector<double>& g, const std::vector<double>& b,
                      double s_base, double s_next, std::vector<int32_t>& shift, std::vector<double>& values) {
      shift.assign(static_cast<size_t>(cols), 7);
      values.assign(static_cast<size_t>(4 * cols), 7.0);
      launch_ptf_layernorm_consts(al.data(), g.data(), b.data(), &s_base, &s_next, cols, shift.data(), values.data(),
                                  nullptr);
    };
    std::vector<int32_t> shift;
    std::vector<double> values;
    consts(alpha, gamma, beta, ch.s_base, ch.scale_next, shift, values);
    const i64 a_min = *std::min_element(alpha.begin(), alpha.end());
    std::vector<int32_t> want_shift(static_cast<size_t>(cols));
    std::vector<double> want_values(static_cast<size_t>(4 * cols));
    for (i64 c = 0; c < cols; ++c) {
      ptf_channel_consts(alpha[c], a_min, gamma[c], beta[c], ch.s_base, cols, c, want_shift.data(), want_values.data());
    }
    INFO(cols << " channels");
    REQUIRE(shift == want_shift);
    require_same(values, want_values, "ptf constants");
    // The row kernel with the device constants and S_next from memory, against the host's launch.
    const i64 rows = 7;
    const auto x = random_values(rng, static_cast<size_t>(rows * cols), -2000, 2000, ch.s_base);
    auto run = [&](const std::vector<double>& v, const double* dev_next, float* o) {
      PtfParams p{rows, cols, kPtfLo, kPtfHi, shift.data(), v.data(), v.data() + cols, v.data() + 2 * cols,
                  dev_next ? -1.0 : ch.scale_next};
      p.dev_scale_next = dev_next;
      Flag f;
      REQUIRE(launch_ptf_layernorm(LnChannelFloatIn{x.data(), v.data() + 3 * cols},
                                   LnFloatOut{o, dev_next ? -1.0 : ch.scale_next}, p, f.get(), nullptr));
      REQUIRE(f.mem == 0x5a5a5a5a);
    };
    std::vector<float> got(x.size(), 7.0f), want(x.size(), 7.0f);
    run(values, &ch.scale_next, got.data());
    run(want_values, nullptr, want.data());
    require_same(got, want, "ptf_layernorm, device constants vs host");
    // Every failed check: 1/S NaN in every channel (so NaN rows), shifts and the other rows 0.
    struct Case {
      const char* what;
      std::function<void(std::vector<i64>&, std::vector<double>&, std::vector<double>&, double&, double&)> make;
    };
    const Case cases[] = {
        {"alpha 4", [&](auto& al, auto&, auto&, double&, double&) { al[cols - 1] = 4; }},
        {"alpha -1", [&](auto& al, auto&, auto&, double&, double&) { al[0] = -1; }},
        {"gamma inf", [&](auto&, auto& g, auto&, double&, double&) { g[cols / 2] = inf; }},
        {"beta NaN", [&](auto&, auto&, auto& b, double&, double&) { b[cols - 1] = nan; }},
        {"s_base 0", [&](auto&, auto&, auto&, double& sb, double&) { sb = 0.0; }},
        {"s_base·8 overflows", [&](auto&, auto&, auto&, double& sb, double&) { sb = 1e308; }},
        {"s_base NaN", [&](auto&, auto&, auto&, double& sb, double&) { sb = nan; }},
        {"scale_next 0", [&](auto&, auto&, auto&, double&, double& sn) { sn = 0.0; }},
        {"scale_next -1", [&](auto&, auto&, auto&, double&, double& sn) { sn = -1.0; }},
        {"B bound", [&](auto&, auto&, auto&, double&, double& sn) { sn = 1e-12; }},
    };
    for (const Case& k : cases) {
      INFO(k.what);
      auto al = alpha;
      auto g = gamma, b = beta;
      double sb = ch.s_base, sn = ch.scale_next;
      k.make(al, g, b, sb, sn);
      consts(al, g, b, sb, sn, shift, values);
      for (i64 c = 0; c < cols; ++c) {
        REQUIRE(std::isnan(values[3 * cols + c]));
        REQUIRE(shift[c] == 0);
      }
      std::vector<float> o(x.size(), 7.0f);
      run(values, &sn, o.data());
      for (const float v : o) REQUIRE(std::isnan(v));
    }
  }
}

}  // namespace
