// RandAugment: known answers of every op on tiny hand-made images (the PIL arithmetic of augment_ops.h worked
// out by hand), affine maps moving one bright pixel where the map says, timm-string parsing and its errors,
// the magnitude → argument maps at the ends of the range, and determinism in the seed.
#include <catch2/catch.hpp>

#include "csrc/data/augment_ops.h"
#include "csrc/data/rand_augment.h"

using namespace mnq::data;

namespace {

Image grey(int64_t h, int64_t w, uint8_t v = 0) { return Image{h, w, 1, std::vector<uint8_t>(size_t(h * w), v)}; }

uint8_t& px(Image& img, int64_t x, int64_t y, int64_t c = 0) {
  return img.pixels[size_t((y * img.width + x) * img.channels + c)];
}

// The positions of the pixels equal to v.
std::vector<std::pair<int64_t, int64_t>> where(const Image& img, uint8_t v) {
  std::vector<std::pair<int64_t, int64_t>> out;
  for (int64_t y = 0; y < img.height; ++y) {
    for (int64_t x = 0; x < img.width; ++x) {
      if (img.pixels[size_t(y * img.width + x)] == v) out.emplace_back(x, y);
    }
  }
  return out;
}

Image random_rgb(int64_t h, int64_t w, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Image img{h, w, 3, std::vector<uint8_t>(size_t(h * w * 3))};
  for (auto& v : img.pixels) v = uint8_t(rng() % 256);
  return img;
}

}  // namespace

TEST_CASE("rand_augment: point ops, known answers", "[augment]") {
  Image img{1, 4, 1, {0, 100, 183, 255}};
  aug::invert(img);
  CHECK(img.pixels == std::vector<uint8_t>{255, 155, 72, 0});

  img.pixels = {0, 100, 183, 255};
  aug::posterize(img, 3);  // keep the top 3 bits: 183 = 0b10110111 → 0b10100000
  CHECK(img.pixels == std::vector<uint8_t>{0, 96, 160, 224});
  aug::posterize(img, 0);
  CHECK(img.pixels == std::vector<uint8_t>{0, 0, 0, 0});
  CHECK_THROWS_WITH(aug::posterize(img, 9), Catch::Contains("0..8"));

  img.pixels = {0, 127, 128, 255};
  aug::solarize(img, 128);
  CHECK(img.pixels == std::vector<uint8_t>{0, 127, 127, 0});
  img.pixels = {0, 127, 128, 255};
  aug::solarize(img, 256);  // threshold 256: nothing is inverted
  CHECK(img.pixels == std::vector<uint8_t>{0, 127, 128, 255});

  img.pixels = {0, 100, 127, 128};
  aug::solarize_add(img, 60, 128);
  CHECK(img.pixels == std::vector<uint8_t>{60, 160, 187, 128});
  img.pixels = {150, 199, 200, 10};
  aug::solarize_add(img, 128, 200);  // saturates at 255
  CHECK(img.pixels == std::vector<uint8_t>{255, 255, 200, 138});
}

TEST_CASE("rand_augment: autocontrast and equalize, known answers", "[augment]") {
  // Channel range [10, 61]: scale 255/51 = 5, offset −50.
  Image img{1, 4, 1, {10, 20, 30, 61}};
  aug::autocontrast(img);
  CHECK(img.pixels == std::vector<uint8_t>{0, 50, 100, 255});
  // Per channel: an RGB image whose channels have different ranges; a constant channel is kept.
  Image rgb{1, 2, 3, {10, 0, 7, 61, 51, 7}};
  aug::autocontrast(rgb);
  CHECK(rgb.pixels == std::vector<uint8_t>{0, 0, 7, 255, 255, 7});

  // 3 × 255 pixels at levels 5, 90, 200: step = (765 − 255) // 255 = 2, so the levels map to 1//2 = 0,
  // 256//2 = 128 and 511//2 = 255.
  Image eq = grey(5, 153);
  for (size_t i = 0; i < eq.pixels.size(); ++i) eq.pixels[i] = i < 255 ? 5 : (i < 510 ? 90 : 200);
  aug::equalize(eq);
  CHECK(eq.pixels[0] == 0);
  CHECK(eq.pixels[300] == 128);
  CHECK(eq.pixels[600] == 255);
  // One occupied level: unchanged.
  Image flat = grey(3, 3, 77);
  aug::equalize(flat);
  CHECK(flat.pixels == grey(3, 3, 77).pixels);
}

