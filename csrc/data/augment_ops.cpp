// RandAugment's image operations; see augment_ops.h for the PIL calls each one reproduces.
#include "csrc/data/augment_ops.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace mnq {
namespace data {
namespace aug {
namespace {

// One lookup table per channel applied to every pixel.
void apply_luts(Image& img, const std::vector<std::array<uint8_t, 256>>& luts) {
  const int64_t C = img.channels;
  uint8_t* p = img.pixels.data();
  const int64_t n = img.height * img.width;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t c = 0; c < C; ++c) p[i * C + c] = luts[size_t(c)][p[i * C + c]];
  }
}

std::vector<std::array<int64_t, 256>> histograms(const Image& img) {
  std::vector<std::array<int64_t, 256>> h(size_t(img.channels));
  for (auto& a : h) a.fill(0);
  const int64_t C = img.channels;
  for (size_t i = 0; i < img.pixels.size(); ++i) h[i % size_t(C)][img.pixels[i]] += 1;
  return h;
}

// Pillow's ImagingBlend(degenerate, img, alpha) with a float alpha: inside [0, 1] the result lies between the
// two inputs and is truncated; outside it is clipped to 0..255 first.
void blend_into(Image& img, const std::vector<uint8_t>& degenerate, double factor) {
  const float alpha = float(factor);
  if (alpha == 1.0f) return;
  const bool inside = alpha >= 0.0f && alpha <= 1.0f;
  for (size_t i = 0; i < img.pixels.size(); ++i) {
    const int a = degenerate[i], b = img.pixels[i];
    const float t = float(a) + alpha * float(b - a);
    img.pixels[i] = inside ? uint8_t(t) : (t <= 0.0f ? 0 : t >= 255.0f ? 255 : uint8_t(t));
  }
}

std::vector<uint8_t> luma_plane(const Image& img) {
  const int64_t n = img.height * img.width;
  std::vector<uint8_t> l(static_cast<size_t>(n));
  const uint8_t* p = img.pixels.data();
  for (int64_t i = 0; i < n; ++i) {
    l[size_t(i)] = img.channels == 3 ? luma(p[3 * i], p[3 * i + 1], p[3 * i + 2]) : p[i];
  }
  return l;
}

int64_t clip_index(int64_t v, int64_t n) { return v < 0 ? 0 : (v < n ? v : n - 1); }

// Pillow's transform cubic (a = −1) through four samples at offsets −1, 0, 1, 2 of the point d in [0, 1).
double cubic(double v1, double v2, double v3, double v4, double d) {
  const double p1 = v2, p2 = -v1 + v3, p3 = 2 * (v1 - v2) + v3 - v4, p4 = -v1 + v2 - v3 + v4;
  return p1 + d * (p2 + d * (p3 + d * p4));
}

uint8_t to_u8(double v) { return v <= 0.0 ? 0 : (v >= 255.0 ? 255 : uint8_t(v)); }

// Pillow's bilinear_filter at (xin, yin) inside the image, every channel: neighbours clamped; the second row
// only when it exists.
void sample_bilinear(const Image& img, double xin, double yin, uint8_t* dst) {
  const int64_t W = img.width, H = img.height, C = img.channels;
  xin -= 0.5;
  yin -= 0.5;
  const int64_t x = int64_t(std::floor(xin)), y = int64_t(std::floor(yin));
  const double dx = xin - double(x), dy = yin - double(y);
  const int64_t x0 = clip_index(x, W) * C, x1 = clip_index(x + 1, W) * C;
  const uint8_t* r0 = img.pixels.data() + clip_index(y, H) * W * C;
  const bool second = y + 1 >= 0 && y + 1 < H;
  const uint8_t* r1 = img.pixels.data() + (second ? y + 1 : 0) * W * C;
  for (int64_t c = 0; c < C; ++c) {
    double v1 = double(r0[x0 + c]) + (double(r0[x1 + c]) - double(r0[x0 + c])) * dx;
    if (second) {
      const double v2 = double(r1[x0 + c]) + (double(r1[x1 + c]) - double(r1[x0 + c])) * dx;
      v1 = v1 + (v2 - v1) * dy;
    }
    dst[c] = uint8_t(v1);
  }
}

// Pillow's bicubic_filter at (xin, yin), every channel: the first of the four rows clamped, a missing later row
// repeats the previous one.
void sample_bicubic(const Image& img, double xin, double yin, uint8_t* dst) {
  const int64_t W = img.width, H = img.height, C = img.channels;
  xin -= 0.5;
  yin -= 0.5;
  const int64_t x = int64_t(std::floor(xin)) - 1, y = int64_t(std::floor(yin)) - 1;
  const double dx = xin - double(x + 1), dy = yin - double(y + 1);
  const int64_t xs[4] = {clip_index(x, W) * C, clip_index(x + 1, W) * C, clip_index(x + 2, W) * C,
                         clip_index(x + 3, W) * C};
  // The source row of each of the four taps (−1: repeat the previous tap's value).
  int64_t rows[4] = {clip_index(y, H), -1, -1, -1};
  for (int k = 1; k < 4; ++k) rows[k] = (y + k >= 0 && y + k < H) ? y + k : -1;
  for (int64_t c = 0; c < C; ++c) {
    auto tap = [&](int64_t r) {
      const uint8_t* in = img.pixels.data() + r * W * C + c;
      return cubic(in[xs[0]], in[xs[1]], in[xs[2]], in[xs[3]], dx);
    };
    double v[4];
    v[0] = tap(rows[0]);
    for (int k = 1; k < 4; ++k) v[k] = rows[k] < 0 ? v[k - 1] : tap(rows[k]);
    dst[c] = to_u8(cubic(v[0], v[1], v[2], v[3], dy));
  }
}

}  // namespace

