// The GELU kernels in the simulator: shift_gelu.cuh (row-wise, rowwise.h's sweep) and ibert_gelu.cuh (elementwise,
// per-channel constants), through their launch_* functions, against references from the scalar math of their .h.
#include "kernels/channel_io.h"
#include "kernels/ibert_gelu.cuh"
#include "kernels/io.h"
#include "kernels/shift_gelu.cuh"
#include "rowwise.h"

using namespace mnq::kernels;
using namespace mnq::simtest;

namespace {

template <class In, class Out>
bool ref_shift_gelu(const In& in, const Out& out, const ShiftGeluParams& p) {
  bool all = true;
  std::vector<i64> q(static_cast<size_t>(p.cols));
  for (i64 r = 0; r < p.rows; ++r) {
    bool ok = true;
    i64 m = kInt64Min;
    for (i64 j = 0; j < p.cols; ++j) {
      q[j] = in.load(r * p.cols + j, p.lo, p.hi, ok);
      m = std::max(m, q[j]);
    }
    if (!ok) {
      if (!Out::kPropagatesNaN) all = false;  // a float row is all NaN (the NaN policy), codes are reported
      for (i64 j = 0; j < p.cols && Out::kPropagatesNaN; ++j) out.store_nan(r * p.cols + j);
      continue;
    }
    const i64 e2 = shift_gelu_e2(m, p.c);
    for (i64 j = 0; j < p.cols; ++j) out.store(r * p.cols + j, shift_gelu_out(q[j], m, e2, p.c));
  }
  return all;
}

TEST_CASE("sim: shift_gelu kernel equals its row reference", "[sim][shift_gelu]") {
  bool first = true;  // every dtype, and the out-of-range codes, with the first constants
  for (const auto& [scale, out_bits, n] : {std::tuple{0.01, 8, 23}, std::tuple{0.5, 16, 29}, std::tuple{1e-3, 2, 10}}) {
    REQUIRE(shift_gelu_scale_ok(scale, n));
    const ShiftGeluConsts c = shift_gelu_consts(scale, out_bits, n);
    const double os = scale * std::ldexp(1.0, -(out_bits - 1));
    auto run = [&](auto in, i64 rows, i64 cols, int* flag) {
      const ShiftGeluParams p{rows, cols, c, -32768, 32767};
      const size_t len = static_cast<size_t>(rows * cols);
      if constexpr (std::is_same_v<decltype(in), FloatIn>) {
        return run_both<float>(
            len,
            [&](float* o) {
              return FloatOut{o, os};
            },
            [&](FloatOut o) { return launch_shift_gelu(in, o, p, flag, nullptr); },
            [&](FloatOut o) { return ref_shift_gelu(in, o, p); }, "shift_gelu (float)");
      } else {
        return run_both<int32_t>(
            len, [](int32_t* o) { return IntOut<int32_t>{o}; },
            [&](IntOut<int32_t> o) { return launch_shift_gelu(in, o, p, flag, nullptr); },
            [&](IntOut<int32_t> o) { return ref_shift_gelu(in, o, p); }, "shift_gelu");
      }
    };
    INFO("scale " << scale << ", out_bits " << out_bits << ", n " << n);
    // Rows whose max is negative (about half of the one-code rows) take shift_exp_capped's x > 0 branch.
    sweep_rows(IoLoaders{}, run, RowRange{-32768, 32767, 15, scale}, 7, first);
    if (first) bad_rows(IoLoaders{}, run, RowRange{-32768, 32767, 15, scale}, 8, true);
    first = false;
  }
}

// Per-channel constants of I-BERT GELU from random scales (per tensor: one scale repeated, as the op does).
struct GeluChannels {
  std::vector<i64> b, c, one;
  std::vector<double> inv_scale, s_out;
  GeluChannels(std::mt19937_64& rng, i64 cols, bool per_channel) {
    std::uniform_real_distribution<double> lg(std::log(1e-5), std::log(1e-2));
    const double s0 = std::exp(lg(rng));
    for (i64 j = 0; j < cols; ++j) {
      const double s = per_channel ? std::exp(lg(rng)) : s0;
      const IbertGeluScale k = ibert_gelu_consts(s);
      REQUIRE(k.ok);
      b.push_back(k.k.b);
      c.push_back(k.k.c);
      one.push_back(k.k.one);
      inv_scale.push_back(1.0 / s);
      s_out.push_back(k.s_out);
    }
  }
  IbertGeluParams params(i64 numel, i64 cols) const {
    return IbertGeluParams{numel, cols, b.data(), c.data(), one.data(), INT32_MIN, INT32_MAX};
  }
};

// The elementwise reference: every element loaded (a bad one as 0), ok only when none was out of range; a float
// output writes NaN for a bad element instead and reports nothing.
template <class In, class Out>
bool ref_ibert_gelu(const In& in, const Out& out, const IbertGeluParams& p) {
  i64 ok = 1;
  for (i64 i = 0; i < p.numel; ++i) {
    const i64 c = i % p.cols;
    i64 e = 1;
    const i64 v = ibert_gelu(in.load(i, c, p.lo, p.hi, e), p.b[c], p.c[c], p.one[c]);
    if (Out::kPropagatesNaN && !e) {
      out.store_nan(i, c);  // float output: NaN for an element without a code (the NaN policy)
    } else {
      out.store(i, c, v);
    }
    ok &= e;
  }
  return ok != 0 || Out::kPropagatesNaN;
}

template <class In>
bool gelu_both(const In& in, const GeluChannels& ch, i64 numel, i64 cols, int* flag) {
  const IbertGeluParams p = ch.params(numel, cols);
  if constexpr (std::is_same_v<In, FloatInC>) {
    return run_both<float>(
        static_cast<size_t>(numel),
        [&](float* o) {
          return FloatOutC{o, ch.s_out.data()};
        },
        [&](FloatOutC o) { return launch_ibert_gelu(in, o, p, flag, nullptr); },
        [&](FloatOutC o) { return ref_ibert_gelu(in, o, p); }, "ibert_gelu (float)");
  } else {
    return run_both<int64_t>(
        static_cast<size_t>(numel), [](int64_t* o) { return IntOutC<int64_t>{o}; },
        [&](IntOutC<int64_t> o) { return launch_ibert_gelu(in, o, p, flag, nullptr); },
        [&](IntOutC<int64_t> o) { return ref_ibert_gelu(in, o, p); }, "ibert_gelu");
  }
}

TEST_CASE("sim: shift_gelu with the scale in device memory equals the host constants",
          "[sim][shift_gelu][device-scale]") {
  const int out_bits = 8, n = 23;
  const auto ok = [&](double s) { return valid_scale(s) && shift_gelu_scale_ok(s, n); };
  const auto [lo_bad, lo_good] = boundary(ok, 1e-9, 0.05);  // n = 23: about 2.3041e-3
  const auto [hi_good, hi_bad] = boundary(ok, 0.05, std::numeric_limits<double>::max());  // 1/(1.702·S) underflows
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  auto launch = [&](const double* dev, double s, const float* x, float* o, i64 rows, i64 cols) {
    ShiftGeluParams p{rows, cols, {}, -32768, 32767, dev, out_bits, n};
    if (dev == nullptr) p.c = shift_gelu_consts(s, out_bits, n);
    Flag f;
    const bool r = launch_shift_gelu(FloatIn{x, dev ? -1.0 : 1.0 / s},
                                     FloatOut{o, dev ? -1.0 : s * std::ldexp(1.0, -(out_bits - 1))}, p, f.get(),
                                     nullptr);
    REQUIRE(f.mem == 0x5a5a5a5a);  // float path: the flag is never touched
    return r;
  };
  device_scale_rows(launch, {lo_good, 0.01, 0.05, 1.0, 1e10}, {lo_bad, 0.0, -0.05, inf, nan}, -32768, 32767, 43);
  (void)hi_good;  // floats of x = q·S overflow float32 there: the upper end is checked on the constants alone
  REQUIRE(ok(hi_good));
  REQUIRE_FALSE(ok(hi_bad));
}

TEST_CASE("sim: ibert_gelu kernel equals its elementwise reference", "[sim][ibert_gelu]") {
  std::mt19937_64 rng(9);
  for (const bool per_channel : {false, true}) {
    for (const i64 cols : {i64(1), i64(17), i64(31), i64(32), i64(33), i64(197), i64(769), i64(3072)}) {
      const GeluChannels ch(rng, cols, per_channel);
      const i64 rows = cols >= 512 ? 3 : 13;
      const i64 n = rows * cols;
      for_each_int_dtype([&](auto tag) {
        using T = decltype(tag);
        const auto q = random_rows<T>(rng, rows, cols, 31, INT32_MIN, INT32_MAX);
        INFO(dtype_name<T>() << " codes, " << rows << " x " << cols << (per_channel ? ", per channel" : ""));
        Flag f;
        REQUIRE(gelu_both(IntInC<T>{q.data()}, ch, n, cols, f.get()));
        REQUIRE(gelu_both(IntInC<T>{q.data()}, ch, n, cols, nullptr));
      });
      // Float values x = q·S[c], codes below 2^22.
      std::vector<float> x(static_cast<size_t>(n));
      std::uniform_int_distribution<i64> code(-(i64(1) << 22), i64(1) << 22);
      for (i64 i = 0; i < n; ++i) x[i] = static_cast<float>(static_cast<double>(code(rng)) / ch.inv_scale[i % cols]);
      Flag f;
      REQUIRE(gelu_both(FloatInC{x.data(), ch.inv_scale.data()}, ch, n, cols, f.get()));
      // Out-of-range codes at the last element (the last thread with work), the first and one in the middle.
      for (const i64 at : {n - 1, i64(0), n / 2}) {
        auto q = random_codes<int64_t>(rng, static_cast<size_t>(n), INT32_MIN, INT32_MAX);
        q[at] = at % 2 ? i64(INT32_MAX) + 1 : i64(INT32_MIN) - 1;
        INFO("int64 code " << q[at] << " at " << at << " of " << n);
        Flag g;
        REQUIRE_FALSE(gelu_both(IntInC<int64_t>{q.data()}, ch, n, cols, g.get()));
        REQUIRE(g.mem == 1);
        auto y = x;
        y[at] = std::numeric_limits<float>::quiet_NaN();
        Flag h;  // the float path writes NaN there (compared with the reference) and leaves the flag alone
        REQUIRE(gelu_both(FloatInC{y.data(), ch.inv_scale.data()}, ch, n, cols, h.get()));
        REQUIRE(h.mem == 0x5a5a5a5a);
      }
    }
  }
  // One long channel row, and empty input (no launch).
  const GeluChannels ch(rng, 65536, true);
  const auto q = random_codes<int32_t>(rng, 65536, INT32_MIN, INT32_MAX);
  Flag f;
  REQUIRE(gelu_both(IntInC<int32_t>{q.data()}, ch, 65536, 65536, f.get()));
  const int64_t before = launches();
  REQUIRE(gelu_both(IntInC<int32_t>{nullptr}, ch, 0, 65536, f.get()));
  REQUIRE(launches() == before);
}

// The grid-stride loop: a grid smaller than the data (the launcher caps it at 65536 blocks, which the simulator
// cannot reach in a test's time) still covers every element once, with the right channel.
TEST_CASE("sim: ibert_gelu grid-stride loop covers the data with a small grid", "[sim][ibert_gelu]") {
  std::mt19937_64 rng(10);
  const i64 cols = 197, rows = 29, n = rows * cols;
  const GeluChannels ch(rng, cols, true);
  const IbertGeluParams p = ch.params(n, cols);
  const auto q = random_codes<int32_t>(rng, static_cast<size_t>(n), INT32_MIN, INT32_MAX);
  std::vector<int64_t> got(static_cast<size_t>(n), 0x55), want(got);
  int flag = 0;
  MNQ_LAUNCH(ibert_gelu_kernel, 3, kIbertGeluThreads, 0, nullptr)
  (IntInC<int32_t>{q.data()}, IntOutC<int64_t>{got.data()}, p, divider64(cols), &flag);
  check_cuda(cudaGetLastError(), "ibert_gelu_kernel");
  REQUIRE(ref_ibert_gelu(IntInC<int32_t>{q.data()}, IntOutC<int64_t>{want.data()}, p));
  require_same(got, want, "ibert_gelu, 3 blocks");
  REQUIRE(flag == 0);
}

}  // namespace

