// The image-folder dataset on a tiny generated JPEG tree: class order, labels, the eval transform (exact on an
// identity resample, mean/std), deterministic train augmentation, and errors naming the folder or file; the
// crop boxes against torchvision's arithmetic.
#include <filesystem>
#include <fstream>
#include <mutex>

#include "csrc/data/image_folder.h"
#include "csrc/data/loader.h"
#include "train_test_util.h"

// After torch: c10 defines glog-style CHECK macros that would replace Catch's.
#include <catch2/catch.hpp>

using namespace mnq::data;
using mnq_test::TempDir;

namespace {

// A w×h RGB image: a horizontal ramp in red, a vertical one in green, constant blue.
std::vector<uint8_t> ramp(int w, int h, uint8_t blue) {
  std::vector<uint8_t> px(size_t(w * h * 3));
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      px[size_t((y * w + x) * 3 + 0)] = uint8_t(x * 255 / std::max(w - 1, 1));
      px[size_t((y * w + x) * 3 + 1)] = uint8_t(y * 255 / std::max(h - 1, 1));
      px[size_t((y * w + x) * 3 + 2)] = blue;
    }
  }
  return px;
}

void make_tree(const std::string& root) {
  namespace fs = std::filesystem;
  for (const std::string split : {"train", "val"}) {
    for (const std::string cls : {"zebra", "ant"}) {
      fs::create_directories(root + "/" + split + "/" + cls);
      for (int i = 0; i < 3; ++i) {
        mnq_test::write_jpeg(root + "/" + split + "/" + cls + "/img" + std::to_string(i) + (i == 2 ? ".JPEG" : ".jpg"),
                             ramp(40 + 8 * i, 30, cls == "ant" ? 20 : 230), 40 + 8 * i, 30, 3);
      }
    }
  }
  std::ofstream(root + "/train/ant/notes.txt") << "not an image";
}

}  // namespace

TEST_CASE("image_folder: classes, labels and the eval transform", "[image_folder]") {
  TempDir dir("imgfolder");
  make_tree(dir.path);
  ImageFolderOptions o;
  o.img_size = 16;
  ImageFolder train(dir.path, "train", o);
  REQUIRE(train.classes() == std::vector<std::string>{"ant", "zebra"});
  REQUIRE(train.size() == 6);  // notes.txt is ignored, .JPEG counts
  CHECK(train.label(0) == 0);
  CHECK(train.label(5) == 1);
  CHECK(train.shape().numel() == 3 * 16 * 16);
  ImageFolder val(dir.path, "val", o, train.classes());
  std::vector<float> out(3 * 16 * 16);
  val.load(0, 0, out.data());  // an ant: blue ≈ 20 everywhere
  const float blue = float((20 / 255.0 - 0.406) / 0.225);
  for (int i = 0; i < 256; ++i) REQUIRE(out[size_t(2 * 256 + i)] == Approx(blue).margin(0.05));
  // Red ramps up left to right, green top to bottom.
  CHECK(out[15] > out[0]);
  CHECK(out[256 + 15 * 16] > out[256]);
  CHECK_THAT(val.describe(), Catch::Contains("6 images") && Catch::Contains("2 classes"));
}

TEST_CASE("image_folder: train augmentation is deterministic in the seed", "[image_folder]") {
  TempDir dir("imgaug");
  make_tree(dir.path);
  ImageFolderOptions o;
  o.img_size = 12;
  ImageFolder train(dir.path, "train", o);
  std::vector<float> a(3 * 144), b(3 * 144), c(3 * 144);
  train.load(1, 42, a.data());
  train.load(1, 42, b.data());
  CHECK(a == b);
  bool differs = false;
  for (uint64_t seed = 1; seed < 6 && !differs; ++seed) {
    train.load(1, seed, c.data());
    differs = c != a;
  }
  CHECK(differs);
}

