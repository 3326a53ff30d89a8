// The wide-code vector forms against the scalar definition (kernels/quant.h), element by element, on every path this
// CPU has: the quantizer's exact float64 form (clamp ranges beyond the certified float32 one's 19 bits: I-BERT's
// 22-bit residuals, fc1's accumulator, the analyzer's grid of any range), and requant's exact redo of float codes at
// and above 2^31 (I-BERT's GELU output: codes near 2^40, multipliers below 2^−31) up to the loader's 2^62. Ties,
// both ends of every range, ±0, NaN, ±inf, negative values and scales, and every tail length.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "csrc/cpu/isa.h"
#include "csrc/cpu/quant_simd.h"
#include "csrc/cpu/requant_simd.h"

using namespace mnq::kernels;
using mnq::ops::cpu::Isa;
namespace cpu = mnq::ops::cpu;

namespace {

std::vector<Isa> all_paths() {
  std::vector<Isa> v{Isa::kScalar};
  if (cpu::supported_isa() >= Isa::kAvx2) v.push_back(Isa::kAvx2);
  if (cpu::supported_isa() >= Isa::kAvx512) v.push_back(Isa::kAvx512);
  return v;
}

// Codes (when `codes`) and fake values of one run; the first element where two runs differ fails with both values.
struct Outputs {
  std::vector<int32_t> code;
  std::vector<float> fake;
  bool bad_code = false, bad_fake = false;
};
void require_same(const Outputs& want, const Outputs& got) {
  REQUIRE(want.bad_code == got.bad_code);
  REQUIRE(want.bad_fake == got.bad_fake);
  for (size_t i = 0; i < want.fake.size(); ++i) {
    const bool same = std::memcmp(&want.fake[i], &got.fake[i], sizeof(float)) == 0 &&
                      (want.code.empty() || want.code[i] == got.code[i] || std::isnan(want.fake[i]));
    if (!same) {
      INFO("element " << i << ": fake " << want.fake[i] << " vs " << got.fake[i]
                      << (want.code.empty() ? "" : ", code ") << (want.code.empty() ? 0 : want.code[i]) << " vs "
                      << (got.code.empty() ? 0 : got.code[i]));
      REQUIRE(same);
    }
  }
}

// Floats around k·s and (k + 1/2)·s for k at both ends of [lo, hi], around 0 and sampled between, and the specials.
std::vector<float> range_inputs(double s, i64 lo, i64 hi, std::mt19937& rng) {
  std::vector<double> ks{0.0, -1.0, 1.0};
  for (i64 d = -3; d <= 3; ++d) ks.insert(ks.end(), {static_cast<double>(lo + d), static_cast<double>(hi + d)});
  std::uniform_real_distribution<double> between(static_cast<double>(lo), static_cast<double>(hi));
  for (int i = 0; i < 60; ++i) ks.push_back(std::round(between(rng)));
  std::vector<float> xs;
  for (const double k : ks) {
    for (const double frac : {0.0, 0.5, -0.5}) {
      float x = static_cast<float>((k + frac) * s);
      for (int u = 0; u < 3; ++u) x = std::nextafter(x, -INFINITY);
      for (int u = 0; u < 7; ++u, x = std::nextafter(x, INFINITY)) xs.push_back(x);
    }
  }
  const float inf = std::numeric_limits<float>::infinity();
  for (const float v : {0.0f, -0.0f, 1e-45f, -1e-45f, inf, -inf, std::nanf(""), 3e38f, -3e38f}) xs.push_back(v);
  std::shuffle(xs.begin(), xs.end(), rng);
  return xs;
}

Outputs run_quantize(Isa path, const std::vector<float>& xs, int64_t i0, int64_t n, const std::vector<double>& s,
                     bool per_column, i64 lo, i64 hi, bool codes) {
  const std::vector<float> r(s.size(), 1.0f);  // unused by the exact form
  Outputs o{std::vector<int32_t>(codes ? xs.size() : 0, -7), std::vector<float>(xs.size(), -7.0f)};
  const cpu::QuantSpan sp{xs.data(), i0, n, s.data(), r.data(), per_column, lo, hi, /*exact=*/true};
  if (codes) o.bad_code = cpu::quantize_span(path, sp, CodeOut{o.code.data()}) != 0;
  o.bad_fake = cpu::quantize_span(path, sp, FakeOut{o.fake.data()}) != 0;
  return o;
}

}  // namespace

