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
      all = false;
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
      all = false;
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
      all = false;
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
    if (first) bad_rows(IoLoaders{}, run, RowRange{INT32_MIN, INT32_MAX, 31, scale}, 2);
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
    if (first) bad_rows(IoLoaders{}, run, RowRange{INT32_MIN, INT32_MAX, 31, scale}, 4);
    first = false;
  }
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
    if (first) bad_rows(IoLoaders{}, run, RowRange{INT32_MIN, INT32_MAX, 31, scale}, 6);
    first = false;
  }
}

}  // namespace
