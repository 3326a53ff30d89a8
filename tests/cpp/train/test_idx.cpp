// IDX .gz reading: round trip of generated files, and clear errors (naming the file) for wrong magic numbers,
// truncated data, corrupt gzip streams and missing files; the Fashion-MNIST dataset wrapper and subsets.
#include <filesystem>
#include <fstream>

#include "csrc/data/fashion_mnist.h"
#include "csrc/data/idx.h"
#include "train_test_util.h"

// After torch: c10 defines glog-style CHECK macros that would replace Catch's.
#include <catch2/catch.hpp>

using namespace mnq::data;
using mnq_test::idx_bytes;
using mnq_test::TempDir;
using mnq_test::write_gz;

TEST_CASE("idx: images and labels round trip through gzip", "[idx]") {
  TempDir dir("idx");
  std::vector<uint8_t> px(5 * 4 * 3);
  for (size_t i = 0; i < px.size(); ++i) px[i] = uint8_t(i * 7);
  write_gz(dir / "img.gz", idx_bytes({5, 4, 3}, px));
  write_gz(dir / "lab.gz", idx_bytes({5}, {9, 0, 3, 3, 1}));
  const at::Tensor img = read_idx_images(dir / "img.gz");
  REQUIRE(img.sizes() == at::IntArrayRef({5, 4, 3}));
  CHECK(img.scalar_type() == at::kByte);
  CHECK(img[2][1][2].item<int>() == px[2 * 12 + 1 * 3 + 2]);
  const at::Tensor lab = read_idx_labels(dir / "lab.gz");
  CHECK(lab.scalar_type() == at::kLong);
  CHECK(lab.numel() == 5);
  CHECK(lab[0].item<int64_t>() == 9);
}

