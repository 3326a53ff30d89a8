// The sweep every row-wise kernel goes through in the simulator: every input dtype its loaders take, the row
// lengths of kCols (+ one row of 65536), row counts that leave a block partial, both ends of the declared range,
// unchecked launches, empty inputs, and codes outside the range in tail lanes (which must set the error flag).
//
// An op is given as run(in, rows, cols, flag) → the launcher's answer, after the run itself required the kernel's
// output to equal the reference's bit for bit (see run_both). `in` is a loader of io.h (IntIn<T>, FloatIn) or of
// layernorm_common.h (LnIntIn<T>, LnFloatIn), made by a loaders object L: L.ints(const T*), L.floats(const float*,
// scale).
#pragma once

#include <string>
#include <type_traits>
#include <vector>

#include "kernels/io.h"
#include "sim_util.h"

namespace mnq {
namespace simtest {

template <class T>
const char* dtype_name() {
  if constexpr (std::is_same_v<T, uint8_t>) return "uint8";
  if constexpr (std::is_same_v<T, int8_t>) return "int8";
  if constexpr (std::is_same_v<T, int16_t>) return "int16";
  if constexpr (std::is_same_v<T, int32_t>) return "int32";
  if constexpr (std::is_same_v<T, int64_t>) return "int64";
  return "?";
}

template <class F>
void for_each_int_dtype(F&& f) {
  f(uint8_t{});
  f(int8_t{});
  f(int16_t{});
  f(int32_t{});
  f(int64_t{});
}

// Runs the kernel and the reference into two buffers of n V's (filled alike beforehand): both must give the same
// ok answer and, when ok, the same bits. make(ptr) builds the op's output object over a buffer. Returns ok.
template <class V, class Make, class Launch, class Ref>
bool run_both(size_t n, Make make, Launch launch, Ref ref, const std::string& what) {
  std::vector<V> got(n, V(0x55)), want(n, V(0x55));
  const bool ok = launch(make(got.data()));
  REQUIRE(ok == ref(make(want.data())));
  if (ok) require_same(got, want, what);
  return ok;
}

// io.h's loaders: integer codes of dtype T, float values on a scale.
struct IoLoaders {
  template <class T>
  kernels::IntIn<T> ints(const T* p) const {
    return kernels::IntIn<T>{p};
  }
  kernels::FloatIn floats(const float* p, double scale) const { return kernels::FloatIn{p, 1.0 / scale}; }
};

// Declared range [lo, hi]; the random rows take magnitudes up to 2^max_bits; float values are codes times `scale`.
struct RowRange {
  i64 lo, hi;
  int max_bits;
  double scale;
};

// every_dtype = false runs the integer part with int32 codes only (for further constants of an op: the dtype
// changes the loader, not the math).
template <class Loaders, class Run>
void sweep_rows(const Loaders& L, Run run, const RowRange& g, uint64_t seed, bool every_dtype = true) {
  std::mt19937_64 rng(seed);
  for_each_int_dtype([&](auto tag) {
    using T = decltype(tag);
    if (!every_dtype && !std::is_same_v<T, int32_t>) return;
    for (const i64 cols : kCols) {
      const i64 rows = rows_for(cols);
      auto q = random_rows<T>(rng, rows, cols, g.max_bits, g.lo, g.hi);
      q.front() = static_cast<T>(std::max<i64>(g.lo, std::numeric_limits<T>::lowest()));  // both range ends
      q.back() = static_cast<T>(std::min<i64>(g.hi, std::numeric_limits<T>::max()));
      INFO(dtype_name<T>() << " codes, " << rows << " rows of " << cols);
      Flag f;
      REQUIRE(run(L.ints(q.data()), rows, cols, f.get()));
      REQUIRE(f.mem == 0);
      if (cols == 33) REQUIRE(run(L.ints(q.data()), rows, cols, nullptr));  // unchecked launch
    }
  });
  // Float input (the QAT forms): codes below 2^22 so that x = q·S is exact enough to round back to q.
  const i64 flo = std::max<i64>(g.lo, -(i64(1) << std::min(g.max_bits, 22)));
  const i64 fhi = std::min<i64>(g.hi, i64(1) << std::min(g.max_bits, 22));
  for (const i64 cols : kCols) {
    const i64 rows = rows_for(cols);
    const auto x = random_values(rng, static_cast<size_t>(rows * cols), flo, fhi, g.scale);
    INFO("float values, " << rows << " rows of " << cols);
    Flag f;
    REQUIRE(run(L.floats(x.data(), g.scale), rows, cols, f.get()));
  }
  // One long row, and empty inputs (no launch: a grid of 0 blocks is invalid).
  {
    const auto q = random_codes<int32_t>(rng, 65536, g.lo, g.hi);
    const auto x = random_values(rng, 65536, flo, fhi, g.scale);
    Flag f;
    REQUIRE(run(L.ints(q.data()), 1, 65536, f.get()));
    REQUIRE(run(L.floats(x.data(), g.scale), 1, 65536, f.get()));
  }
  const int64_t before = launches();
  Flag f;
  REQUIRE(run(L.ints(static_cast<const int8_t*>(nullptr)), 0, 197, f.get()));
  REQUIRE(run(L.floats(nullptr, g.scale), 0, 33, f.get()));
  REQUIRE(launches() == before);
}

// A code outside [lo, hi] in one element — the last of the last row (a tail lane of a partial block), the first
// of the last row, the last of row 0 — must make the checked launch return false and set the flag. For int64
// codes (and int32 when the range is narrower) and for float values (NaN, and a code far outside: 64·(hi + 1) on
// the sweep's scale, still outside on a scale up to 8 times coarser). float_nan: the op's float launch follows the
// NaN policy (NaN row, the others exact — `run` compares them with a reference that writes NaN rows — and the
// flag untouched) instead of reporting.
template <class Loaders, class Run>
void bad_rows(const Loaders& L, Run run, const RowRange& g, uint64_t seed, bool float_nan = false) {
  std::mt19937_64 rng(seed);
  auto place = [](i64 rows, i64 cols) { return std::vector<i64>{rows * cols - 1, (rows - 1) * cols, cols - 1}; };
  auto ints = [&](auto tag) {
    using T = decltype(tag);
    for (const i64 cols : kCols) {
      const i64 rows = rows_for(cols);
      for (const i64 at : place(rows, cols)) {
        for (const i64 v : {g.hi + 1, g.lo - 1}) {
          if (v > std::numeric_limits<T>::max() || v < std::numeric_limits<T>::lowest()) continue;
          auto q = random_codes<T>(rng, static_cast<size_t>(rows * cols), g.lo, g.hi);
          q[at] = static_cast<T>(v);
          INFO(dtype_name<T>() << " code " << v << " at " << at << " of " << rows << " rows of " << cols);
          Flag f;
          REQUIRE_FALSE(run(L.ints(q.data()), rows, cols, f.get()));
          REQUIRE(f.mem == 1);
        }
      }
    }
  };
  ints(int64_t{});
  if (g.hi < INT32_MAX) ints(int32_t{});
  for (const i64 cols : kCols) {
    const i64 rows = rows_for(cols);
    for (const i64 at : place(rows, cols)) {
      for (const float bad :
           {std::numeric_limits<float>::quiet_NaN(), static_cast<float>(64.0 * (g.hi + 1.0) * g.scale)}) {
        auto x = random_values(rng, static_cast<size_t>(rows * cols), -100, 100, g.scale);
        x[at] = bad;
        INFO("float " << bad << " at " << at << " of " << rows << " rows of " << cols);
        Flag f;
        if (float_nan) {
          REQUIRE(run(L.floats(x.data(), g.scale), rows, cols, f.get()));
          REQUIRE(f.mem == 0x5a5a5a5a);
        } else {
          REQUIRE_FALSE(run(L.floats(x.data(), g.scale), rows, cols, f.get()));
          REQUIRE(f.mem == 1);
        }
      }
    }
  }
}

// The boundary of a scale range between a scale `a` and a scale `b` on which ok() differs: the two adjacent doubles
// where it changes, {the one on a's side, the one on b's side} (bisection).
template <class Ok>
std::pair<double, double> boundary(Ok ok, double a, double b) {
  const bool oa = ok(a);
  REQUIRE(oa != ok(b));
  for (;;) {
    const double mid = a + 0.5 * (b - a);
    if (mid == a || mid == b) return {a, b};
    (ok(mid) == oa ? a : b) = mid;
  }
}

// The CUDA QAT launch with the scale in device memory (params.dev_scale) against the launch with host constants:
// launch(dev, S, x, out, rows, cols) runs the op on float values x with dev = &S (the kernel computes its constants,
// 1/S and S_out) or dev = nullptr (the host's constants for S). For every scale of `good` (both ends of the op's
// range among them) the outputs are equal bit for bit, also with a bad code (NaN) in a tail lane: its row all NaN,
// the other rows exact, the flag untouched. For every scale of `bad` (outside the range) the whole output is NaN.
template <class Launch>
void device_scale_rows(Launch launch, const std::vector<double>& good, const std::vector<double>& bad, i64 lo, i64 hi,
                       uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (const double s : good) {
    for (const i64 cols : {i64(1), i64(33), i64(197)}) {
      const i64 rows = 13;
      const size_t n = static_cast<size_t>(rows * cols);
      auto x = random_values(rng, n, std::max<i64>(lo, -(1 << 20)), std::min<i64>(hi, 1 << 20), s);
      for (const bool with_bad : {false, true}) {
        if (with_bad) x[n - 1] = std::numeric_limits<float>::quiet_NaN();  // the last lane of a partial block
        std::vector<float> got(n, 7.0f), want(n, 7.0f);
        INFO("scale " << s << ", " << rows << " rows of " << cols << (with_bad ? ", NaN in the last element" : ""));
        REQUIRE(launch(&s, s, x.data(), got.data(), rows, cols));
        REQUIRE(launch(nullptr, s, x.data(), want.data(), rows, cols));
        for (size_t i = 0; i < n; ++i) {
          if (with_bad && static_cast<i64>(i) >= (rows - 1) * cols) {
            REQUIRE(std::isnan(got[i]));
            want[i] = got[i];
          }
        }
        require_same(got, want, "device scale vs host constants");
      }
    }
  }
  for (const double s : bad) {
    const auto x = random_values(rng, 9 * 33, -100, 100, 0.01);
    std::vector<float> got(9 * 33, 7.0f);
    INFO("scale " << s << " outside the range");
    REQUIRE(launch(&s, s, x.data(), got.data(), 9, 33));
    for (const float v : got) REQUIRE(std::isnan(v));
  }
}

}  // namespace simtest
}  // namespace mnq