TEST_CASE("rand_augment: blends (brightness, contrast, colour, sharpness), known answers", "[augment]") {
  Image img{1, 2, 1, {201, 100}};
  aug::brightness(img, 0.5);  // 0 + 0.5·201 = 100.5 → truncated
  CHECK(img.pixels == std::vector<uint8_t>{100, 50});
  img.pixels = {201, 100};
  aug::brightness(img, 1.5);  // outside [0, 1]: clipped
  CHECK(img.pixels == std::vector<uint8_t>{255, 150});

  img.pixels = {100, 201};  // mean 150.5 → 151; 151 + 0.5·(100 − 151) = 125.5, 151 + 0.5·50 = 176
  aug::contrast(img, 0.5);
  CHECK(img.pixels == std::vector<uint8_t>{125, 176});
  img.pixels = {100, 201};
  aug::contrast(img, 0.0);
  CHECK(img.pixels == std::vector<uint8_t>{151, 151});

  // Luma of (200, 100, 50): (200·19595 + 100·38470 + 50·7471 + 32768) >> 16 = 124.
  CHECK(aug::luma(200, 100, 50) == 124);
  Image rgb{1, 1, 3, {200, 100, 50}};
  aug::color(rgb, 0.0);
  CHECK(rgb.pixels == std::vector<uint8_t>{124, 124, 124});
  rgb.pixels = {200, 100, 50};
  aug::color(rgb, 0.5);
  CHECK(rgb.pixels == std::vector<uint8_t>{162, 112, 87});
  Image g{1, 2, 1, {3, 250}};
  aug::color(g, 0.0);  // grey: unchanged
  CHECK(g.pixels == std::vector<uint8_t>{3, 250});

  // Sharpness 0 gives the SMOOTH image: 130 at the centre of zeros → 130·5/13 = 50 there, 130/13 = 10 around
  // it; the border rows and columns are copied, not filtered.
  Image s = grey(5, 5);
  px(s, 2, 2) = 130;
  px(s, 4, 0) = 200;
  aug::sharpness(s, 0.0);
  CHECK(px(s, 2, 2) == 50);
  CHECK(px(s, 1, 1) == 10);
  CHECK(px(s, 3, 2) == 10);
  CHECK(px(s, 4, 0) == 200);
  CHECK(px(s, 1, 0) == 0);
  // Sharpness 2: 2·130 − 50 = 210 at the centre, 0 − 10 → clipped to 0 around it.
  Image t = grey(5, 5);
  px(t, 2, 2) = 130;
  aug::sharpness(t, 2.0);
  CHECK(px(t, 2, 2) == 210);
  CHECK(px(t, 1, 2) == 0);
}

