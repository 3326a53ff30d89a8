// The image operations of RandAugment on uint8 images (data::Image, 1 or 3 channels), each the computation of
// the PIL call timm's auto_augment.py makes (Pillow's ImageOps, ImageEnhance, Image.transform), without PIL:
//   point ops (a lookup table per channel): invert, posterize, solarize, solarize_add, autocontrast, equalize;
//   blends  (Image.blend(degenerate, img, f) = degenerate + f·(img − degenerate), truncated to uint8, clipped to
//            0..255 when f is outside [0, 1]): brightness (degenerate black), contrast (a grey image of the
//            rounded mean luma), color (the luma image), sharpness (the 3×3 SMOOTH filter, borders kept);
//   affine  (Image.transform(AFFINE)): output pixel (x, y) samples the input at (a·(x+½) + b·(y+½) + c,
//            d·(x+½) + e·(y+½) + f); a point outside the image takes the fill colour; bilinear or bicubic
//            (Pillow's transform cubic has a = −1, unlike its resize) with clamped neighbours, truncated to uint8.
// Luma is Pillow's RGB→L: (19595·R + 38470·G + 7471·B + 2^15) >> 16.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "csrc/data/image.h"

namespace mnq {
namespace data {
namespace aug {

void invert(Image& img);
void posterize(Image& img, int bits);  // keep the top `bits` bits (0..8; 0 gives black, as Pillow before 10)
void solarize(Image& img, int threshold);               // v >= threshold → 255 − v
void solarize_add(Image& img, int add, int threshold);  // v < threshold → min(255, v + add)
void autocontrast(Image& img);                          // per channel: [lo, hi] stretched to [0, 255]
void equalize(Image& img);                              // per channel: Pillow's histogram equalisation

void brightness(Image& img, double factor);
void contrast(Image& img, double factor);
void color(Image& img, double factor);  // a grey image is unchanged
void sharpness(Image& img, double factor);

// The 6 coefficients (a, b, c, d, e, f) of Pillow's AFFINE transform (output → input coordinates).
using Affine = std::array<double, 6>;
// Resamples `img` through `m`; `fill` has one value per channel.
void affine(Image& img, const Affine& m, Filter filter, const std::vector<uint8_t>& fill);
// The maps timm uses: shear_x (1, f, 0, 0, 1, 0), shear_y (1, 0, 0, f, 1, 0), translate (1, 0, dx, 0, 1, dy),
// and PIL's rotate(degrees) about the image centre (counter-clockwise for positive degrees).
Affine shear_x(double factor);
Affine shear_y(double factor);
Affine translate(double dx, double dy);
Affine rotate(double degrees, int64_t width, int64_t height);

// Pillow's luma of one RGB pixel.
inline uint8_t luma(uint8_t r, uint8_t g, uint8_t b) {
  return uint8_t((uint32_t(r) * 19595u + uint32_t(g) * 38470u + uint32_t(b) * 7471u + 0x8000u) >> 16);
}

}  // namespace aug
}  // namespace data
}  // namespace mnq
