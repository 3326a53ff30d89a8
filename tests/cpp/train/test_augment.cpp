// Random erasing (identity at p = 0; at p = 1 one box of the allowed area, only its values changed), Mixup /
// CutMix (targets sum to 1, λ agrees with the box, label smoothing folded in, prob 0 leaves the batch alone,
// determinism in the seed, no value read back from the batch), the random draws, and the datasets' augmentation
// switches (deterministic in the per-image seed, off on the eval split).
#include <ATen/ATen.h>

#include <catch2/catch.hpp>
#include <filesystem>

#include "csrc/data/fashion_mnist.h"
#include "csrc/data/image_folder.h"
#include "csrc/data/random.h"
#include "csrc/data/random_erasing.h"
#include "csrc/models/op_counter.h"
#include "csrc/train/mixup.h"
#include "train_test_util.h"

using namespace mnq;
using namespace mnq::data;

TEST_CASE("random erasing: p = 0 is the identity, p = 1 erases one box of the allowed size", "[augment]") {
  const ImageShape shape{3, 20, 30};
  std::vector<float> img(size_t(shape.numel()), 0.5f);
  std::mt19937_64 rng(3);
  CHECK(!random_erase(img.data(), shape, 0.0, rng));
  CHECK(std::all_of(img.begin(), img.end(), [](float v) { return v == 0.5f; }));
  int erased = 0;
  for (uint64_t seed = 0; seed < 40; ++seed) {
    std::fill(img.begin(), img.end(), 0.5f);
    std::mt19937_64 r(seed);
    const auto box = random_erase(img.data(), shape, 1.0, r);
    if (!box) continue;  // no try fitted: unchanged
    ++erased;
    CHECK(box->height < shape.height);
    CHECK(box->width < shape.width);
    CHECK(box->top + box->height <= shape.height);
    CHECK(box->left + box->width <= shape.width);
    // Area 2–33 % of the image, up to the rounding of each side.
    const double area = double(box->height * box->width), full = double(shape.height * shape.width);
    CHECK(area >= 0.02 * full * 0.5);
    CHECK(area <= full / 3.0 * 1.6);
    for (int64_t c = 0; c < shape.channels; ++c) {
      for (int64_t y = 0; y < shape.height; ++y) {
        for (int64_t x = 0; x < shape.width; ++x) {
          const bool inside = y >= box->top && y < box->top + box->height && x >= box->left &&
                              x < box->left + box->width;
          const float v = img[size_t((c * shape.height + y) * shape.width + x)];
          if (inside != (v != 0.5f)) FAIL("pixel " << c << "," << y << "," << x << " inside=" << inside);
        }
      }
    }
  }
  CHECK(erased >= 30);
  // Same seed, same noise.
  std::vector<float> a(size_t(shape.numel()), 0.f), b = a;
  std::mt19937_64 r1(9), r2(9);
  random_erase(a.data(), shape, 1.0, r1);
  random_erase(b.data(), shape, 1.0, r2);
  CHECK(a == b);
}

TEST_CASE("random draws: uniform, normal and beta moments", "[augment]") {
  std::mt19937_64 rng(1);
  double s = 0, s2 = 0, bsum = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    const double z = rnd::normal(rng);
    s += z;
    s2 += z * z;
    const int64_t k = rnd::randint(rng, 2, 4);
    CHECK((k >= 2 && k <= 4));
  }
  CHECK(std::abs(s / n) < 0.03);
  CHECK(std::abs(s2 / n - 1.0) < 0.05);
  for (int i = 0; i < 4000; ++i) bsum += rnd::beta(rng, 0.8, 0.8);  // symmetric: mean ½
  CHECK(std::abs(bsum / 4000 - 0.5) < 0.03);
}