TEST_CASE("rand_augment: affine maps move a bright pixel where the map says", "[augment]") {
  for (Filter f : {Filter::kBilinear, Filter::kBicubic}) {
    INFO((f == Filter::kBilinear ? "bilinear" : "bicubic"));
    const std::vector<uint8_t> fill = {7};
    Image img = grey(9, 9);
    px(img, 4, 4) = 255;
    // translate: output (x, y) reads input (x + 2, y): the pixel moves 2 left; columns 7, 8 read outside → fill.
    Image t = img;
    aug::affine(t, aug::translate(2, 0), f, fill);
    CHECK(where(t, 255) == std::vector<std::pair<int64_t, int64_t>>{{2, 4}});
    CHECK(px(t, 7, 0) == 7);
    CHECK(px(t, 8, 8) == 7);
    CHECK(px(t, 6, 0) == 0);
    Image ty = img;
    aug::affine(ty, aug::translate(0, -3), f, fill);  // moves 3 down; rows 0..2 read outside
    CHECK(where(ty, 255) == std::vector<std::pair<int64_t, int64_t>>{{4, 7}});
    CHECK(px(ty, 0, 2) == 7);

    // shear_x by 0.8: row 2 (centre y + ½ = 2.5) reads x + 2, an integer shift there.
    Image sx = grey(9, 9);
    px(sx, 4, 2) = 255;
    aug::affine(sx, aug::shear_x(0.8), f, fill);
    CHECK(px(sx, 2, 2) == 255);
    CHECK(px(sx, 4, 2) == 0);
    Image sy = grey(9, 9);
    px(sy, 2, 4) = 255;
    aug::affine(sy, aug::shear_y(-0.8), f, fill);  // column 2 reads y − 2: the pixel moves 2 down
    CHECK(px(sy, 2, 6) == 255);
    CHECK(px(sy, 2, 4) == 0);

    // rotate by 90° (counter-clockwise) about the centre (4.5, 4.5): right of the centre goes above it.
    Image r = grey(9, 9);
    px(r, 6, 4) = 255;
    aug::affine(r, aug::rotate(90, 9, 9), f, fill);
    CHECK(where(r, 255) == std::vector<std::pair<int64_t, int64_t>>{{4, 2}});
    Image r0 = img;
    aug::affine(r0, aug::rotate(0, 9, 9), f, fill);  // identity
    CHECK(r0.pixels == img.pixels);
  }
  const aug::Affine m = aug::rotate(-30, 20, 10);
  CHECK(m[0] == Approx(std::cos(M_PI / 6)));
  CHECK(m[1] == Approx(0.5));  // PIL: sin of −radians(−30 mod 360)
  Image rgb{2, 2, 3, std::vector<uint8_t>(12, 9)};
  CHECK_THROWS_WITH(aug::affine(rgb, aug::translate(1, 0), Filter::kBilinear, {1}), Catch::Contains("fill"));
}

TEST_CASE("rand_augment: timm strings parse, bad ones name the part", "[augment]") {
  const RandAugmentConfig c = parse_rand_augment("rand-m9-mstd0.5-inc1");
  CHECK(c.magnitude == 9);
  CHECK(c.magnitude_std == 0.5);
  CHECK(c.increasing);
  CHECK(c.num_ops == 2);
  CHECK(c.prob == 0.5);
  CHECK(c.magnitude_max == 10);
  const RandAugmentConfig d = parse_rand_augment("rand-n3-m7-p1.0-mstd101-mmax12");
  CHECK(d.num_ops == 3);
  CHECK(d.magnitude == 7);
  CHECK(d.prob == 1.0);
  CHECK(std::isinf(d.magnitude_std));  // > 100: uniform magnitudes, as timm
  CHECK(d.magnitude_max == 12);
  CHECK(!d.increasing);
  CHECK(parse_rand_augment("rand").magnitude == 10);
  CHECK_THROWS_WITH(parse_rand_augment(""), Catch::Contains("must start with 'rand'"));
  CHECK_THROWS_WITH(parse_rand_augment("rnd-m9"), Catch::Contains("must start with 'rand'"));
  CHECK_THROWS_WITH(parse_rand_augment("rand-m"), Catch::Contains("section 'm'"));
  CHECK_THROWS_WITH(parse_rand_augment("rand-x9"), Catch::Contains("unknown section 'x9'"));
  CHECK_THROWS_WITH(parse_rand_augment("rand-m11"), Catch::Contains("'m' must be in 0..10"));
  CHECK_THROWS_WITH(parse_rand_augment("rand-m9.5"), Catch::Contains("'m' needs an integer"));
  CHECK_THROWS_WITH(parse_rand_augment("rand-m9-inc2"), Catch::Contains("'inc' must be 0 or 1"));
  CHECK_THROWS_WITH(parse_rand_augment("rand-p1.5"), Catch::Contains("'p' must be in [0, 1]"));
  CHECK_THROWS_WITH(parse_rand_augment("rand-n0"), Catch::Contains("'n' must be in 1..16"));
  CHECK_THROWS_WITH(parse_rand_augment("rand-mstd0.5x"), Catch::Contains("'mstd' needs a number"));
  CHECK_THROWS_WITH(parse_rand_augment("rand-tweights"), Catch::Contains("not supported"));
}

