// Decoded images and the preprocessing of timm's transforms, without PIL:
//   eval:  resize the shorter side to floor(size / crop_pct), center crop size×size, /255, (x − mean) / std
//   train: random-resized crop (area 8–100 %, aspect 3/4–4/3, torchvision's 10-try rule), resize to size×size,
//          horizontal flip with p = 0.5, /255, normalise.
// Resampling is PIL's separable convolution resize (antialiased: when shrinking, the filter is widened by the
// scale factor so every source pixel contributes), bilinear (triangle) or bicubic (Keys, a = −0.5). A resize
// followed by a crop is one resample of a source box. Values stay float between the two passes (PIL rounds to
// uint8 there), so results match PIL to about one grey level, not bit for bit.
#pragma once

#include <cstdint>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace mnq {
namespace data {

struct Image {
  int64_t height = 0, width = 0, channels = 0;
  std::vector<uint8_t> pixels;  // [height, width, channels], row-major
};

// PIL's decompression-bomb limit (Image.MAX_IMAGE_PIXELS: 89 478 485 pixels, about 256 MiB as RGB): the default
// of data.max_image_pixels. A 600-byte JPEG can claim 65 500 × 65 500 pixels (12 GiB as RGB).
constexpr int64_t kDefaultMaxImagePixels = 89'478'485;

// An image that cannot be used: unreadable, not a JPEG, larger than the pixel limit, truncated or corrupt.
class BadImage : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Decodes a JPEG file with libjpeg-turbo to `channels` (3: RGB, 1: grey). The width × height from the header must
// not exceed `max_pixels` (checked before anything is allocated); libjpeg's warnings (a truncated file: "Premature
// end of JPEG file", corrupt entropy data) are errors, as PIL refuses truncated files. Throws BadImage naming the
// file.
Image decode_jpeg_file(const std::string& path, int64_t channels, int64_t max_pixels = kDefaultMaxImagePixels);
Image decode_jpeg(const uint8_t* data, size_t size, int64_t channels, const std::string& name,
                  int64_t max_pixels = kDefaultMaxImagePixels);

enum class Filter { kBilinear, kBicubic };
Filter parse_filter(const std::string& name);  // "bilinear" | "bicubic"

// A source rectangle in pixel coordinates (may be fractional).
struct Box {
  double x0, y0, x1, y1;
};

// Resamples `box` of `src` to out_h × out_w and writes (v/255 − mean[c]) / std[c] as float [C, out_h, out_w];
// flips horizontally when `flip`.
void resample_normalized(const Image& src, const Box& box, int64_t out_h, int64_t out_w, Filter filter, bool flip,
                         const std::vector<double>& mean, const std::vector<double>& std, float* out);

// The same resample to a uint8 image, each value rounded to the nearest integer (PIL's 8-bit output): the input of
// RandAugment, which works on uint8 images as PIL does.
Image resample(const Image& src, const Box& box, int64_t out_h, int64_t out_w, Filter filter, bool flip);
// (v/255 − mean[c]) / std[c] of every pixel, written as float [C, H, W].
void normalize(const Image& img, const std::vector<double>& mean, const std::vector<double>& std, float* out);

// timm's eval crop: the box of `src` that Resize(floor(size / crop_pct)) + CenterCrop(size) keeps.
Box eval_box(int64_t height, int64_t width, int64_t size, double crop_pct);
// torchvision's RandomResizedCrop box (scale 0.08–1, ratio 3/4–4/3), drawn from `rng`.
Box random_resized_box(int64_t height, int64_t width, std::mt19937_64& rng);

}  // namespace data
}  // namespace mnq
