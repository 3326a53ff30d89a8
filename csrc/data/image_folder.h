// An ImageNet-style folder: <root>/<split>/<class>/<image>.jpg (split "train" or "val"). Classes are the
// sub-folders of the train split, sorted by name (torchvision's ImageFolder order, so class indices match timm's
// ImageNet heads when the folders are the WordNet ids); the val split must use the same class names. Files with
// a .jpg / .jpeg extension (any case) are images, sorted by path; anything else is ignored.
#pragma once

#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "csrc/data/dataset.h"
#include "csrc/data/image.h"
#include "csrc/data/rand_augment.h"

namespace mnq {
namespace data {

struct ImageFolderOptions {
  int64_t img_size = 224;
  int64_t channels = 3;
  double crop_pct = 0.875;
  Filter interpolation = Filter::kBicubic;
  bool train_augment = true;  // random-resized crop + flip (train split); false: the eval transform
  // With train_augment, on the train split (timm's order: crop → flip → RandAugment → normalise → erasing):
  std::optional<RandAugmentConfig> rand_augment;  // on the uint8 crop; fill round(255·mean), `interpolation`
  double random_erasing = 0;                      // probability of erasing a box of the normalised image
  std::vector<double> mean = {0.485, 0.456, 0.406};
  std::vector<double> std = {0.229, 0.224, 0.225};
  int64_t max_pixels = kDefaultMaxImagePixels;  // a larger JPEG (by its header) is a bad image
  // Bad images (unreadable, over max_pixels, truncated, corrupt): false: an error naming the file; true: try_load
  // returns false (the loader uses the next image), `on_skip` gets one line per bad file, the first time.
  bool skip_bad_images = false;
  std::function<void(const std::string&)> on_skip;
};

class ImageFolder : public Dataset {
 public:
  // Throws naming the folder when it is missing, has no class folders or no images, or (val) names a class the
  // train split lacks. `classes`: the class list to use (the train split's, for val); empty: read from `split`.
  ImageFolder(const std::string& root, const std::string& split, const ImageFolderOptions& options,
              std::vector<std::string> classes = {});

  int64_t size() const override { return int64_t(files_.size()); }
  int64_t num_classes() const override { return int64_t(classes_.size()); }
  ImageShape shape() const override { return {options_.channels, options_.img_size, options_.img_size}; }
  int64_t label(int64_t index) const override { return labels_[index]; }
  void load(int64_t index, uint64_t seed, float* out) const override;  // throws BadImage on a bad image
  bool try_load(int64_t index, uint64_t seed, float* out) const override;
  std::string describe() const override;
  const std::vector<std::string>& classes() const { return classes_; }
  int64_t bad_images() const;  // bad files skipped so far

 private:
  void transform(const Image& img, uint64_t seed, float* out) const;

  std::string dir_;
  ImageFolderOptions options_;
  bool augment_;
  std::optional<RandAugment> rand_augment_;
  std::vector<std::string> classes_, files_;
  std::vector<int64_t> labels_;
  mutable std::mutex bad_mu_;
  mutable std::set<int64_t> bad_;  // indices of the bad files found so far (decoded once, skipped after)
};

}  // namespace data
}  // namespace mnq
