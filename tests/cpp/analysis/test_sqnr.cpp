// SQNR (SPEC §7) known answers, its streaming form, ΔSQNR's infinities and the argmax / tie rule.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <limits>

#include "csrc/analysis/report.h"
#include "csrc/analysis/sqnr.h"

using namespace mnq::analysis;

namespace {
constexpr double kInf = std::numeric_limits<double>::infinity();
}

TEST_CASE("sqnr: scaled copies give the mean of the per-image ratios", "[sqnr]") {
  at::manual_seed(1);
  const at::Tensor x = at::randn({2, 3, 5});
  // image 0: y = 0.9x, error 0.1x, ratio 10; image 1: y = 0.5x, ratio 2 → mean 6
  const at::Tensor y = at::cat({x.slice(0, 0, 1) * 0.9, x.slice(0, 1, 2) * 0.5});
  CHECK(sqnr_db(x, y, 2) == Approx(20.0 * std::log10(6.0)).epsilon(1e-6));
  CHECK(sqnr_db(x.slice(0, 0, 1), y.slice(0, 0, 1), 1) == Approx(20.0).epsilon(1e-6));
  // the mean is over images, not over values: the mean of the ratios, not the ratio of the sums
  CHECK(sqnr_db(x, y, 1) != Approx(20.0 * std::log10(6.0)).epsilon(1e-3));
}

TEST_CASE("sqnr: additive noise of known power", "[sqnr]") {
  // x = a everywhere, noise ±σ alternating: ‖x‖ = a√n, ‖noise‖ = σ√n → 20·log10(a/σ) for every image
  const int64_t n = 1000;
  const double a = 3.0, sigma = 0.03;
  const at::Tensor x = at::full({4, n}, a);
  const at::Tensor sign = at::where(at::arange(n) % 2 == 0, 1.0, -1.0).to(at::kFloat);
  const at::Tensor y = x + sigma * sign;
  CHECK(sqnr_db(x, y, 4) == Approx(20.0 * std::log10(a / sigma)).epsilon(1e-5));  // 40 dB
}

TEST_CASE("sqnr: zero error is +inf; ΔSQNR handles the infinities", "[sqnr]") {
  const at::Tensor x = at::randn({3, 7});
  CHECK(sqnr_db(x, x.clone(), 3) == kInf);
  // one exact image among inexact ones: the mean ratio is infinite
  at::Tensor y = x * 0.5;
  y[1] = x[1];
  CHECK(sqnr_db(x, y, 3) == kInf);
  // an all-zero image reproduced exactly is also "zero error" (0/0 is not NaN here)
  CHECK(sqnr_db(at::zeros({2, 4}), at::zeros({2, 4}), 2) == kInf);
  CHECK(delta_sqnr(30.0, 20.0) == Approx(-10.0));
  CHECK(delta_sqnr(kInf, kInf) == 0.0);
  CHECK(delta_sqnr(kInf, 20.0) == -kInf);
  CHECK(delta_sqnr(20.0, kInf) == kInf);
}

TEST_CASE("sqnr: streaming over batches equals one pass; images split batch-major", "[sqnr]") {
  at::manual_seed(2);
  const at::Tensor x = at::randn({6, 4, 9});
  const at::Tensor y = x + 0.1 * at::randn({6, 4, 9});
  SqnrAccumulator acc;
  acc.add(x.slice(0, 0, 2), y.slice(0, 0, 2), 2);
  acc.add(x.slice(0, 2, 6), y.slice(0, 2, 6), 4);
  CHECK(acc.images() == 6);
  CHECK(acc.db() == Approx(sqnr_db(x, y, 6)).epsilon(1e-12));
  // Swin's window layout [B·nW, ...]: 3 images of 2 windows each = the same values grouped per image
  const at::Tensor w = x.reshape({3, 2, 4, 9});
  CHECK(sqnr_db(x, y, 3) == Approx(sqnr_db(w, y.reshape({3, 2, 4, 9}), 3)).epsilon(1e-12));
  // a non-contiguous view is flattened by value order
  CHECK(sqnr_db(x.transpose(1, 2), y.transpose(1, 2), 6) == Approx(sqnr_db(x, y, 6)).epsilon(1e-12));
}