// The CUDA QAT path's constants, computed by a kernel from the scale in device memory, equal the host's for every
// channel; a scale outside the range gives NaN outputs in its channel only, and S_out = NaN.
TEST_CASE("sim: ibert_gelu constants from a device scale equal the host's", "[sim][ibert_gelu][device-scale]") {
  std::mt19937_64 rng(11);
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  const auto ok = [](double s) { return ibert_gelu_consts(s).ok; };
  const auto [lo_bad, lo_good] = boundary(ok, 1e-9, 1e-3);  // about 4.43647e-7
  const auto [hi_good, hi_bad] = boundary(ok, 1e-3, 10.0);  // about 2.5017198
  for (const i64 cols : {i64(1), i64(33), i64(300)}) {
    for (const bool per_channel : {false, true}) {
      std::uniform_real_distribution<double> lg(std::log(1e-5), std::log(1e-2));
      std::vector<double> scale(per_channel ? static_cast<size_t>(cols) : 1);
      for (double& v : scale) v = std::exp(lg(rng));
      const std::vector<double> special{lo_good, hi_good, lo_bad, hi_bad, 0.0, -0.05, inf, nan};
      if (per_channel && cols >= 33) std::copy(special.begin(), special.end(), scale.begin() + 3);
      const i64 n_scale = static_cast<i64>(scale.size());
      std::vector<i64> k(static_cast<size_t>(3 * cols), 7);
      std::vector<double> sc(static_cast<size_t>(2 * cols), 7.0), s_out(scale.size(), 7.0);
      launch_ibert_gelu_consts(scale.data(), n_scale, cols, k.data(), sc.data(), s_out.data(), nullptr);
      INFO(cols << " channels" << (per_channel ? ", per channel" : ""));
      for (i64 j = 0; j < cols; ++j) {
        const double s = scale[per_channel ? j : 0];
        const IbertGeluScale h = ibert_gelu_consts(s);
        INFO("channel " << j << ", scale " << s);
        REQUIRE(h.ok == !std::isnan(sc[j]));
        if (!h.ok) continue;
        REQUIRE(k[j] == h.k.b);
        REQUIRE(k[cols + j] == h.k.c);
        REQUIRE(k[2 * cols + j] == h.k.one);
        REQUIRE(sc[j] == 1.0 / s);
        REQUIRE(sc[cols + j] == h.s_out);
        if (j < n_scale) REQUIRE(s_out[j] == h.s_out);
      }
      // The kernel with these constants: valid channels equal the host constants' output, bad ones are NaN.
      const i64 rows = 5, n = rows * cols;
      std::vector<float> x(static_cast<size_t>(n));
      std::uniform_int_distribution<i64> code(-(i64(1) << 22), i64(1) << 22);
      for (i64 i = 0; i < n; ++i) {
        const double s = scale[per_channel ? i % cols : 0];
        x[i] = ok(s) ? static_cast<float>(static_cast<double>(code(rng)) * s) : 1.0f;
      }
      const IbertGeluParams p{n, cols, k.data(), k.data() + cols, k.data() + 2 * cols, INT32_MIN, INT32_MAX};
      std::vector<float> got(static_cast<size_t>(n), 7.0f);
      Flag f;
      REQUIRE(launch_ibert_gelu(FloatInC{x.data(), sc.data()}, FloatOutC{got.data(), sc.data() + cols}, p, f.get(),
                                nullptr));
      REQUIRE(f.mem == 0x5a5a5a5a);
      for (i64 i = 0; i < n; ++i) {
        const double s = scale[per_channel ? i % cols : 0];
        const IbertGeluScale h = ibert_gelu_consts(s);
        if (!h.ok) {
          REQUIRE(std::isnan(got[i]));
          continue;
        }
        i64 e = 1;
        const i64 v = ibert_gelu(FloatInC{x.data(), &sc[i % cols]}.load(i, 0, INT32_MIN, INT32_MAX, e), h.k.b, h.k.c,
                                 h.k.one);
        REQUIRE(e == 1);
        REQUIRE(got[i] == static_cast<float>(static_cast<double>(v) * h.s_out));
      }
    }
  }
}