void invert(Image& img) {
  for (auto& v : img.pixels) v = uint8_t(255 - v);
}

void posterize(Image& img, int bits) {
  if (bits < 0 || bits > 8) throw std::invalid_argument("posterize: bits must be in 0..8");
  if (bits == 8) return;
  const uint8_t mask = uint8_t(~((1u << (8 - bits)) - 1u));
  for (auto& v : img.pixels) v = uint8_t(v & mask);
}

void solarize(Image& img, int threshold) {
  for (auto& v : img.pixels) {
    if (v >= threshold) v = uint8_t(255 - v);
  }
}

void solarize_add(Image& img, int add, int threshold) {
  for (auto& v : img.pixels) {
    if (v < threshold) v = uint8_t(std::min(255, int(v) + add));
  }
}

void autocontrast(Image& img) {
  const auto hist = histograms(img);
  std::vector<std::array<uint8_t, 256>> luts(hist.size());
  for (size_t c = 0; c < hist.size(); ++c) {
    const auto& h = hist[c];
    int lo = 0, hi = 255;
    while (lo < 255 && h[size_t(lo)] == 0) ++lo;
    while (hi > 0 && h[size_t(hi)] == 0) --hi;
    for (int i = 0; i < 256; ++i) {
      if (hi <= lo) {
        luts[c][size_t(i)] = uint8_t(i);
        continue;
      }
      const double scale = 255.0 / double(hi - lo), offset = -double(lo) * scale;
      // Python's int(): truncation towards zero, then clamped.
      const int64_t v = int64_t(std::trunc(double(i) * scale + offset));
      luts[c][size_t(i)] = uint8_t(std::clamp<int64_t>(v, 0, 255));
    }
  }
  apply_luts(img, luts);
}

void equalize(Image& img) {
  const auto hist = histograms(img);
  std::vector<std::array<uint8_t, 256>> luts(hist.size());
  for (size_t c = 0; c < hist.size(); ++c) {
    const auto& h = hist[c];
    int64_t total = 0, last = 0, nonzero = 0;
    for (int64_t v : h) {
      if (v) {
        total += v;
        last = v;
        ++nonzero;
      }
    }
    // step: the pixels per output level, not counting the last occupied bin (Pillow's rule).
    const int64_t step = nonzero <= 1 ? 0 : (total - last) / 255;
    int64_t n = step / 2;
    for (int i = 0; i < 256; ++i) {
      if (step == 0) {
        luts[c][size_t(i)] = uint8_t(i);
        continue;
      }
      luts[c][size_t(i)] = uint8_t(std::min<int64_t>(n / step, 255));
      n += h[size_t(i)];
    }
  }
  apply_luts(img, luts);
}

void brightness(Image& img, double factor) { blend_into(img, std::vector<uint8_t>(img.pixels.size(), 0), factor); }