TEST_CASE("sqnr: bad input is named", "[sqnr]") {
  SqnrAccumulator acc;
  CHECK_THROWS_WITH(acc.db(), Catch::Contains("no image"));
  CHECK_THROWS_WITH(acc.add(at::zeros({2, 3}), at::zeros({2, 4}), 2), Catch::Contains("[2, 3]") &&
                                                                          Catch::Contains("[2, 4]"));
  CHECK_THROWS_WITH(acc.add(at::zeros({5}), at::zeros({5}), 2), Catch::Contains("does not split into 2 images"));
}

TEST_CASE("argmax: the first maximum wins (tie order ivit, ibert, fqvit); NaN loses", "[sqnr]") {
  const auto [best, margin] = argmax_with_margin({1.0, 3.0, 2.0});
  CHECK(best == 1);
  CHECK(margin == 1.0);
  CHECK(argmax_with_margin({2.0, 2.0, 1.0}).first == 0);
  CHECK(argmax_with_margin({1.0, 2.0, 2.0}).first == 1);
  CHECK(argmax_with_margin({std::nan(""), -5.0}).first == 1);
  CHECK(argmax_with_margin({kInf, 3.0}).second == kInf);
  CHECK(argmax_with_margin({kInf, kInf}).first == 0);
  CHECK(argmax_with_margin({kInf, kInf}).second == 0.0);
  CHECK(std::isnan(argmax_with_margin({4.0}).second));
}

TEST_CASE("sqnr: the fused CPU norms equal the tensor expression bit for bit", "[sqnr]") {
  // Every row length mod 4 (the lanes and the tail), rows shorter than a lane group, large rows, a non-contiguous
  // view; values spanning many binades with exact zeros, subnormals, infinities and NaN; 1 and 2 threads.
  at::manual_seed(7);
  const int threads = at::get_num_threads();
  for (const int t : {1, 2}) {
    at::set_num_threads(t);
    for (const int64_t n : {1, 2, 3, 4, 5, 7, 8, 13, 64, 255, 1001, 12800}) {
      // 5: the four-image rows and one single; 11 and 19: the eight-image rows (AVX-512) too, with 3 left over
      for (const int64_t images : n > 1000 ? std::vector<int64_t>{3, 9} : std::vector<int64_t>{5, 11, 19}) {
        at::Tensor x = at::randn({images, n}) * at::exp(4 * at::randn({images, n}));
        at::Tensor y = x + at::randn({images, n}) * 1e-3;
        if (n >= 8) {
          x[0][1] = 0.0f;
          y[0][1] = 0.0f;
          x[1][2] = 1e-40f;  // subnormal
          y[1][3] = -3e-39f;
        }
        for (const auto& [a, b] : {std::pair{x, y}, std::pair{x.flip(1), y}}) {
          const at::Tensor fast = image_norms(a, b, images), ref = image_norms_reference(a, b, images);
          CHECK(at::equal(fast, ref));
          CHECK(at::equal(image_norms(a, at::Tensor(), images), image_norms_reference(a, at::Tensor(), images)));
        }
      }
    }
  }
  const float inf = std::numeric_limits<float>::infinity();
  const at::Tensor x = at::tensor({1.0f, inf, 2.0f, 3.0f, std::nanf(""), 1.0f, 2.0f, 3.0f, 4.0f, 5.0f}).reshape({2, 5});
  const at::Tensor y = at::tensor({1.0f, inf, 2.0f, 3.0f, 1.0f, 2.0f, 2.0f, 3.0f, 4.0f, 5.0f}).reshape({2, 5});
  const at::Tensor fast = image_norms(x, y, 2), ref = image_norms_reference(x, y, 2);
  CHECK(at::equal(at::isnan(fast), at::isnan(ref)));
  CHECK(at::equal(at::isnan(image_norms(x, at::Tensor(), 2)), at::isnan(image_norms_reference(x, at::Tensor(), 2))));
  CHECK(fast[1].item<double>() == ref[1].item<double>());
  at::set_num_threads(threads);
}
