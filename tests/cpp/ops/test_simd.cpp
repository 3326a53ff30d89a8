// The quantizer's vector paths (csrc/cpu/quant_simd.cpp) against the scalar definition (kernels/quant.h), element by
// element, on every path this CPU has (AVX-512, AVX2; the scalar path is the reference): every length from 0 to
// 40 and a long one (the vector bodies and their scalar tails), ties and their float neighbours, both ends of the
// clamp range and just beyond, ±0, subnormals, ±inf, NaN, per-tensor and per-column scales.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "csrc/cpu/isa.h"
#include "csrc/cpu/quant_simd.h"
#include "tests/cpp/ops/simd_test_util.h"

using namespace mnq::kernels;
using mnq::ops::cpu::Isa;
namespace cpu = mnq::ops::cpu;
using simd_test::QuantRun;
using simd_test::require_same;
using simd_test::same_bits;
using simd_test::vector_paths;

namespace {


// Floats around every tie (k + 1/2)·s and every integer k·s for k in [lo − 3, hi + 3], plus the special values.
std::vector<float> quantize_inputs(double s, i64 lo, i64 hi, std::mt19937& rng) {
  std::vector<float> xs;
  const i64 step = std::max<i64>(1, (hi - lo) / 300);  // wide ranges: a sample of the ties, both ends included
  std::vector<double> at;
  for (i64 k = lo - 3; k <= hi + 3; k += step) at.push_back(static_cast<double>(k));
  for (i64 k = hi - 3; k <= hi + 3; ++k) at.push_back(static_cast<double>(k));
  for (i64 k = lo - 3; k <= lo + 3; ++k) at.push_back(static_cast<double>(k));
  for (const double k : at) {
    for (const double frac : {0.0, 0.5}) {
      float x = static_cast<float>((k + frac) * s);
      for (int u = 0; u < 4; ++u) x = std::nextafter(x, -INFINITY);
      for (int u = 0; u < 9; ++u, x = std::nextafter(x, INFINITY)) xs.push_back(x);
    }
  }
  // Near-ties of 19-bit codes where p = fl32(x·fl32(1/s)) and fl64(x / s) round to different integers (found by
  // search for the scales in the test's list): only the certification's relative margin sends them to the scalar
  // definition.
  for (const float v : {-9305.0244140625f, -948.8858642578125f, -358753.71875f, -14183.982421875f}) xs.push_back(v);
  const float inf = std::numeric_limits<float>::infinity();
  for (const float v : {0.0f, -0.0f, 1e-45f, -1e-45f, 1e-38f, inf, -inf, std::nanf(""), 3e38f, -3e38f}) xs.push_back(v);
  std::normal_distribution<float> n(0.0f, static_cast<float>(hi * s));
  for (int i = 0; i < 2000; ++i) xs.push_back(n(rng));
  std::shuffle(xs.begin(), xs.end(), rng);
  return xs;
}

// Runs one span on `path` over xs[0, n) with scales s (per column when per_column) into codes and fake values.
QuantRun run_quantize(Isa path, const std::vector<float>& xs, int64_t i0, int64_t n, const std::vector<double>& s,
                      bool per_column, i64 lo, i64 hi) {
  std::vector<float> r(s.size());
  for (size_t c = 0; c < s.size(); ++c) r[c] = static_cast<float>(1.0 / s[c]);
  QuantRun o{std::vector<int32_t>(xs.size(), -7), std::vector<float>(xs.size(), -7.0f), 0, 0};
  cpu::QuantSpan sp{xs.data(), i0, n, s.data(), r.data(), per_column, lo, hi};
  // As the op does: float32 fake stores where fake_store32 certifies the range (AVX-512, per tensor, bits ≤ 10).
  if (!per_column) sp.store32 = cpu::fake_store32(path, s[0], lo, hi);
  o.bad_code = cpu::quantize_span(path, sp, CodeOut{o.code.data()});
  o.bad_fake = cpu::quantize_span(path, sp, FakeOut{o.fake.data()});
  return o;
}

}  // namespace

TEST_CASE("isa: the cap selects a path, unknown names are rejected", "[simd]") {
  const char* before = cpu::set_isa("scalar");
  REQUIRE(cpu::isa() == Isa::kScalar);
  cpu::set_isa("avx512");
  REQUIRE(cpu::isa() == cpu::supported_isa());
  REQUIRE_THROWS_WITH(cpu::set_isa("sse9"), Catch::Contains("expected scalar, avx2 or avx512"));
  cpu::set_isa(before);
}

TEST_CASE("quantize vector paths equal the scalar definition", "[simd][quant]") {
  std::mt19937 rng(7);
  for (const int bits : {2, 8, 16, 19}) {
    const i64 lo = -(i64(1) << (bits - 1)), hi = (i64(1) << (bits - 1)) - 1;
    for (const double s : {6.0 / 127, 1.0, 0.1, 1.0 / 3, 3.7e-5, 2.5e3, 0.03623331949513469, 0.0036237419204321816,
                           1.3756658904315, 0.05597169235133791, 0.064913024504979336}) {
      const std::vector<float> xs = quantize_inputs(s, lo, hi, rng);
      const std::vector<double> scale{s};
      REQUIRE(cpu::quantize_simd_ok(scale.data(), 1, hi));
      const QuantRun want = run_quantize(Isa::kScalar, xs, 0, static_cast<int64_t>(xs.size()), scale, false, lo, hi);
      for (const Isa path : vector_paths()) {
        INFO("bits " << bits << " s " << s << " path " << cpu::isa_name(path));
        require_same(want, run_quantize(path, xs, 0, static_cast<int64_t>(xs.size()), scale, false, lo, hi));
        for (int64_t n = 0; n <= 40; ++n) {  // every tail length, at an odd offset
          require_same(run_quantize(Isa::kScalar, xs, 3, n, scale, false, lo, hi),
                       run_quantize(path, xs, 3, n, scale, false, lo, hi));
        }
      }
    }
  }
  REQUIRE_FALSE(cpu::quantize_simd_ok(std::vector<double>{1.0}.data(), 1, (i64(1) << 19) - 1));  // 20 bits
  REQUIRE_FALSE(cpu::quantize_simd_ok(std::vector<double>{1e-31}.data(), 1, 127));
}

