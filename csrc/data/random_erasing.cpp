// Random erasing; see random_erasing.h.
#include "csrc/data/random_erasing.h"

#include <cmath>

#include "csrc/data/random.h"

namespace mnq {
namespace data {

std::optional<ErasedBox> random_erase(float* image, const ImageShape& shape, double prob, std::mt19937_64& rng) {
  if (prob <= 0 || rnd::unit(rng) > prob) return std::nullopt;  // timm: skip when random() > p
  const int64_t C = shape.channels, H = shape.height, W = shape.width;
  const double area = double(H) * double(W);
  const double log_r0 = std::log(0.3), log_r1 = std::log(1.0 / 0.3);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = rnd::uniform(rng, 0.02, 1.0 / 3.0) * area;
    const double aspect = std::exp(rnd::uniform(rng, log_r0, log_r1));
    // Python's round(): half to even, which std::nearbyint does in the default rounding mode.
    const int64_t h = int64_t(std::nearbyint(std::sqrt(target * aspect)));
    const int64_t w = int64_t(std::nearbyint(std::sqrt(target / aspect)));
    if (w < W && h < H) {
      ErasedBox box;
      box.height = h;
      box.width = w;
      box.top = rnd::randint(rng, 0, H - h);
      box.left = rnd::randint(rng, 0, W - w);
      for (int64_t c = 0; c < C; ++c) {
        for (int64_t y = box.top; y < box.top + h; ++y) {
          float* row = image + (c * H + y) * W;
          for (int64_t x = box.left; x < box.left + w; ++x) row[x] = float(rnd::normal(rng));
        }
      }
      return box;
    }
  }
  return std::nullopt;
}

}  // namespace data
}  // namespace mnq
