// The softmax kernels (shiftmax.cuh, ibert_softmax.cuh, log_int_softmax.cuh) in the simulator, through their
// launch_* functions, against per-row references written from the scalar math of their .h (the loops of the CPU
// backends): bit-exact for every loader dtype and shape of rowwise.h.
#include "kernels/ibert_softmax.cuh"
#include "kernels/io.h"
#include "kernels/log_int_softmax.cuh"
#include "kernels/shiftmax.cuh"
#include "rowwise.h"

using namespace mnq::kernels;
using namespace mnq::simtest;

namespace {

template <class In>
constexpr bool kIsFloat = std::is_same_v<In, FloatIn>;

// The row's codes and their max; false when one lies outside [lo, hi].
template <class In>
bool load_row(const In& in, i64 base, i64 cols, i64 lo, i64 hi, std::vector<i64>& q, i64& m) {
  bool ok = true;
  q.resize(static_cast<size_t>(cols));
  m = kInt64Min;
  for (i64 j = 0; j < cols; ++j) {
    q[j] = in.load(base + j, lo, hi, ok);
    m = std::max(m, q[j]);
  }
  return ok;
}

template <class In, class Out>
bool ref_shiftmax(const In& in, const Out& out, const ShiftmaxParams& p) {
  bool all = true;
  std::vector<i64> q;
  for (i64 r = 0; r < p.rows; ++r) {
    i64 m = 0;
    if (!load_row(in, r * p.cols, p.cols, p.lo, p.hi, q, m)) {
      if (!Out::kPropagatesNaN) all = false;  // a float row is all NaN (the NaN policy), codes are reported
      for (i64 j = 0; j < p.cols && Out::kPropagatesNaN; ++j) out.store_nan(r * p.cols + j);
      continue;
    }
    i64 s = 0;
    for (const i64 v : q) s += shiftmax_exp(static_cast<int32_t>(v), static_cast<int32_t>(m), p.c);
    const int32_t f = shiftmax_factor(s);
    for (i64 j = 0; j < p.cols; ++j) {
      out.store(r * p.cols + j,
                shiftmax_out(shiftmax_exp(static_cast<int32_t>(q[j]), static_cast<int32_t>(m), p.c), f, p.c));
    }
  }
  return all;
}

template <class In, class Out>
bool ref_ibert_softmax(const In& in, const Out& out, const IbertSoftmaxParams& p) {
  bool all = true;
  std::vector<i64> q;
  for (i64 r = 0; r < p.rows; ++r) {
    i64 m = 0;
    if (!load_row(in, r * p.cols, p.cols, p.lo, p.hi, q, m)) {
      if (!Out::kPropagatesNaN) all = false;  // a float row is all NaN (the NaN policy), codes are reported
      for (i64 j = 0; j < p.cols && Out::kPropagatesNaN; ++j) out.store_nan(r * p.cols + j);
      continue;
    }
    i64 s = 0;
    for (const i64 v : q) s += ibert_softmax_exp(v - m, p.c);
    const i64 f = ibert_softmax_factor(s);
    for (i64 j = 0; j < p.cols; ++j)
      out.store(r * p.cols + j, ibert_softmax_out(ibert_softmax_exp(q[j] - m, p.c), f, p.c));
  }
  return all;
}

template <class In, class Out>
bool ref_log_int_softmax(const In& in, const Out& out, const LogIntSoftmaxParams& p) {
  bool all = true;
  std::vector<i64> q;
  for (i64 r = 0; r < p.rows; ++r) {
    i64 m = 0;
    if (!load_row(in, r * p.cols, p.cols, p.lo, p.hi, q, m)) {
      if (!Out::kPropagatesNaN) all = false;  // a float row is all NaN (the NaN policy), codes are reported
      for (i64 j = 0; j < p.cols && Out::kPropagatesNaN; ++j) out.store_nan(r * p.cols + j);
      continue;
    }
    u128 s = 0;
    for (const i64 v : q) s += static_cast<u128>(ibert_exp(v - m, p.c.ex));
    for (i64 j = 0; j < p.cols; ++j) out.store(r * p.cols + j, lis_code(s, ibert_exp(q[j] - m, p.c.ex), p.c));
  }
  return all;
}

TEST_CASE("sim: shiftmax kernel equals its row reference", "[sim][shiftmax]") {
  bool first = true;  // every dtype, and the out-of-range codes, with the first constants
  for (const auto& [scale, out_bits, n] : {std::tuple{0.05, 8, 15}, std::tuple{0.3, 16, 20}, std::tuple{1e-4, 2, 1}}) {
    const ShiftmaxConsts c = shiftmax_consts(scale, out_bits, n);
    const double os = std::ldexp(1.0, -(out_bits - 1));
    auto run = [&](auto in, i64 rows, i64 cols, int* flag) {
      const ShiftmaxParams p{rows, cols, c, INT32_MIN, INT32_MAX};
      const size_t len = static_cast<size_t>(rows * cols);
      if constexpr (kIsFloat<decltype(in)>) {
        return run_both<float>(
            len,
            [&](float* o) {
              return FloatOut{o, os};
            },
            [&](FloatOut o) { return launch_shiftmax(in, o, p, flag, nullptr); },
            [&](FloatOut o) { return ref_shiftmax(in, o, p); }, "shiftmax (float)");
      } else {
        return run_both<int32_t>(
            len, [](int32_t* o) { return IntOut<int32_t>{o}; },
            [&](IntOut<int32_t> o) { return launch_shiftmax(in, o, p, flag, nullptr); },
            [&](IntOut<int32_t> o) { return ref_shiftmax(in, o, p); }, "shiftmax");
      }
    };
    INFO("scale " << scale << ", out_bits " << out_bits << ", n " << n);
    sweep_rows(IoLoaders{}, run, RowRange{INT32_MIN, INT32_MAX, 31, scale}, 1, first);
    if (first) bad_rows(IoLoaders{}, run, RowRange{INT32_MIN, INT32_MAX, 31, scale}, 2, true);
    first = false;
  }
}

TEST_CASE("sim: ibert_softmax kernel equals its row reference", "[sim][ibert_softmax]") {
  bool first = true;  // every dtype, and the out-of-range codes, with the first constants
  for (const auto& [scale, out_bits] : {std::pair{0.05, 8}, std::pair{1.6, 16}, std::pair{2e-5, 2}}) {
    const IbertSoftmaxConsts c = ibert_softmax_consts(scale, out_bits);
    const double os = std::ldexp(1.0, -out_bits);
    auto run = [&](auto in, i64 rows, i64 cols, int* flag) {
      const IbertSoftmaxParams p{rows, cols, c, INT32_MIN, INT32_MAX};
      const size_t len = static_cast<size_t>(rows * cols);
      if constexpr (kIsFloat<decltype(in)>) {
        return run_both<float>(
            len,
            [&](float* o) {
              return FloatOut{o, os};
            },
            [&](FloatOut o) { return launch_ibert_softmax(in, o, p, flag, nullptr); },
            [&](FloatOut o) { return ref_ibert_softmax(in, o, p); }, "ibert_softmax (float)");
      } else {
        return run_both<int32_t>(
            len, [](int32_t* o) { return IntOut<int32_t>{o}; },
            [&](IntOut<int32_t> o) { return launch_ibert_softmax(in, o, p, flag, nullptr); },
            [&](IntOut<int32_t> o) { return ref_ibert_softmax(in, o, p); }, "ibert_softmax");
      }
    };
    INFO("scale " << scale << ", out_bits " << out_bits);
    sweep_rows(IoLoaders{}, run, RowRange{INT32_MIN, INT32_MAX, 31, scale}, 3, first);
    if (first) bad_rows(IoLoaders{}, run, RowRange{INT32_MIN, INT32_MAX, 31, scale}, 4, true);
    first = false;
  }
}

TEST_CASE("sim: shiftmax with the scale in device memory equals the host constants", "[sim][shiftmax][device-scale]") {
  const int out_bits = 8, n = 15;
  const auto ok = [&](double s) { return shiftmax_scale_ok(s, n); };
  const auto [lo_bad, lo_good] = boundary(ok, 1e-9, 0.05);  // ceil(1/S)·2^n < 2^31 − 1: S ≥ 1/65535
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  const double os = std::ldexp(1.0, -(out_bits - 1));
  auto launch = [&](const double* dev, double s, const float* x, float* o, i64 rows, i64 cols) {
    ShiftmaxParams p{rows, cols, {}, INT32_MIN, INT32_MAX, dev, out_bits, n};
    if (dev == nullptr) p.c = shiftmax_consts(s, out_bits, n);
    Flag f;
    const bool r = launch_shiftmax(FloatIn{x, dev ? -1.0 : 1.0 / s}, FloatOut{o, os}, p, f.get(), nullptr);
    REQUIRE(f.mem == 0x5a5a5a5a);  // float path: the flag is never touched
    return r;
  };
  device_scale_rows(launch, {lo_good, 0.05, 0.3, 1.0, 1e6, 1e300}, {lo_bad, 0.0, -0.05, inf, nan}, INT32_MIN, INT32_MAX,
                    41);
}

TEST_CASE("sim: ibert_softmax with the scale in device memory equals the host constants",
          "[sim][ibert_softmax][device-scale]") {
  const int out_bits = 8;
  const auto [lo_bad, lo_good] = boundary(ibert_exp_scale_ok, 1e-9, 0.05);  // about 1.8029e-5
  const auto [hi_good, hi_bad] = boundary(ibert_exp_scale_ok, 0.05, 10.0);  // about 1.67096
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  const double os = std::ldexp(1.0, -out_bits);
  auto launch = [&](const double* dev, double s, const float* x, float* o, i64 rows, i64 cols) {
    IbertSoftmaxParams p{rows, cols, {}, INT32_MIN, INT32_MAX, dev, out_bits};
    if (dev == nullptr) p.c = ibert_softmax_consts(s, out_bits);
    Flag f;
    const bool r = launch_ibert_softmax(FloatIn{x, dev ? -1.0 : 1.0 / s}, FloatOut{o, os}, p, f.get(), nullptr);
    REQUIRE(f.mem == 0x5a5a5a5a);
    return r;
  };
  device_scale_rows(launch, {lo_good, 1e-3, 0.05, 0.3, hi_good}, {lo_bad, hi_bad, 0.0, -0.05, inf, nan}, INT32_MIN,
                    INT32_MAX, 42);
}

TEST_CASE("sim: log_int_softmax with the scale in device memory equals the host constants",
          "[sim][log_int_softmax][device-scale]") {
  const int bits = 4;
  const auto [lo_bad, lo_good] = boundary(ibert_exp_scale_ok, 1e-9, 0.05);
  const auto [hi_good, hi_bad] = boundary(ibert_exp_scale_ok, 0.05, 10.0);
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  auto launch = [&](const double* dev, double s, const float* x, float* o, i64 rows, i64 cols) {
    LogIntSoftmaxParams p{rows, cols, {}, INT32_MIN, INT32_MAX, dev, bits};
    if (dev == nullptr) p.c = log_int_softmax_consts(s, bits);
    Flag f;
    const bool r = launch_log_int_softmax(FloatIn{x, dev ? -1.0 : 1.0 / s}, LisValueOut{o}, p, f.get(), nullptr);
    REQUIRE(f.mem == 0x5a5a5a5a);  // float path: the flag is never touched
    return r;
  };
  device_scale_rows(launch, {lo_good, 1e-3, 0.05, 0.3, hi_good}, {lo_bad, hi_bad, 0.0, -0.05, inf, nan}, INT32_MIN,
                    INT32_MAX, 43);
}

TEST_CASE("sim: log_int_softmax kernel equals its row reference", "[sim][log_int_softmax]") {
  bool first = true;  // every dtype, and the out-of-range codes, with the first constants
  for (const auto& [scale, bits] : {std::pair{0.05, 4}, std::pair{1.6, 8}, std::pair{2e-5, 2}}) {
    const LogIntSoftmaxConsts c = log_int_softmax_consts(scale, bits);
    auto run = [&](auto in, i64 rows, i64 cols, int* flag) {
      const LogIntSoftmaxParams p{rows, cols, c, INT32_MIN, INT32_MAX};
      const size_t len = static_cast<size_t>(rows * cols);
      if constexpr (kIsFloat<decltype(in)>) {
        return run_both<float>(
            len, [](float* o) { return LisValueOut{o}; },
            [&](LisValueOut o) { return launch_log_int_softmax(in, o, p, flag, nullptr); },
            [&](LisValueOut o) { return ref_log_int_softmax(in, o, p); }, "log_int_softmax (float)");
      } else {
        // one buffer: the codes, then the mask bytes
        return run_both<uint8_t>(
            2 * len,
            [&](uint8_t* o) {
              return LisCodeOut{o, o + len};
            },
            [&](LisCodeOut o) { return launch_log_int_softmax(in, o, p, flag, nullptr); },
            [&](LisCodeOut o) { return ref_log_int_softmax(in, o, p); }, "log_int_softmax (code, mask)");
      }
    };
    INFO("scale " << scale << ", bits " << bits);
    sweep_rows(IoLoaders{}, run, RowRange{INT32_MIN, INT32_MAX, 31, scale}, 5, first);
    if (first) bad_rows(IoLoaders{}, run, RowRange{INT32_MIN, INT32_MAX, 31, scale}, 6, true);
    first = false;
  }
}

}  // namespace
