// A labelled image dataset as the loader sees it: a size, a label per index, and a `load` that writes one
// preprocessed image (float, normalised, [C, H, W]) into a caller-owned buffer. `load` must be thread-safe and
// deterministic in (index, seed): random augmentations draw only from an RNG seeded with `seed`, which the loader
// derives from (data seed, epoch, index), so the images of an epoch do not depend on thread scheduling.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mnq {
namespace data {

struct ImageShape {
  int64_t channels = 0, height = 0, width = 0;
  int64_t numel() const { return channels * height * width; }
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  virtual int64_t num_classes() const = 0;
  virtual ImageShape shape() const = 0;
  virtual int64_t label(int64_t index) const = 0;
  // Writes shape().numel() floats to `out`.
  virtual void load(int64_t index, uint64_t seed, float* out) const = 0;
  // load(), or false when the item is unusable and the dataset is set to skip such items (an image folder with
  // data.on_bad_image: skip); the loader then fills the slot with the next item of the epoch's order.
  virtual bool try_load(int64_t index, uint64_t seed, float* out) const {
    load(index, seed, out);
    return true;
  }
  // For messages: e.g. "fashion_mnist train (60000 images)".
  virtual std::string describe() const = 0;
};

// The first `n` items of `base` (all when n <= 0 or n >= size). Subsets are prefixes of a fixed, seeded
// permutation, so a subset keeps the class balance of the whole split and is the same in every run.
std::shared_ptr<Dataset> subset(std::shared_ptr<Dataset> base, int64_t n, uint64_t seed);

}  // namespace data
}  // namespace mnq