TEST_CASE("rand_augment: magnitude maps at the ends of the range", "[augment]") {
  const RandAugment ra(parse_rand_augment("rand-m9-inc1"), Filter::kBilinear, {128});
  std::mt19937_64 rng(1);
  Image img{1, 4, 1, {0, 100, 183, 255}};
  Image a = img;
  ra.apply_op(a, AugOp::kPosterize, 10, rng);  // increasing: 4 − int(4·1) = 0 bits
  CHECK(a.pixels == std::vector<uint8_t>{0, 0, 0, 0});
  a = img;
  ra.apply_op(a, AugOp::kPosterize, 0, rng);  // 4 bits
  CHECK(a.pixels == std::vector<uint8_t>{0, 96, 176, 240});
  a = img;
  ra.apply_op(a, AugOp::kSolarize, 0, rng);  // increasing: threshold 256, no change
  CHECK(a.pixels == img.pixels);
  a = img;
  ra.apply_op(a, AugOp::kSolarize, 10, rng);  // threshold 0: every value inverted
  CHECK(a.pixels == std::vector<uint8_t>{255, 155, 72, 0});
  a = img;
  ra.apply_op(a, AugOp::kSolarizeAdd, 10, rng);  // + min(128, 110) below 128
  CHECK(a.pixels == std::vector<uint8_t>{110, 210, 183, 255});
  a = img;
  ra.apply_op(a, AugOp::kBrightness, 0, rng);  // increasing at 0: factor 1, no change
  CHECK(a.pixels == img.pixels);
  // The non-increasing list: Solarize threshold min(256, int(256·0.9)) = 230.
  const RandAugment dec(parse_rand_augment("rand-m9"), Filter::kBilinear, {128});
  a = img;
  dec.apply_op(a, AugOp::kSolarize, 9, rng);
  CHECK(a.pixels == std::vector<uint8_t>{0, 100, 183, 0});
  CHECK(std::string(aug_op_name(AugOp::kSolarize, true)) == "SolarizeIncreasing");
  CHECK(mean_fill({0.485, 0.456, 0.406}) == std::vector<uint8_t>{124, 116, 104});
}

TEST_CASE("rand_augment: deterministic in the seed, different seeds differ", "[augment]") {
  const RandAugment ra(parse_rand_augment("rand-m9-mstd0.5-inc1"), Filter::kBicubic, {124, 116, 104});
  const Image src = random_rgb(24, 20, 5);
  int differ = 0, changed = 0;
  for (uint64_t seed = 0; seed < 12; ++seed) {
    Image a = src, b = src, c = src;
    std::mt19937_64 r1(seed), r2(seed), r3(seed + 1000);
    ra(a, r1);
    ra(b, r2);
    ra(c, r3);
    CHECK(a.pixels == b.pixels);
    differ += a.pixels != c.pixels;
    changed += a.pixels != src.pixels;
  }
  // p = 0.5 per op, 2 ops: an image is left unchanged with probability about ¼.
  CHECK(differ >= 6);
  CHECK(changed >= 6);
  Image grey_img = grey(4, 4);
  std::mt19937_64 rng(0);
  CHECK_THROWS_WITH(ra(grey_img, rng), Catch::Contains("3 fill values for an image of 1 channels"));
}