TEST_CASE("image_folder: identity resample is exact; crop boxes follow torchvision", "[image_folder]") {
  Image img;
  img.height = 5;
  img.width = 7;
  img.channels = 1;
  for (int i = 0; i < 35; ++i) img.pixels.push_back(uint8_t(i * 7));
  std::vector<float> out(35);
  for (Filter f : {Filter::kBilinear, Filter::kBicubic}) {
    resample_normalized(img, Box{0, 0, 7, 5}, 5, 7, f, false, {0.0}, {1.0}, out.data());
    for (int i = 0; i < 35; ++i) CHECK(out[size_t(i)] == Approx(i * 7 / 255.0).margin(1e-6));
  }
  resample_normalized(img, Box{0, 0, 7, 5}, 5, 7, Filter::kBilinear, true, {0.0}, {1.0}, out.data());
  CHECK(out[0] == Approx(6 * 7 / 255.0).margin(1e-6));  // flipped: row 0 starts with the last pixel
  // 300×400 image, 224 crop, crop_pct 0.875: resize to 256×341, crop at top 16, left round(58.5) = 58.
  const Box b = eval_box(300, 400, 224, 0.875);
  CHECK(b.y0 == Approx(16 * 300.0 / 256));
  CHECK(b.x0 == Approx(58 * 400.0 / 341));
  CHECK(b.x1 - b.x0 == Approx(224 * 400.0 / 341));
  std::mt19937_64 rng(3);
  for (int i = 0; i < 100; ++i) {
    const Box r = random_resized_box(30, 50, rng);
    REQUIRE(r.x0 >= 0);
    REQUIRE(r.y0 >= 0);
    REQUIRE(r.x1 <= 50);
    REQUIRE(r.y1 <= 30);
    REQUIRE(r.x1 > r.x0);
  }
}

TEST_CASE("image_folder: errors name the folder or file", "[image_folder]") {
  TempDir dir("imgerr");
  ImageFolderOptions o;
  CHECK_THROWS_WITH(ImageFolder(dir.path, "train", o),
                    Catch::Contains(dir / "train") && Catch::Contains("not a directory"));
  make_tree(dir.path);
  std::filesystem::create_directories(dir / "val/cat");
  CHECK_THROWS_WITH(ImageFolder(dir.path, "val", o, {"ant", "zebra"}), Catch::Contains("'cat'"));
  std::ofstream(dir / "train/ant/broken.jpg") << "garbage, not a JPEG";
  ImageFolder train(dir.path, "train", o);
  std::vector<float> out(size_t(3 * o.img_size * o.img_size));
  const int64_t broken = 0;  // ant is class 0 and broken.jpg sorts before img*.jpg
  CHECK_THROWS_WITH(train.load(broken, 0, out.data()), Catch::Contains("broken.jpg") && Catch::Contains("JPEG"));
  o.mean = {0.5};
  CHECK_THROWS_WITH(ImageFolder(dir.path, "train", o), Catch::Contains("one value per channel"));
}

namespace {

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The JPEG's bytes with the frame header (SOF0) claiming w × h pixels.
std::string with_size(std::string jpeg, uint16_t w, uint16_t h) {
  const size_t sof = jpeg.find("\xff\xc0");
  REQUIRE(sof != std::string::npos);
  jpeg[sof + 5] = char(h >> 8);
  jpeg[sof + 6] = char(h & 0xff);
  jpeg[sof + 7] = char(w >> 8);
  jpeg[sof + 8] = char(w & 0xff);
  return jpeg;
}

}  // namespace