TEST_CASE("mixup / cutmix: targets, λ and the box, smoothing, prob 0", "[augment]") {
  const int64_t B = 6, K = 5;
  const at::Tensor x = at::arange(B * 2 * 8 * 10, at::kFloat).reshape({B, 2, 8, 10});
  const at::Tensor y = at::tensor(std::vector<int64_t>{0, 1, 2, 3, 4, 0});
  train::MixupOptions o;
  o.label_smoothing = 0.1;

  SECTION("prob 0: the batch unchanged, smoothed one-hot targets (off ε/K, on 1 − ε + ε/K)") {
    o.prob = 0;
    const auto m = train::mix_batch(x, y, K, o, 7);
    CHECK(m.lam == 1.0);
    CHECK(at::equal(m.images, x));
    CHECK(m.targets[0][0].item<float>() == Approx(0.92));
    CHECK(m.targets[0][1].item<float>() == Approx(0.02));
    CHECK(at::allclose(m.targets.sum(1), at::ones({B})));
  }
  SECTION("mixup only: λ·x + (1 − λ)·flip(x) and the same mix of the targets") {
    o.cutmix_alpha = 0;
    for (uint64_t seed = 0; seed < 5; ++seed) {
      const auto m = train::mix_batch(x, y, K, o, seed);
      CHECK(!m.cutmix);
      CHECK((m.lam > 0 && m.lam < 1));
      const float lam = float(m.lam);
      CHECK(at::allclose(m.images, x * lam + x.flip(0) * (1 - lam)));
      // Row 1 has label 1, its partner (row 4) label 4.
      CHECK(m.targets[1][1].item<float>() == Approx(m.lam * 0.92 + (1 - m.lam) * 0.02));
      CHECK(m.targets[1][4].item<float>() == Approx(m.lam * 0.02 + (1 - m.lam) * 0.92));
      CHECK(at::allclose(m.targets.sum(1), at::ones({B})));
    }
  }
  SECTION("cutmix only: the box comes from flip(x), λ = 1 − its area share") {
    o.mixup_alpha = 0;
    for (uint64_t seed = 0; seed < 8; ++seed) {
      const auto m = train::mix_batch(x, y, K, o, seed);
      REQUIRE(m.cutmix);
      const int64_t y0 = m.box[0], y1 = m.box[1], x0 = m.box[2], x1 = m.box[3];
      CHECK(m.lam == Approx(1.0 - double((y1 - y0) * (x1 - x0)) / 80.0));
      const at::Tensor inside = at::zeros({8, 10}, at::kBool);
      inside.slice(0, y0, y1).slice(1, x0, x1).fill_(true);
      CHECK(at::equal(at::where(inside, x.flip(0), x), m.images));
      CHECK(at::allclose(m.targets.sum(1), at::ones({B})));
      CHECK(m.targets[0][0].item<float>() == Approx(m.lam * 0.92 + (1 - m.lam) * 0.92));  // rows 0 and 5: label 0
    }
  }
  SECTION("both: the switch picks each method; the same seed gives the same batch") {
    int cut = 0;
    for (uint64_t seed = 0; seed < 40; ++seed) cut += train::mix_batch(x, y, K, o, seed).cutmix;
    CHECK(cut > 8);
    CHECK(cut < 32);
    const auto a = train::mix_batch(x, y, K, o, 11), b = train::mix_batch(x, y, K, o, 11);
    CHECK(at::equal(a.images, b.images));
    CHECK(at::equal(a.targets, b.targets));
    CHECK(train::mix_seed(0, 1, 2) != train::mix_seed(0, 2, 1));
    CHECK(train::mix_seed(0, 1, 2) == train::mix_seed(0, 1, 2));
  }
  SECTION("soft-target cross-entropy equals torch's label-smoothed one on one-hot targets") {
    o.prob = 0;
    const at::Tensor logits = at::randn({B, K});
    const auto m = train::mix_batch(x, y, K, o, 1);
    const at::Tensor ref = at::cross_entropy_loss(logits, y, {}, at::Reduction::Mean, -100, 0.1);
    CHECK(train::soft_target_cross_entropy(logits, m.targets).item<double>() == Approx(ref.item<double>()));
  }
  CHECK_THROWS_WITH(train::mix_batch(x, y, 3, o, 0), Catch::Contains("labels outside 0..2"));
}

TEST_CASE("mixup / cutmix: a shard mixed with its partner slice is the slice of the mixed global batch",
          "[augment][dist]") {
  // Data-parallel: 2 or 3 ranks each hold rows [lo, hi) of the global batch and the mirrored rows (partners).
  const int64_t B = 6, K = 5;
  const at::Tensor x = at::arange(B * 2 * 8 * 10, at::kFloat).reshape({B, 2, 8, 10});
  const at::Tensor y = at::tensor(std::vector<int64_t>{0, 1, 2, 3, 4, 0});
  train::MixupOptions o;
  for (uint64_t seed = 0; seed < 8; ++seed) {  // Mixup and CutMix batches both occur
    const auto whole = train::mix_batch(x, y, K, o, seed);
    for (int64_t shards : {2, 3}) {
      for (int64_t r = 0; r < shards; ++r) {
        const int64_t lo = B * r / shards, hi = B * (r + 1) / shards;
        const auto part = train::mix_batch(x.slice(0, lo, hi), y.slice(0, lo, hi), K, o, seed,
                                           x.slice(0, B - hi, B - lo), y.slice(0, B - hi, B - lo));
        CHECK(part.lam == whole.lam);
        CHECK(at::equal(part.images, whole.images.slice(0, lo, hi)));
        CHECK(at::equal(part.targets, whole.targets.slice(0, lo, hi)));
      }
    }
  }
  CHECK_THROWS_AS(train::mix_batch(x, y, K, o, 0, x.slice(0, 0, 2), y.slice(0, 0, 2)), c10::ValueError);
}

