#include "csrc/data/fashion_mnist.h"

#include <algorithm>
#include <numeric>
#include <random>
#include <stdexcept>

#include "csrc/data/idx.h"

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
  scale_ = float(1.0 / (255.0 * std[0]));
  shift_ = float(-mean[0] / std[0]);
}

void FashionMnist::load(int64_t index, uint64_t, float* out) const {
  const int64_t n = images_.size(1) * images_.size(2);
  const uint8_t* src = images_.data_ptr<uint8_t>() + index * n;
  for (int64_t i = 0; i < n; ++i) out[i] = float(src[i]) * scale_ + shift_;
}

std::string FashionMnist::describe() const { return name_ + " (" + std::to_string(size()) + " images)"; }

}  // namespace data
}  // namespace mnq