TEST_CASE("jpeg: sizes are checked from the header, truncated and corrupt files are errors", "[image_folder]") {
  TempDir dir("jpeghostile");
  const std::string f = dir / "a.jpg";
  mnq_test::write_jpeg(f, ramp(40, 30, 7), 40, 30, 3);
  const std::string good = read_bytes(f);
  auto decode = [](const std::string& b, int64_t max_pixels = kDefaultMaxImagePixels) {
    return decode_jpeg(reinterpret_cast<const uint8_t*>(b.data()), b.size(), 3, "x.jpg", max_pixels);
  };
  CHECK(decode(good).width == 40);
  // A 65 500 × 65 500 claim in a file of a few hundred bytes: refused before 12 GiB are allocated.
  CHECK_THROWS_WITH(decode(with_size(good, 65500, 65500)),
                    Catch::Contains("x.jpg: 65500×65500 pixels exceed data.max_image_pixels (89478485)"));
  CHECK_THROWS_AS(decode(good, 40 * 30 - 1), BadImage);
  CHECK(decode(good, 40 * 30).height == 30);
  // Truncated in the scan: libjpeg would pad the rest with grey and warn ("Premature end of JPEG file").
  CHECK_THROWS_WITH(decode(good.substr(0, good.size() - 40)), Catch::Contains("x.jpg: JPEG decoding failed"));
  CHECK_THROWS_WITH(decode(good.substr(0, good.size() / 4)), Catch::Contains("x.jpg: not a readable JPEG"));
  CHECK_THROWS_WITH(decode(""), Catch::Contains("empty file"));
  std::ofstream(dir / "cut.jpg", std::ios::binary) << good.substr(0, good.size() - 40);
  CHECK_THROWS_AS(decode_jpeg_file(dir / "cut.jpg", 3), BadImage);
  // A file far larger than any JPEG within the pixel limit (4 bytes a pixel + 16 MiB) is not read into memory.
  const std::string sparse = dir / "huge.jpg";
  std::ofstream(sparse) << good;
  std::filesystem::resize_file(sparse, 4 + (16 << 20) + 1);
  CHECK_THROWS_WITH(decode_jpeg_file(sparse, 3, 1), Catch::Contains("more than a JPEG within data.max_image_pixels"));
}

TEST_CASE("image_folder: on_bad_image skip logs each bad file once and the loader fills the slot", "[image_folder]") {
  TempDir dir("imgskip");
  make_tree(dir.path);
  const std::string good = read_bytes(dir / "train/ant/img0.jpg");
  std::ofstream(dir / "train/ant/img0.jpg", std::ios::binary) << good.substr(0, good.size() / 2);  // truncated
  std::ofstream(dir / "train/zebra/big.jpg", std::ios::binary) << with_size(good, 65500, 65500);
  ImageFolderOptions o;
  o.img_size = 8;
  o.train_augment = false;
  std::vector<float> out(size_t(3 * 8 * 8));
  {
    ImageFolder strict(dir.path, "train", o);
    CHECK_THROWS_WITH(strict.try_load(0, 0, out.data()), Catch::Contains("img0.jpg"));
  }
  std::vector<std::string> lines;
  std::mutex mu;
  o.skip_bad_images = true;
  o.on_skip = [&](const std::string& line) {
    std::lock_guard<std::mutex> lock(mu);
    lines.push_back(line);
  };
  auto folder = std::make_shared<ImageFolder>(dir.path, "train", o);
  REQUIRE(folder->size() == 7);  // ant: img0..2; zebra: big, img0..2
  CHECK_FALSE(folder->try_load(0, 0, out.data()));
  CHECK_THROWS_AS(folder->load(0, 0, out.data()), BadImage);  // load() itself never skips
  Loader loader(folder, LoaderOptions{/*batch_size=*/7, /*shuffle=*/false, /*drop_last=*/false, /*workers=*/2});
  for (int epoch = 0; epoch < 2; ++epoch) {
    const Batch b = loader.batch(epoch, 0);
    REQUIRE(b.images.size(0) == 7);
    // Slot 0 (bad ant img0) holds ant img1; slot 3 (big zebra) holds zebra img0: images and labels move together.
    CHECK(b.images[0].equal(b.images[1]));
    CHECK(b.labels[0].item<int64_t>() == 0);
    CHECK(b.images[3].equal(b.images[4]));
    CHECK(b.labels[3].item<int64_t>() == 1);
  }
  std::string all;
  for (const auto& l : lines) all += l + "\n";
  INFO(all);
  CHECK(folder->bad_images() == 2);
  REQUIRE(lines.size() == 2);  // once per file, not per epoch
  CHECK_THAT(lines[0], Catch::Contains("img0.jpg") && Catch::Contains("1 so far"));
  CHECK_THAT(lines[1], Catch::Contains("big.jpg") && Catch::Contains("exceed"));
}
