// The LayerNorm kernels (ilayernorm.cuh, ibert_layernorm.cuh, ptf_layernorm.cuh) in the simulator, through their
// launch_* functions, against per-row references from the scalar math of their .h (the loops of the CPU backends;
// PTF's reference is ptf_out itself, which the CPU's certified fast path equals).
#include <set>

#include "kernels/ibert_layernorm.cuh"
#include "kernels/ilayernorm.cuh"
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
      all = false;
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
      all = false;
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
  bad_rows(LnLoaders{}, run, RowRange{kIlnLo, kIlnHi, 15, 0.02}, 23);
}

TEST_CASE("sim: ibert_layernorm kernel equals its row reference", "[sim][ibert_layernorm]") {
  std::mt19937_64 rng(24);
  const Affine a(rng);
  auto run = affine_run(
      a, kIbertLnLo, kIbertLnHi,
      [](auto in, auto out, const LnParams& p, int* flag) { return launch_ibert_layernorm(in, out, p, flag, nullptr); },
      [](auto in, auto out, const LnParams& p) { return ref_ibert_layernorm(in, out, p, nullptr); }, "ibert_layernorm");
  sweep_rows(LnLoaders{}, run, RowRange{kIbertLnLo, kIbertLnHi, 21, 0.02}, 25);
  bad_rows(LnLoaders{}, run, RowRange{kIbertLnLo, kIbertLnHi, 21, 0.02}, 26);
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
      all = false;
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
  bad_rows(PtfLoaders{&ch}, run, RowRange{kPtfLo, kPtfHi, 15, ch.s_base}, 30);
}

}  // namespace
