#include "csrc/data/image.h"

#include <turbojpeg.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <fstream>
#include <memory>
#include <stdexcept>

namespace mnq {
namespace data {
namespace {

// One libjpeg-turbo decompressor per thread (a handle is not thread-safe; creating one per image is wasteful).
struct Decompressor {
  tjhandle h = tjInitDecompress();
  ~Decompressor() {
    if (h) tjDestroy(h);
  }
  // A handle whose decompression stopped on a warning (TJFLAG_STOPONWARNING) can report the next file's header as
  // 0 × 0: a failed image gets a fresh handle.
  void reset() {
    if (h) tjDestroy(h);
    h = tjInitDecompress();
  }
};

Decompressor& decompressor() {
  thread_local Decompressor d;
  if (!d.h) throw std::runtime_error("libjpeg-turbo: cannot create a decompressor");
  return d;
}

double filter_support(Filter f) { return f == Filter::kBilinear ? 1.0 : 2.0; }

double filter_weight(Filter f, double x) {
  x = std::fabs(x);
  if (f == Filter::kBilinear) return x < 1.0 ? 1.0 - x : 0.0;
  constexpr double a = -0.5;  // Keys' cubic convolution with a = −0.5, as PIL's BICUBIC
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

// The taps of one output axis: output i reads source pixels [first[i], first[i] + count[i]) with weights
// w[i·max_taps …]. The source interval [lo, hi) of length `in_len·scale` maps onto `out_len` pixels; a shrink by
// `scale` > 1 widens the filter by `scale` (antialiasing), as PIL does.
struct Taps {
  int64_t max_taps = 0;
  std::vector<int64_t> first, count;
  std::vector<double> w;
};

Taps make_taps(double lo, double hi, int64_t in_len, int64_t out_len, Filter f) {
  const double scale = (hi - lo) / double(out_len);
  const double fscale = std::max(scale, 1.0);
  const double support = filter_support(f) * fscale;
  Taps t;
  t.max_taps = int64_t(std::ceil(support)) * 2 + 1;
  t.first.resize(out_len);
  t.count.resize(out_len);
  t.w.assign(size_t(out_len * t.max_taps), 0.0);
  for (int64_t i = 0; i < out_len; ++i) {
    const double center = lo + (double(i) + 0.5) * scale;
    const int64_t a = std::max<int64_t>(int64_t(std::floor(center - support + 0.5)), 0);
    const int64_t b = std::min<int64_t>(int64_t(std::floor(center + support + 0.5)), in_len);
    const int64_t n = std::min(std::max<int64_t>(b - a, 0), t.max_taps);
    double sum = 0;
    for (int64_t k = 0; k < n; ++k) {
      // Distance from the output centre to the centre of source pixel a + k, in filter units.
      const double wk = filter_weight(f, (double(a + k) + 0.5 - center) / fscale);
      t.w[size_t(i * t.max_taps + k)] = wk;
      sum += wk;
    }
    if (sum != 0) {
      for (int64_t k = 0; k < n; ++k) t.w[size_t(i * t.max_taps + k)] /= sum;
    }
    t.first[i] = a;
    t.count[i] = n;
  }
  return t;
}

}  // namespace

Image decode_jpeg(const uint8_t* data, size_t size, int64_t channels, const std::string& name, int64_t max_pixels) {
  if (channels != 1 && channels != 3) throw std::invalid_argument(name + ": channels must be 1 or 3");
  Decompressor& d = decompressor();
  tjhandle h = d.h;
  auto bad = [&](const std::string& what) {
    d.reset();
    return BadImage(name + ": " + what);
  };
  int w = 0, ht = 0, subsamp = 0, colorspace = 0;
  if (size == 0 || size > ULONG_MAX ||
      tjDecompressHeader3(h, data, (unsigned long)size, &w, &ht, &subsamp, &colorspace) != 0) {
    throw bad(std::string("not a readable JPEG (") + (size ? tjGetErrorStr2(h) : "empty file") + ")");
  }
  if (w <= 0 || ht <= 0) throw bad("JPEG header gives no size");
  if (int64_t(w) * int64_t(ht) > max_pixels) {
    throw bad(std::to_string(w) + "×" + std::to_string(ht) + " pixels exceed data.max_image_pixels (" +
              std::to_string(max_pixels) + ")");
  }
  Image img;
  img.height = ht;
  img.width = w;
  img.channels = channels;
  img.pixels.resize(size_t(ht) * size_t(w) * size_t(channels));
  const int format = channels == 3 ? TJPF_RGB : TJPF_GRAY;
  // TJFLAG_STOPONWARNING: a warning (truncated or corrupt data, which libjpeg pads with grey) is an error.
  if (tjDecompress2(h, data, (unsigned long)size, img.pixels.data(), w, 0, ht, format,
                    TJFLAG_ACCURATEDCT | TJFLAG_STOPONWARNING) != 0) {
    throw bad(std::string("JPEG decoding failed (") + tjGetErrorStr2(h) + ")");
  }
  return img;
}

Image decode_jpeg_file(const std::string& path, int64_t channels, int64_t max_pixels) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw BadImage(path + ": cannot open");
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  // A JPEG of at most max_pixels pixels takes well under 4 bytes a pixel, plus its metadata segments: a larger
  // file is refused before it is read into memory.
  const uint64_t limit = max_pixels > (int64_t(1) << 60) ? UINT64_MAX : uint64_t(max_pixels) * 4 + (16u << 20);
  if (size < 0 || uint64_t(size) > limit) {
    throw BadImage(path + ": " + std::to_string(size) + " bytes, more than a JPEG within data.max_image_pixels");
  }
  in.seekg(0);
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  if (!in.read(reinterpret_cast<char*>(bytes.data()), size)) throw BadImage(path + ": cannot read");
  return decode_jpeg(bytes.data(), bytes.size(), channels, path, max_pixels);
}

Filter parse_filter(const std::string& name) {
  if (name == "bilinear") return Filter::kBilinear;
  if (name == "bicubic") return Filter::kBicubic;
  throw std::invalid_argument("interpolation must be bilinear or bicubic, got '" + name + "'");
}

namespace {

// The separable resample of `box` to out_h × out_w; `write(c, y, x, v)` receives each output value v (clamped to
// the 0..255 range of the source, still float) at its destination column x (mirrored when flipping).
template <typename Write>
void resample_with(const Image& src, const Box& box, int64_t out_h, int64_t out_w, Filter filter, bool flip,
                   Write write) {
  const int64_t C = src.channels, W = src.width, H = src.height;
  const Taps tx = make_taps(box.x0, box.x1, W, out_w, filter);
  const Taps ty = make_taps(box.y0, box.y1, H, out_h, filter);
  // Horizontal pass over the rows the vertical pass reads: tmp [rows, out_w, C].
  const int64_t row0 = ty.first.front();
  const int64_t row1 = ty.first.back() + ty.count.back();
  std::vector<float> tmp(size_t(std::max<int64_t>(row1 - row0, 0) * out_w * C));
  for (int64_t y = row0; y < row1; ++y) {
    const uint8_t* row = src.pixels.data() + y * W * C;
    float* dst = tmp.data() + (y - row0) * out_w * C;
    for (int64_t x = 0; x < out_w; ++x) {
      const double* w = tx.w.data() + x * tx.max_taps;
      for (int64_t c = 0; c < C; ++c) {
        double acc = 0;
        for (int64_t k = 0; k < tx.count[x]; ++k) acc += w[k] * row[(tx.first[x] + k) * C + c];
        dst[x * C + c] = float(acc);
      }
    }
  }
  // Vertical pass, clamp to the 0..255 range of the source.
  for (int64_t y = 0; y < out_h; ++y) {
    const double* w = ty.w.data() + y * ty.max_taps;
    for (int64_t x = 0; x < out_w; ++x) {
      const int64_t ox = flip ? out_w - 1 - x : x;
      for (int64_t c = 0; c < C; ++c) {
        double acc = 0;
        for (int64_t k = 0; k < ty.count[y]; ++k) acc += w[k] * tmp[((ty.first[y] + k - row0) * out_w + x) * C + c];
        write(c, y, ox, std::clamp(acc, 0.0, 255.0));
      }
    }
  }
}

}  // namespace

void resample_normalized(const Image& src, const Box& box, int64_t out_h, int64_t out_w, Filter filter, bool flip,
                         const std::vector<double>& mean, const std::vector<double>& std, float* out) {
  const int64_t plane = out_h * out_w;
  resample_with(src, box, out_h, out_w, filter, flip, [&](int64_t c, int64_t y, int64_t x, double v) {
    out[c * plane + y * out_w + x] = float((v / 255.0 - mean[c]) / std[c]);
  });
}

Image resample(const Image& src, const Box& box, int64_t out_h, int64_t out_w, Filter filter, bool flip) {
  Image out;
  out.height = out_h;
  out.width = out_w;
  out.channels = src.channels;
  out.pixels.resize(size_t(out_h * out_w * src.channels));
  const int64_t C = src.channels;
  resample_with(src, box, out_h, out_w, filter, flip, [&](int64_t c, int64_t y, int64_t x, double v) {
    out.pixels[size_t((y * out_w + x) * C + c)] = uint8_t(v + 0.5);  // v in [0, 255]: round half up
  });
  return out;
}

void normalize(const Image& img, const std::vector<double>& mean, const std::vector<double>& std, float* out) {
  const int64_t C = img.channels, plane = img.height * img.width;
  for (int64_t i = 0; i < plane; ++i) {
    for (int64_t c = 0; c < C; ++c) {
      out[c * plane + i] = float((double(img.pixels[size_t(i * C + c)]) / 255.0 - mean[c]) / std[c]);
    }
  }
}

Box eval_box(int64_t height, int64_t width, int64_t size, double crop_pct) {
  // Resize: the shorter side becomes `scale_size`, the longer keeps the aspect ratio (torchvision truncates).
  const int64_t scale_size = int64_t(std::floor(double(size) / crop_pct));
  int64_t rh, rw;
  if (height <= width) {
    rh = scale_size;
    rw = int64_t(double(scale_size) * double(width) / double(height));
  } else {
    rw = scale_size;
    rh = int64_t(double(scale_size) * double(height) / double(width));
  }
  // CenterCrop offsets in the resized image (torchvision rounds (rh − size)/2), mapped back to the source.
  // Python 3 round(): half to even, which std::nearbyint does in the default rounding mode.
  const double top = std::nearbyint(double(rh - size) / 2.0), left = std::nearbyint(double(rw - size) / 2.0);
  const double sy = double(height) / double(rh), sx = double(width) / double(rw);
  return Box{left * sx, top * sy, (left + double(size)) * sx, (top + double(size)) * sy};
}

Box random_resized_box(int64_t height, int64_t width, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  const double area = double(height) * double(width);
  const double log_r0 = std::log(3.0 / 4.0), log_r1 = std::log(4.0 / 3.0);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = area * (0.08 + 0.92 * unit(rng));
    const double aspect = std::exp(log_r0 + (log_r1 - log_r0) * unit(rng));
    const int64_t w = std::llround(std::sqrt(target * aspect));
    const int64_t h = std::llround(std::sqrt(target / aspect));
    if (w > 0 && h > 0 && w <= width && h <= height) {
      const int64_t top = int64_t(rng() % uint64_t(height - h + 1));
      const int64_t left = int64_t(rng() % uint64_t(width - w + 1));
      return Box{double(left), double(top), double(left + w), double(top + h)};
    }
  }
  // Fallback: the largest centred crop whose aspect ratio lies within [3/4, 4/3].
  const double in_ratio = double(width) / double(height);
  int64_t w = width, h = height;
  if (in_ratio < 3.0 / 4.0) {
    h = std::llround(double(w) / (3.0 / 4.0));
  } else if (in_ratio > 4.0 / 3.0) {
    w = std::llround(double(h) * (4.0 / 3.0));
  }
  const int64_t top = (height - h) / 2, left = (width - w) / 2;
  return Box{double(left), double(top), double(left + w), double(top + h)};
}

}  // namespace data
}  // namespace mnq
