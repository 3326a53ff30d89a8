// The loader: deterministic order and batches whatever the number of workers, epochs reshuffle, a pass can
// start mid-epoch, drop_last, and a worker's error reaches the consumer; labels are range-checked as they are
// loaded; pin_memory needs no GPU.
#include <stdexcept>

#include "csrc/data/loader.h"

// After torch: c10 defines glog-style CHECK macros that would replace Catch's.
#include <catch2/catch.hpp>

using namespace mnq::data;

namespace {

// Image i is filled with i + (seed % 1000) / 1000, so a batch shows which images and which seeds it got.
class Counting : public Dataset {
 public:
  explicit Counting(int64_t n, int64_t bad = -1, int64_t bad_label = -1) : n_(n), bad_(bad), bad_label_(bad_label) {}
  int64_t size() const override { return n_; }
  int64_t num_classes() const override { return 3; }
  ImageShape shape() const override { return {1, 2, 2}; }
  int64_t label(int64_t i) const override { return i == bad_label_ ? 3 : i % 3; }
  void load(int64_t i, uint64_t seed, float* out) const override {
    if (i == bad_) throw std::runtime_error("image " + std::to_string(i) + " is broken");
    for (int k = 0; k < 4; ++k) out[k] = float(i) + float(seed % 1000) / 1000.0f;
  }
  std::string describe() const override { return "counting"; }

 private:
  int64_t n_, bad_, bad_label_;
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

TEST_CASE("loader: a label outside the dataset's classes is an error where it is loaded", "[loader]") {
  // On a GPU an out-of-range label would be a device-side assert in the loss; the loader catches it on the host.
  LoaderOptions o;
  o.batch_size = 4;
  o.workers = 1;
  const Loader l(std::make_shared<Counting>(12, -1, 6), o);
  CHECK(l.batch(0, 0).labels.size(0) == 4);
  CHECK_THROWS_WITH(l.batch(0, 1), Catch::Contains("image 6") && Catch::Contains("label 3, outside 0..2"));
  auto pass = l.pass(0);
  CHECK(pass->next().has_value());
  CHECK_THROWS_WITH(pass->next(), Catch::Contains("label 3, outside 0..2"));
}

TEST_CASE("loader: pin_memory pins batches only where CUDA is available", "[loader]") {
  LoaderOptions o;
  o.batch_size = 5;
  o.pin_memory = true;
  const Loader pinned(std::make_shared<Counting>(10), o);
  o.pin_memory = false;
  const Loader plain(std::make_shared<Counting>(10), o);
  const Batch a = pinned.batch(0, 1), b = plain.batch(0, 1);
  CHECK(a.images.is_pinned() == at::hasCUDA());
  CHECK(a.labels.is_pinned() == at::hasCUDA());
  CHECK(!b.images.is_pinned());
  CHECK(at::equal(a.images, b.images));
  CHECK(at::equal(a.labels, b.labels));
}

TEST_CASE("loader: shards are the slices of the global batch, partners their mirror", "[loader][dist]") {
  // 22 images, batches of 8 (last one 6), 2 shards; shuffled and augmented as one loader (the seeds show in the
  // pixel values), so shard r of batch i is exactly rows [lo, hi) of the one-process batch i.
  auto data = std::make_shared<Counting>(22);
  const LoaderOptions whole{8, true, false, 0, 2, 7};
  const Loader one(data, whole);
  for (int64_t shards : {2, 3}) {
    for (int64_t r = 0; r < shards; ++r) {
      LoaderOptions o = whole;
      o.shard = r;
      o.shards = shards;
      o.partners = true;
      const Loader part(data, o);
      REQUIRE(part.num_batches() == one.num_batches());
      REQUIRE(part.num_images() == one.num_images());
      for (int64_t i = 0; i < one.num_batches(); ++i) {
        const Batch g = one.batch(3, i);
        const Batch s = part.batch(3, i);
        const int64_t c = g.labels.size(0), lo = c * r / shards, hi = c * (r + 1) / shards;
        const auto [first, count] = part.shard_range(i);
        CHECK(first == i * 8 + lo);
        CHECK(count == hi - lo);
        CHECK(at::equal(s.images, g.images.slice(0, lo, hi)));
        CHECK(at::equal(s.labels, g.labels.slice(0, lo, hi)));
        // Position j pairs with c−1−j: flip(0) of the partners is the flipped whole batch's rows [lo, hi).
        CHECK(at::equal(s.partner_images.flip(0), g.images.flip(0).slice(0, lo, hi)));
        CHECK(at::equal(s.partner_labels.flip(0), g.labels.flip(0).slice(0, lo, hi)));
      }
    }
  }
  LoaderOptions bad = whole;
  bad.shard = 2;
  bad.shards = 2;
  CHECK_THROWS_AS(Loader(data, bad), std::invalid_argument);
}
