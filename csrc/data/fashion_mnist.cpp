#include "csrc/data/fashion_mnist.h"

#include <algorithm>
#include <numeric>
#include <random>
#include <stdexcept>

#include "csrc/data/idx.h"
#include "csrc/data/random_erasing.h"

namespace mnq {
namespace data {

FashionMnist::FashionMnist(const std::string& root, const std::string& split, std::vector<double> mean,
                           std::vector<double> std)
    : FashionMnist(
          [&] {
            if (split != "train" && split != "test") {
              throw std::invalid_argument("fashion_mnist split must be train or test, got '" + split + "'");
            }
            return read_idx_images(root + "/" + (split == "train" ? "train" : "t10k") + "-images-idx3-ubyte.gz");
          }(),
          read_idx_labels(root + "/" + (split == "train" ? "train" : "t10k") + "-labels-idx1-ubyte.gz"),
          std::move(mean), std::move(std), "fashion_mnist " + split) {}

FashionMnist::FashionMnist(at::Tensor images, at::Tensor labels, std::vector<double> mean, std::vector<double> std,
                           std::string name)
    : images_(images.contiguous()), name_(std::move(name)) {
  if (images_.dim() != 3 || images_.scalar_type() != at::kByte) {
    throw std::invalid_argument(name_ + ": images must be uint8 [N, H, W]");
  }
  if (labels.dim() != 1 || labels.size(0) != images_.size(0)) {
    throw std::invalid_argument(name_ + ": " + std::to_string(images_.size(0)) + " images but " +
                                std::to_string(labels.numel()) + " labels");
  }
  at::Tensor l = labels.to(at::kLong).contiguous();
  labels_.assign(l.data_ptr<int64_t>(), l.data_ptr<int64_t>() + l.numel());
  for (int64_t v : labels_) {
    if (v < 0 || v >= 10) throw std::invalid_argument(name_ + ": label " + std::to_string(v) + " outside 0..9");
  }
  if (mean.size() != 1 || std.size() != 1 || !(std[0] > 0)) {
    throw std::invalid_argument(name_ + ": one-channel images need one mean and one positive std");
  }
  mean_ = mean;
  scale_ = float(1.0 / (255.0 * std[0]));
  shift_ = float(-mean[0] / std[0]);
}

void FashionMnist::set_augmentation(std::optional<RandAugmentConfig> rand_augment, Filter interpolation,
                                    double erasing) {
  rand_augment_.reset();
  if (rand_augment) rand_augment_.emplace(*rand_augment, interpolation, mean_fill(mean_));
  erasing_ = erasing;
}

void FashionMnist::load(int64_t index, uint64_t seed, float* out) const {
  const int64_t n = images_.size(1) * images_.size(2);
  const uint8_t* src = images_.data_ptr<uint8_t>() + index * n;
  if (!rand_augment_ && erasing_ <= 0) {
    for (int64_t i = 0; i < n; ++i) out[i] = float(src[i]) * scale_ + shift_;
    return;
  }
  std::mt19937_64 rng(seed);
  Image img{images_.size(1), images_.size(2), 1, std::vector<uint8_t>(src, src + n)};
  if (rand_augment_) (*rand_augment_)(img, rng);
  for (int64_t i = 0; i < n; ++i) out[i] = float(img.pixels[size_t(i)]) * scale_ + shift_;
  if (erasing_ > 0) random_erase(out, shape(), erasing_, rng);
}

std::string FashionMnist::describe() const {
  return name_ + " (" + std::to_string(size()) + " images" + (rand_augment_ ? ", RandAugment" : "") +
         (erasing_ > 0 ? ", random erasing" : "") + ")";
}

}  // namespace data
}  // namespace mnq