TEST_CASE("quantize's exact float64 form equals the scalar definition on any clamp range", "[simd][quant]") {
  std::mt19937 rng(17);
  const i64 kInt32Min = std::numeric_limits<int32_t>::min(), kInt32Max = std::numeric_limits<int32_t>::max();
  struct Range {
    i64 lo, hi;
    bool codes;  // the codes fit the int32 output (else fake quant only, as csrc/cpu/quant.cpp takes it)
  };
  const Range ranges[] = {{-(i64(1) << 19), (i64(1) << 19) - 1, true}, {-(i64(1) << 21), (i64(1) << 21) - 1, true},
                          {kInt32Min, kInt32Max, true},                {-3, i64(1) << 20, true},
                          {5, 5, true},                                {0, 0, true},
                          {-7, 300, true},                             {-(i64(1) << 40), i64(1) << 40, false},
                          {-(i64(1) << 62), i64(1) << 62, false}};
  for (const Range& rg : ranges) {
    for (const double s : {3.7e-5, 0.1, 1.0 / 3, 1.0, 2.5e3, -0.25, 1e-300}) {
      const std::vector<float> xs = range_inputs(s, rg.lo, rg.hi, rng);
      const std::vector<double> scale{s};
      const int64_t n = static_cast<int64_t>(xs.size());
      const Outputs want = run_quantize(Isa::kScalar, xs, 0, n, scale, false, rg.lo, rg.hi, rg.codes);
      for (const Isa path : all_paths()) {
        INFO("lo " << rg.lo << " hi " << rg.hi << " s " << s << " path " << cpu::isa_name(path));
        require_same(want, run_quantize(path, xs, 0, n, scale, false, rg.lo, rg.hi, rg.codes));
        for (int64_t len = 0; len <= 20; ++len) {  // every tail length, at an odd offset
          require_same(run_quantize(Isa::kScalar, xs, 3, len, scale, false, rg.lo, rg.hi, rg.codes),
                       run_quantize(path, xs, 3, len, scale, false, rg.lo, rg.hi, rg.codes));
        }
      }
    }
  }
}

TEST_CASE("quantize's exact float64 form with per-column scales", "[simd][quant]") {
  std::mt19937 rng(19);
  const i64 lo = -(i64(1) << 21), hi = (i64(1) << 21) - 1;
  for (const int64_t cols : {1, 3, 8, 9, 16, 17, 197}) {
    std::vector<double> s(cols);
    for (int64_t c = 0; c < cols; ++c) s[c] = std::ldexp(3e-6, static_cast<int>(c % 7)) * (1.0 + 0.013 * c);
    const std::vector<float> xs = range_inputs(3e-6, lo, hi, rng);
    const int64_t rows = static_cast<int64_t>(xs.size()) / cols;
    auto run = [&](Isa path) {
      Outputs o{std::vector<int32_t>(xs.size(), -7), std::vector<float>(xs.size(), -7.0f)};
      for (int64_t row = 0; row < rows; ++row) {
        const cpu::QuantSpan sp{xs.data(), row * cols, cols, s.data(), nullptr, true, lo, hi, true};
        o.bad_code |= cpu::quantize_span(path, sp, CodeOut{o.code.data()}) != 0;
        o.bad_fake |= cpu::quantize_span(path, sp, FakeOut{o.fake.data()}) != 0;
      }
      return o;
    };
    const Outputs want = run(Isa::kScalar);
    for (const Isa path : all_paths()) {
      INFO("cols " << cols << " path " << cpu::isa_name(path));
      require_same(want, run(path));
    }
  }
  // The certified form's range check covers both ends of the clamp range.
  const std::vector<double> one{1.0};
  REQUIRE(cpu::quantize_simd_ok(one.data(), 1, -(i64(1) << 18), (i64(1) << 18) - 1));
  REQUIRE_FALSE(cpu::quantize_simd_ok(one.data(), 1, -(i64(1) << 18) - 1, 5));
  REQUIRE_FALSE(cpu::quantize_simd_ok(one.data(), 1, -5, i64(1) << 18));
}

