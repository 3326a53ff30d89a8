// Fashion-MNIST (Xiao et al., 2017; 28×28 grey images, 10 classes, 60000 train / 10000 test) from its four IDX
// .gz files, held in memory as uint8 and normalised on load.
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "csrc/data/dataset.h"
#include "csrc/data/rand_augment.h"

namespace mnq {
namespace data {

// The Debian package dataset-fashion-mnist installs the files here.
inline constexpr const char* kFashionMnistRoot = "/usr/share/datasets/fashion-mnist";

class FashionMnist : public Dataset {
 public:
  // split: "train" or "test" (files {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz in `root`).
  // mean/std: one value (or one per channel) applied as (x/255 − mean) / std.
  FashionMnist(const std::string& root, const std::string& split, std::vector<double> mean, std::vector<double> std);
  // From tensors already in memory (uint8 [N, H, W], int64 [N]); used by tests and by the constructor above.
  FashionMnist(at::Tensor images, at::Tensor labels, std::vector<double> mean, std::vector<double> std,
               std::string name);

  int64_t size() const override { return images_.size(0); }
  int64_t num_classes() const override { return 10; }
  ImageShape shape() const override { return {1, images_.size(1), images_.size(2)}; }
  int64_t label(int64_t index) const override { return labels_[index]; }
  void load(int64_t index, uint64_t seed, float* out) const override;
  std::string describe() const override;

  // Training augmentation (off unless set; for the train split): RandAugment on the uint8 image (geometric ops
  // with `interpolation`, fill round(255·mean)), then random erasing of the normalised image with probability
  // `erasing`. Draws come from the loader's per-image seed.
  void set_augmentation(std::optional<RandAugmentConfig> rand_augment, Filter interpolation, double erasing);

 private:
  at::Tensor images_;
  std::vector<int64_t> labels_;
  float scale_, shift_;  // x·scale + shift = (x/255 − mean)/std
  std::string name_;
  std::vector<double> mean_;
  std::optional<RandAugment> rand_augment_;
  double erasing_ = 0;
};

}  // namespace data
}  // namespace mnq