TEST_CASE("idx: bad files give errors naming the file", "[idx]") {
  TempDir dir("idxbad");
  write_gz(dir / "lab.gz", idx_bytes({5}, {1, 2, 3, 4, 5}));
  CHECK_THROWS_WITH(read_idx_images(dir / "lab.gz"),
                    Catch::Contains(dir / "lab.gz") && Catch::Contains("bad magic number 0x00000801"));
  // A header promising 10 images of 2×2 with the data of 3.
  write_gz(dir / "short.gz", idx_bytes({10, 2, 2}, std::vector<uint8_t>(12, 1)));
  CHECK_THROWS_WITH(read_idx_images(dir / "short.gz"),
                    Catch::Contains(dir / "short.gz") && Catch::Contains("truncated") && Catch::Contains("40"));
  write_gz(dir / "zero.gz", idx_bytes({0, 2, 2}, {}));
  CHECK_THROWS_WITH(read_idx_images(dir / "zero.gz"), Catch::Contains("dimension 0 is 0"));
  write_gz(dir / "tiny.gz", std::string("\0\0", 2));
  CHECK_THROWS_WITH(read_idx_labels(dir / "tiny.gz"), Catch::Contains("too short"));
  CHECK_THROWS_WITH(read_idx_labels(dir / "missing.gz"),
                    Catch::Contains(dir / "missing.gz") && Catch::Contains("cannot open"));

  // A gzip stream cut in the middle, and one with its compressed bytes overwritten.
  std::vector<uint8_t> px(2000);
  for (size_t i = 0; i < px.size(); ++i) px[i] = uint8_t((i * 2654435761u) >> 13);
  write_gz(dir / "full.gz", idx_bytes({20, 10, 10}, px));
  std::string gz;
  {
    std::ifstream in(dir / "full.gz", std::ios::binary);
    gz.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  std::ofstream(dir / "cut.gz", std::ios::binary) << gz.substr(0, gz.size() / 2);
  CHECK_THROWS_WITH(read_idx_images(dir / "cut.gz"), Catch::Contains(dir / "cut.gz") && Catch::Contains("gzip"));
  std::string bad = gz;
  for (size_t i = 12; i < bad.size() - 8; i += 3) bad[i] = char(0xff);
  std::ofstream(dir / "bad.gz", std::ios::binary) << bad;
  CHECK_THROWS_WITH(read_idx_images(dir / "bad.gz"), Catch::Contains(dir / "bad.gz") && Catch::Contains("gzip"));
}

TEST_CASE("idx: hostile headers are refused before the payload is read", "[idx]") {
  TempDir dir("idxhostile");
  // 2^32-1 cubed overflows int64 (UBSan's signed-overflow report before the product was checked).
  write_gz(dir / "overflow.gz", idx_bytes({0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu}, {1, 2, 3}));
  CHECK_THROWS_WITH(read_idx_images(dir / "overflow.gz"),
                    Catch::Contains(dir / "overflow.gz") && Catch::Contains("overflows 64 bits"));
  // 60000 x 28 x 28 claimed by a file of ~40 bytes: more than deflate (1032:1) can expand it to; refused without
  // allocating 47 MB. The same header in a plain file may claim no more than the file's own size.
  write_gz(dir / "claim.gz", idx_bytes({60000, 28, 28}, {1, 2, 3}));
  CHECK_THROWS_WITH(read_idx_images(dir / "claim.gz"),
                    Catch::Contains("claims 47040000 data bytes, more than the file can hold"));
  std::ofstream(dir / "claim.raw", std::ios::binary) << idx_bytes({3, 2, 2}, {1, 2, 3, 4, 5});
  CHECK_THROWS_WITH(read_idx_images(dir / "claim.raw"), Catch::Contains("more than the file can hold"));
  // Trailing bytes after the data the header promises, and an uncompressed file that is exact.
  write_gz(dir / "long.gz", idx_bytes({1, 2, 2}, {1, 2, 3, 4, 5}));
  CHECK_THROWS_WITH(read_idx_images(dir / "long.gz"), Catch::Contains("expected 4 data bytes after the header, found more"));
  std::ofstream(dir / "plain", std::ios::binary) << idx_bytes({1, 2, 2}, {1, 2, 3, 4});
  CHECK(read_idx_images(dir / "plain").sum().item<int64_t>() == 10);
  // A truncated header.
  write_gz(dir / "head.gz", idx_bytes({1, 2, 2}, {}).substr(0, 9));
  CHECK_THROWS_WITH(read_idx_images(dir / "head.gz"), Catch::Contains("truncated header"));
  CHECK_THROWS_WITH(read_idx_images(dir.path), Catch::Contains("not a regular file"));
}

TEST_CASE("fashion_mnist: files of a root folder, normalisation, subsets", "[idx]") {
  TempDir dir("fashion");
  mnq_test::write_synthetic_fashion(dir.path, 50, 20, 1);
  auto train = std::make_shared<FashionMnist>(dir.path, "train", std::vector<double>{0.5}, std::vector<double>{0.25});
  CHECK(train->size() == 50);
  CHECK(train->shape().numel() == 28 * 28);
  const at::Tensor raw = read_idx_images(dir / "train-images-idx3-ubyte.gz");
  std::vector<float> out(28 * 28);
  train->load(3, 0, out.data());
  CHECK(out[100] == Approx((raw[3].flatten()[100].item<int>() / 255.0 - 0.5) / 0.25));
  CHECK_THROWS_WITH(FashionMnist(dir.path, "val", {0.5}, {0.25}), Catch::Contains("train or test"));
  CHECK_THROWS_WITH(FashionMnist(dir / "nowhere", "test", {0.5}, {0.25}), Catch::Contains("nowhere"));

  auto sub = subset(train, 20, 7);
  REQUIRE(sub->size() == 20);
  auto again = subset(train, 20, 7);
  for (int64_t i = 0; i < 20; ++i) CHECK(sub->label(i) == again->label(i));
  CHECK(subset(train, 0, 7)->size() == 50);
  CHECK(subset(train, 500, 7)->size() == 50);
}