namespace {

// One requant side of float values on power-of-two scales (so x = fl32(q·S) holds q exactly when q has at most 24
// significant bits), codes at and beyond 2^31 up to past 2^62, with per-column multipliers and shifts.
struct WideSide {
  std::vector<i64> m, k, hm1;
  std::vector<double> md, s, r;
  std::vector<float> x;
  std::vector<int32_t> q;
  cpu::RequantSimdSide side;  // pointing into the vectors above
};

// `shifts`: the k of each column in turn; `int_codes`: int32 codes (a residual side) instead of float values.
WideSide make_wide(int64_t cols, int64_t n, const std::vector<i64>& shifts, bool int_codes, std::mt19937& rng) {
  WideSide d;
  std::uniform_int_distribution<i64> mant(i64(1) << 30, (i64(1) << 31) - 1);
  for (int64_t c = 0; c < cols; ++c) {
    // the largest multiplier, 2^30 (exact ties) and random ones
    const i64 m = c % 4 == 0 ? (i64(1) << 31) - 1 : (c % 4 == 1 ? i64(1) << 30 : mant(rng));
    d.m.push_back(c % 2 == 0 ? m : -m);
    d.k.push_back(shifts[static_cast<size_t>(c) % shifts.size()]);
    d.hm1.push_back((i64(1) << (d.k.back() - 1)) - 1);
    d.md.push_back(std::ldexp(static_cast<double>(d.m.back()), static_cast<int>(-d.k.back())));
    d.s.push_back(std::ldexp(c % 3 == 2 ? -1.0 : 1.0, -static_cast<int>(c % 11)));
    d.r.push_back(1.0 / d.s.back());
  }
  std::uniform_int_distribution<int64_t> mant24(1, (1 << 24) - 1);
  const float inf = std::numeric_limits<float>::infinity();
  for (int64_t i = 0; i < n; ++i) {
    const int pick = static_cast<int>(rng() % 10);
    double q;
    if (pick < 5) {
      q = std::ldexp(static_cast<double>(mant24(rng)), static_cast<int>(rng() % 40));  // up to 2^64
    } else if (pick < 7) {  // around 2^31 and 2^62
      const double edge = rng() % 2 ? 0x1p31 : 0x1p62;
      q = edge + static_cast<double>(static_cast<int>(rng() % 5) - 2) * (edge == 0x1p31 ? 1.0 : 0x1p39);
    } else if (pick < 9) {  // a tie or near-tie of q·m / 2^k for m = 2^30
      q = std::ldexp(static_cast<double>(2 * mant24(rng) + 1), static_cast<int>(rng() % 38)) + (rng() % 3) - 1.0;
    } else {
      q = static_cast<double>(static_cast<int>(rng() % 601) - 300);
    }
    if (rng() % 2) q = -q;
    if (int_codes) {
      d.q.push_back(static_cast<int32_t>(std::fmax(-2147483648.0, std::fmin(2147483647.0, q))));
    } else {
      d.x.push_back(static_cast<float>(q * d.s[static_cast<size_t>(i % cols)]));
    }
  }
  if (!int_codes && n > 6) {
    d.x[1] = std::nanf("");
    d.x[2] = inf;
    d.x[3] = -inf;
    d.x[4] = 0.5f;  // a tie at code 1/2 on scale 1
    d.x[5] = -0.0f;
  }
  d.side = cpu::RequantSimdSide{int_codes ? d.q.data() : nullptr, int_codes ? nullptr : d.x.data(), d.s.data(),
                                d.r.data(), d.m.data(), d.k.data(), d.hm1.data(), d.md.data()};
  return d;
}

void require_requant(const cpu::RequantSimdSide& a, const cpu::RequantSimdSide* id, int64_t cols, int64_t rows) {
  const int64_t n = rows * cols;
  for (const int bits : {8, 32}) {
    const i64 lo = -(i64(1) << (bits - 1)), hi = (i64(1) << (bits - 1)) - 1;
    auto run = [&](Isa path) {
      Outputs o{std::vector<int32_t>(n, -7), std::vector<float>(n, -7.0f)};
      o.bad_code = !cpu::requant_rows(path, a, id, cols, 0, rows, lo, hi, 0.05, CodeOut{o.code.data()});
      o.bad_fake = !cpu::requant_rows(path, a, id, cols, 0, rows, lo, hi, 0.05, FakeOut{o.fake.data()});
      return o;
    };
    const Outputs want = run(Isa::kScalar);
    for (const Isa path : all_paths()) {
      INFO("bits " << bits << " path " << cpu::isa_name(path));
      require_same(want, run(path));
    }
  }
}

}  // namespace

TEST_CASE("requant of float codes at and above 2^31 equals the scalar definition", "[simd][quant]") {
  std::mt19937 rng(23);
  // Wide shifts (k ≥ 31: requant64_wide's form), narrow ones (k < 31: only codes within int32 are vector) and both.
  const std::vector<std::vector<i64>> shift_sets{{31}, {32, 45, 62}, {1, 5, 30}, {62, 30, 31, 1, 40}};
  for (const int64_t cols : {1, 3, 8, 9, 16, 17, 40}) {
    const int64_t rows = std::max<int64_t>(2, 900 / cols), n = rows * cols;
    for (const auto& shifts : shift_sets) {
      for (const int residual : {0, 1, 2}) {  // none, int32 identity, wide float identity
        const WideSide a = make_wide(cols, n, shifts, false, rng);
        const WideSide b = make_wide(cols, n, {31, 33}, residual == 1, rng);
        INFO("cols " << cols << " shifts " << shifts.size() << " first " << shifts[0] << " residual " << residual);
        require_requant(a.side, residual == 0 ? nullptr : &b.side, cols, rows);
      }
    }
  }
}