TEST_CASE("mixup / cutmix: the batch's tensors are not read back (on a GPU each read would be a sync)", "[augment]") {
  const at::Tensor x = at::rand({6, 1, 8, 8});
  const at::Tensor y = at::tensor(std::vector<int64_t>{0, 1, 2, 3, 4, 0});
  train::MixupOptions o;
  int cut = 0, mixed = 0;
  for (uint64_t seed = 0; seed < 8; ++seed) {  // Mixup and CutMix both drawn
    models::OpCounter reads;
    const auto m = train::mix_batch(x, y, 5, o, seed);
    CHECK(reads.count() == 0);
    cut += m.cutmix;
    mixed += !m.cutmix && m.lam < 1.0;
  }
  CHECK(cut > 0);
  CHECK(mixed > 0);
  // The labels' range is still checked, on the host side.
  CHECK_THROWS_WITH(train::check_labels(y, 4, "here"),
                    Catch::Contains("here: labels outside 0..3 (label 4 at position 4)"));
  CHECK_THROWS_WITH(train::check_labels(y.to(at::kInt), 5, "here"),
                    Catch::Contains("expected int64 labels on the CPU"));
}

TEST_CASE("datasets: augmentation is deterministic in the seed and only on the train split", "[augment]") {
  mnq_test::TempDir dir("augdata");
  // Fashion-MNIST from tensors: RandAugment + erasing on, then off.
  const at::Tensor imgs = at::randint(0, 256, {4, 28, 28}, at::kByte);
  FashionMnist fm(imgs, at::arange(4), {0.2860}, {0.3530}, "fm");
  std::vector<float> plain(784), a(784), b(784), c(784);
  fm.load(1, 5, plain.data());
  fm.set_augmentation(parse_rand_augment("rand-m9-n2-p1.0-mstd0.5-inc1"), Filter::kBicubic, 1.0);
  fm.load(1, 5, a.data());
  fm.load(1, 5, b.data());
  fm.load(1, 6, c.data());
  CHECK(a == b);
  CHECK(a != c);
  CHECK(a != plain);
  fm.set_augmentation(std::nullopt, Filter::kBicubic, 0.0);
  fm.load(1, 5, b.data());
  CHECK(b == plain);

  // An image folder: the train split augments (RandAugment path through the uint8 resample), val does not.
  for (const char* split : {"train", "val"}) {
    for (const char* cls : {"a", "b"}) {
      std::filesystem::create_directories(dir / (std::string(split) + "/" + cls));
      std::vector<uint8_t> px(40 * 30 * 3);
      for (size_t i = 0; i < px.size(); ++i) px[i] = uint8_t((i * 7 + (cls[0] == 'a' ? 0 : 90)) % 256);
      mnq_test::write_jpeg(dir / (std::string(split) + "/" + cls + "/0.jpg"), px, 40, 30, 3);
    }
  }
  ImageFolderOptions o;
  o.img_size = 16;
  o.rand_augment = parse_rand_augment("rand-m9-mstd0.5-inc1");
  o.random_erasing = 0.5;
  ImageFolder train(dir.path, "train", o), val(dir.path, "val", o, train.classes());
  std::vector<float> t1(3 * 256), t2(3 * 256), t3(3 * 256), v1(3 * 256), v2(3 * 256);
  train.load(0, 1, t1.data());
  train.load(0, 1, t2.data());
  train.load(0, 2, t3.data());
  CHECK(t1 == t2);
  CHECK(t1 != t3);
  val.load(0, 1, v1.data());
  val.load(0, 2, v2.data());
  CHECK(v1 == v2);
  CHECK_THAT(train.describe(), Catch::Contains("RandAugment") && Catch::Contains("random erasing"));
  CHECK_THAT(val.describe(), !Catch::Contains("RandAugment"));

  // RandAugment applying no op (p 0): the uint8 path equals the float path up to the rounding to uint8
  // (half a grey level, 0.5/255/std in normalised units), with the same crop and flip.
  ImageFolderOptions plain_opt;
  plain_opt.img_size = 16;
  ImageFolderOptions noop_opt = plain_opt;
  noop_opt.rand_augment = parse_rand_augment("rand-m9-p0");
  ImageFolder plain_ds(dir.path, "train", plain_opt), noop_ds(dir.path, "train", noop_opt);
  for (uint64_t seed : {1, 2, 3}) {
    std::vector<float> p(3 * 256), q(3 * 256);
    plain_ds.load(1, seed, p.data());
    noop_ds.load(1, seed, q.data());
    float worst = 0;
    for (size_t i = 0; i < p.size(); ++i) worst = std::max(worst, std::abs(p[i] - q[i]));
    CHECK(worst <= 0.5f / 255.f / 0.224f + 1e-5f);
    CHECK(worst > 0);  // the rounding is there
  }
}
