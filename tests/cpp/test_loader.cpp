// The loader: deterministic order and batches whatever the number of workers, epochs reshuffle, a pass can
// start mid-epoch, drop_last, and a worker's error reaches the consumer.
#include <stdexcept>

#include "csrc/data/loader.h"

// After torch: c10 defines glog-style CHECK macros that would replace Catch's.
#include <catch2/catch.hpp>

using namespace mnq::data;

namespace {

// Image i is filled with i + (seed % 1000) / 1000, so a batch shows which images and which seeds it got.
class Counting : public Dataset {
 public:
  explicit Counting(int64_t n, int64_t bad = -1) : n_(n), bad_(bad) {}
  int64_t size() const override { return n_; }
  int64_t num_classes() const override { return 3; }
  ImageShape shape() const override { return {1, 2, 2}; }
  int64_t label(int64_t i) const override { return i % 3; }
  void load(int64_t i, uint64_t seed, float* out) const override {
    if (i == bad_) throw std::runtime_error("image " + std::to_string(i) + " is broken");
    for (int k = 0; k < 4; ++k) out[k] = float(i) + float(seed % 1000) / 1000.0f;
  }
  std::string describe() const override { return "counting"; }

 private:
  int64_t n_, bad_;
};

std::vector<at::Tensor> all(const Loader& l, int64_t epoch, int64_t start = 0) {
  std::vector<at::Tensor> out;
  auto pass = l.pass(epoch, start);
  while (auto b = pass->next()) out.push_back(b->images);
  return out;
}

}  // namespace

TEST_CASE("loader: batches do not depend on the number of workers", "[loader]") {
  auto ds = std::make_shared<Counting>(103);
  LoaderOptions o;
  o.batch_size = 10;
  o.shuffle = true;
  o.seed = 5;
  o.workers = 0;
  const Loader serial(ds, o);
  o.workers = 3;
  o.prefetch = 2;
  const Loader threaded(ds, o);
  REQUIRE(serial.num_batches() == 11);
  const auto a = all(serial, 2), b = all(threaded, 2);
  REQUIRE(a.size() == 11);
  REQUIRE(b.size() == 11);
  for (size_t i = 0; i < a.size(); ++i) REQUIRE(at::equal(a[i], b[i]));
  CHECK(a.back().size(0) == 3);
  // Every image once per epoch.
  at::Tensor ids = at::cat(a).select(1, 0).select(1, 0).select(1, 0).floor().to(at::kLong);
  ids = std::get<0>(ids.sort());
  CHECK(at::equal(ids, at::arange(103)));
  // Another epoch, another order; a pass from batch 4 gives batches 4.. of the full pass.
  const auto c = all(threaded, 3);
  CHECK(!at::equal(a[0], c[0]));
  const auto d = all(threaded, 3, 4);
  REQUIRE(d.size() == 7);
  for (size_t i = 0; i < d.size(); ++i) REQUIRE(at::equal(d[i], c[i + 4]));
  CHECK(at::equal(threaded.batch(3, 5).images, c[5]));
}

TEST_CASE("loader: drop_last, no shuffle, errors", "[loader]") {
  auto ds = std::make_shared<Counting>(25, 17);
  LoaderOptions o;
  o.batch_size = 10;
  o.drop_last = true;
  o.workers = 2;
  const Loader l(ds, o);
  CHECK(l.num_batches() == 2);
  CHECK(l.num_images() == 20);
  const Batch b0 = l.batch(0, 0);
  CHECK(std::floor(b0.images[3][0][0][0].item<float>()) == 3.0f);  // image 3, unshuffled
  CHECK(b0.labels[4].item<int64_t>() == 1);
  auto pass = l.pass(0);
  CHECK(pass->next().has_value());
  CHECK_THROWS_WITH(pass->next(), Catch::Contains("image 17 is broken"));
  CHECK_THROWS_AS(Loader(ds, LoaderOptions{0}), std::invalid_argument);
}
