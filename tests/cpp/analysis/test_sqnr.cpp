// SQNR (SPEC §7) known answers, its streaming form, ΔSQNR's infinities and the argmax / tie rule.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
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

namespace {

// The same float64 bits element for element, NaN equal to NaN (any payload).
bool same_norms(const at::Tensor& want, const at::Tensor& got) {
  if (want.sizes() != got.sizes() || got.scalar_type() != at::kDouble) return false;
  const at::Tensor w = want.contiguous(), g = got.contiguous();
  const double* a = w.data_ptr<double>();
  const double* b = g.data_ptr<double>();
  for (int64_t i = 0; i < w.numel(); ++i) {
    if (std::isnan(a[i]) && std::isnan(b[i])) continue;
    if (std::memcmp(a + i, b + i, sizeof(double)) != 0) return false;
  }
  return true;
}

}  // namespace

TEST_CASE("sqnr: the fused norms (one read of x) equal the reference of every stream bit for bit", "[sqnr]") {
  // Row lengths around the eight-value steps and the four-value step (n mod 8 ∈ 0..7, n mod 16), image counts
  // around the eight-image groups (the rows left over take the scalar rows), every combination of streams, a
  // non-contiguous x (the transpose of a transposed copy); values spanning many binades with −0.0, subnormals, huge values whose difference overflows
  // float32, ±inf and NaN placed in the eight-value steps, the four-value step and the tail.
  at::manual_seed(11);
  const float inf = std::numeric_limits<float>::infinity();
  const int threads = at::get_num_threads();
  for (const int t : {1, 2}) {
    at::set_num_threads(t);
    for (const int64_t n : {1, 3, 4, 5, 7, 8, 9, 11, 12, 13, 15, 16, 17, 20, 23, 24, 31, 33, 100, 1001}) {
      for (const int64_t images : {1, 7, 8, 9, 16, 17, 27}) {
        at::Tensor x = at::randn({images, n}) * at::exp(4 * at::randn({images, n}));
        at::Tensor y0 = x + at::randn({images, n}) * 1e-3;
        at::Tensor y1 = x * (1 + at::randn({images, n}) * 1e-2);
        float* xp = x.data_ptr<float>();
        float* ap = y0.data_ptr<float>();
        float* bp = y1.data_ptr<float>();
        // specials in a few images (others stay finite, so finite sums are checked on every path)
        const float special[] = {-0.0f, 1e-40f, 3e38f, -3e38f, inf, -inf, std::nanf("")};
        for (int k = 0; k < 7 && images > 3; ++k) {
          const int64_t r = (k * 5) % images, d = (k * 3 + n / 2) % n;
          xp[r * n + d] = special[k];
          if (k == 2) bp[r * n + d] = -3e38f;  // x − y1 = 6e38 overflows float32 to +inf
          if (k == 0) ap[r * n + d] = -0.0f;   // −0 − −0 = +0
        }
        ap[(images - 1) * n + n - 1] = 1e-45f;  // the last tail value of the last image
        for (const at::Tensor& xs : {x, x.t().contiguous().t()}) {
          // the reference of the contiguous x (ATen reduces a strided row in another order; the fast path reads a
          // contiguous copy, as the analyzer always did)
          const at::Tensor sig = image_norms_reference(x, at::Tensor(), images);
          const at::Tensor e0 = image_norms_reference(x, y0, images), e1 = image_norms_reference(x, y1, images);
          for (const bool signal : {false, true}) {
            INFO("n " << n << " images " << images << " threads " << t << " signal " << signal);
            const FusedNorms two = image_norms_fused(xs, y0, y1, signal, images);
            CHECK(same_norms(e0, two.error[0]));
            CHECK(same_norms(e1, two.error[1]));
            const FusedNorms first = image_norms_fused(xs, y0, at::Tensor(), signal, images);
            CHECK(same_norms(e0, first.error[0]));
            CHECK(!first.error[1].defined());
            const FusedNorms second = image_norms_fused(xs, at::Tensor(), y1, signal, images);
            CHECK(!second.error[0].defined());
            CHECK(same_norms(e1, second.error[1]));
            for (const FusedNorms* f : {&two, &first, &second}) {
              if (signal) {
                CHECK(same_norms(sig, f->signal));
              } else {
                CHECK(!f->signal.defined());
              }
            }
          }
          CHECK(same_norms(sig, image_norms_fused(xs, at::Tensor(), at::Tensor(), true, images).signal));
          CHECK(same_norms(e1, image_norms(xs, y1, images)));
          CHECK(same_norms(sig, image_norms(xs, at::Tensor(), images)));
        }
      }
    }
  }
  at::set_num_threads(threads);
  // float64 inputs take the reference per stream
  const at::Tensor xd = at::randn({9, 13}, at::kDouble), yd = xd + 1e-3;
  const FusedNorms fd = image_norms_fused(xd, yd, xd.neg(), true, 9);
  CHECK(same_norms(image_norms_reference(xd, yd, 9), fd.error[0]));
  CHECK(same_norms(image_norms_reference(xd, xd.neg(), 9), fd.error[1]));
  CHECK(same_norms(image_norms_reference(xd, at::Tensor(), 9), fd.signal));
  // bad sizes are named as SqnrAccumulator::add names them
  const at::Tensor x = at::randn({8, 16});
  CHECK_THROWS_WITH(image_norms_fused(x, x, at::randn({8, 15}), false, 8), Catch::Contains("same number of values"));
  CHECK_THROWS_WITH(image_norms_fused(x, x, x, false, 3), Catch::Contains("does not split into 3 images"));
}

TEST_CASE("sqnr: add_norms equals add; sizes are checked", "[sqnr]") {
  at::manual_seed(12);
  const at::Tensor x = at::randn({16, 40}), y = x + at::randn({16, 40}) * 0.1;
  SqnrAccumulator a, b;
  a.add(x, y, 16);
  const FusedNorms f = image_norms_fused(x, y, at::Tensor(), true, 16);
  b.add_norms(f.signal, f.error[0], 16);
  CHECK(a.mean_ratio() == b.mean_ratio());
  CHECK(b.images() == 16);
  // the quotient loop equals the tensor expression (ATen's division, its sum)
  const at::Tensor want = at::where(f.error[0] == 0, kInf, f.signal / f.error[0]).sum();
  CHECK(b.mean_ratio() == want.item<double>() / 16.0);
  SqnrAccumulator z;  // a zero error: +∞ (0/0 included); the strided norms take the tensor expression
  at::Tensor e = f.error[0].clone();
  e[2] = 0.0;
  z.add_norms(f.signal, e, 16);
  CHECK(z.mean_ratio() == kInf);
  SqnrAccumulator st;
  const at::Tensor sig2 = at::stack({f.signal, f.signal}, 1).select(1, 0);  // a strided view
  st.add_norms(sig2, f.error[0], 16);
  CHECK(st.mean_ratio() == b.mean_ratio());
  SqnrAccumulator c;
  CHECK_THROWS_WITH(c.add_norms(f.signal, f.error[0].narrow(0, 0, 15), 16), Catch::Contains("15 error norms"));
  CHECK_THROWS_WITH(SqnrAccumulator::check(x, y.narrow(0, 0, 15), 16), Catch::Contains("same number of values"));
}