TEST_CASE("fake_store32 certifies float32 fake stores by enumerating the codes", "[simd][quant]") {
  auto agrees = [](const cpu::FakeStore32& f, double s, i64 lo, i64 hi) {  // the kernels' formula, scalar
    for (i64 q = lo; q <= hi; ++q) {
      const float qf = static_cast<float>(q);
      const float v = std::fma(qf, f.hi, qf * f.lo);
      if (!same_bits(v, static_cast<float>(static_cast<double>(q) * s))) return false;
    }
    return true;
  };
  // AVX-512 and AVX2 (each checks with its own instructions; the same IEEE operations, so the same verdicts).
  for (const Isa path : {Isa::kAvx512, Isa::kAvx2}) {
    if (cpu::supported_isa() < path) continue;
    INFO("path " << cpu::isa_name(path));
    for (const double s : {6.0 / 127, 0.05, 1.0 / 3, 3.7e-5, 2.5e3}) {
      const cpu::FakeStore32 f = cpu::fake_store32(path, s, -128, 127);
      INFO("s " << s);
      REQUIRE(f.ok);
      REQUIRE(agrees(f, s, -128, 127));
    }
    // The one scale in 2·10^6 random ones (2^−20..2^5) where a code's float32 form rounds differently (q = −120):
    // rejected, so the kernels keep the float64 product (the quantize test above runs it).
    const double odd = 0.064913024504979336;
    REQUIRE_FALSE(cpu::fake_store32(path, odd, -128, 127).ok);
    // Its verdict is the scalar enumeration's, both ways (10 bits: some scales fail, some pass).
    int passed = 0;
    for (int i = 1; i <= 40; ++i) {
      const double s = 6.0 / (127 + 3 * i) * (1.0 + 1e-3 * i);
      const cpu::FakeStore32 f = cpu::fake_store32(path, s, -512, 511);
      cpu::FakeStore32 pair = f;
      pair.hi = static_cast<float>(s);
      pair.lo = static_cast<float>(s - static_cast<double>(pair.hi));
      INFO("s " << s);
      REQUIRE(f.ok == agrees(pair, s, -512, 511));
      passed += f.ok;
    }
    CHECK(passed > 0);
    REQUIRE_FALSE(cpu::fake_store32(path, 6.0 / 127, -(i64(1) << 15), (i64(1) << 15) - 1).ok);  // too many
    REQUIRE_FALSE(cpu::fake_store32(path, -0.05, -128, 127).ok);                                // S ≤ 0
    REQUIRE_FALSE(cpu::fake_store32(path, std::nan(""), -128, 127).ok);
    // A range whose last step of 8 / 16 codes is partly past hi (the check compares those lanes too, or masks them).
    const cpu::FakeStore32 f = cpu::fake_store32(path, 0.05, -100, 5);  // 106 codes
    REQUIRE(f.ok == agrees(f, 0.05, -100, 5));
  }
  REQUIRE_FALSE(cpu::fake_store32(Isa::kScalar, 0.05, -128, 127).ok);
}

TEST_CASE("quantize vector paths with per-column scales", "[simd][quant]") {
  std::mt19937 rng(11);
  for (const int64_t cols : {1, 7, 8, 15, 16, 17, 33, 387}) {
    std::vector<double> s(cols);
    std::vector<float> r(cols);
    for (int64_t c = 0; c < cols; ++c) {
      s[c] = std::ldexp(6.0 / 127, static_cast<int>(c % 4)) * (1.0 + 0.01 * static_cast<double>(c));
      r[c] = static_cast<float>(1.0 / s[c]);
    }
    std::vector<float> xs = quantize_inputs(6.0 / 127, -128, 127, rng);
    const int64_t rows = static_cast<int64_t>(xs.size()) / cols;
    auto run = [&](Isa path) {
      QuantRun o{std::vector<int32_t>(xs.size(), -7), std::vector<float>(xs.size(), -7.0f), 0, 0};
      for (int64_t row = 0; row < rows; ++row) {
        const cpu::QuantSpan sp{xs.data(), row * cols, cols, s.data(), r.data(), true, -128, 127};
        o.bad_code |= cpu::quantize_span(path, sp, CodeOut{o.code.data()});
        o.bad_fake |= cpu::quantize_span(path, sp, FakeOut{o.fake.data()});
      }
      return o;
    };
    const QuantRun want = run(Isa::kScalar);
    for (const Isa path : vector_paths()) {
      INFO("cols " << cols << " path " << cpu::isa_name(path));
      require_same(want, run(path));
    }
  }
}