void contrast(Image& img, double factor) {
  const std::vector<uint8_t> l = luma_plane(img);
  double sum = 0;
  for (uint8_t v : l) sum += v;
  const int mean = int(sum / double(std::max<size_t>(l.size(), 1)) + 0.5);
  blend_into(img, std::vector<uint8_t>(img.pixels.size(), uint8_t(mean)), factor);
}

void color(Image& img, double factor) {
  if (img.channels != 3) return;  // the degenerate of a grey image is the image itself
  const std::vector<uint8_t> l = luma_plane(img);
  std::vector<uint8_t> grey(img.pixels.size());
  for (size_t i = 0; i < grey.size(); ++i) grey[i] = l[i / 3];
  blend_into(img, grey, factor);
}

void sharpness(Image& img, double factor) {
  // Pillow's SMOOTH: kernel (1 1 1 / 1 5 1 / 1 1 1) / 13 in float, border rows and columns copied.
  const int64_t W = img.width, H = img.height, C = img.channels;
  std::vector<uint8_t> smooth = img.pixels;
  const float k1 = 1.0f / 13.0f, k5 = 5.0f / 13.0f;
  for (int64_t y = 1; y + 1 < H; ++y) {
    for (int64_t x = 1; x + 1 < W; ++x) {
      for (int64_t c = 0; c < C; ++c) {
        auto at = [&](int64_t yy, int64_t xx) { return float(img.pixels[size_t((yy * W + xx) * C + c)]); };
        float ss = 0.0f;
        ss += at(y - 1, x - 1) * k1 + at(y - 1, x) * k1 + at(y - 1, x + 1) * k1;
        ss += at(y, x - 1) * k1 + at(y, x) * k5 + at(y, x + 1) * k1;
        ss += at(y + 1, x - 1) * k1 + at(y + 1, x) * k1 + at(y + 1, x + 1) * k1;
        smooth[size_t((y * W + x) * C + c)] = ss <= 0.0f ? 0 : ss >= 255.0f ? 255 : uint8_t(ss + 0.5f);
      }
    }
  }
  blend_into(img, smooth, factor);
}

void affine(Image& img, const Affine& m, Filter filter, const std::vector<uint8_t>& fill) {
  if (fill.size() != size_t(img.channels)) throw std::invalid_argument("affine: one fill value per channel");
  const int64_t W = img.width, H = img.height, C = img.channels;
  std::vector<uint8_t> out(img.pixels.size());
  for (int64_t y = 0; y < H; ++y) {
    for (int64_t x = 0; x < W; ++x) {
      const double xo = double(x) + 0.5, yo = double(y) + 0.5;
      const double xin = m[0] * xo + m[1] * yo + m[2], yin = m[3] * xo + m[4] * yo + m[5];
      uint8_t* dst = out.data() + (y * W + x) * C;
      if (!(xin >= 0.0 && xin < double(W) && yin >= 0.0 && yin < double(H))) {
        std::copy(fill.begin(), fill.end(), dst);
      } else if (filter == Filter::kBilinear) {
        sample_bilinear(img, xin, yin, dst);
      } else {
        sample_bicubic(img, xin, yin, dst);
      }
    }
  }
  img.pixels = std::move(out);
}

Affine shear_x(double factor) { return {1, factor, 0, 0, 1, 0}; }
Affine shear_y(double factor) { return {1, 0, 0, factor, 1, 0}; }
Affine translate(double dx, double dy) { return {1, 0, dx, 0, 1, dy}; }

Affine rotate(double degrees, int64_t width, int64_t height) {
  // PIL's Image.rotate: the inverse rotation about the centre (w/2, h/2), entries rounded to 15 decimals.
  const double angle = -std::fmod(std::fmod(degrees, 360.0) + 360.0, 360.0) * M_PI / 180.0;
  auto r15 = [](double v) { return std::nearbyint(v * 1e15) / 1e15; };
  const double a = r15(std::cos(angle)), b = r15(std::sin(angle)), d = r15(-std::sin(angle)), e = a;
  const double cx = double(width) / 2.0, cy = double(height) / 2.0;
  return {a, b, a * -cx + b * -cy + cx, d, e, d * -cx + e * -cy + cy};
}

}  // namespace aug
}  // namespace data
}  // namespace mnq
