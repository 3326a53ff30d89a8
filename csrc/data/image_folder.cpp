#include "csrc/data/image_folder.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <map>
#include <stdexcept>

#include "csrc/data/random_erasing.h"

namespace mnq {
namespace data {
namespace {

namespace fs = std::filesystem;

bool is_jpeg(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return ext == ".jpg" || ext == ".jpeg";
}

std::vector<std::string> sorted_subdirs(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.is_directory()) out.push_back(e.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

ImageFolder::ImageFolder(const std::string& root, const std::string& split, const ImageFolderOptions& options,
                         std::vector<std::string> classes)
    : dir_((fs::path(root) / split).string()), options_(options), augment_(options.train_augment && split == "train") {
  if (options_.mean.size() != size_t(options_.channels) || options_.std.size() != size_t(options_.channels)) {
    throw std::invalid_argument("image folder " + dir_ + ": mean and std need one value per channel (" +
                                std::to_string(options_.channels) + ")");
  }
  if (augment_ && options_.rand_augment) {
    rand_augment_.emplace(*options_.rand_augment, options_.interpolation, mean_fill(options_.mean));
  }
  if (!fs::is_directory(dir_)) throw std::runtime_error("image folder " + dir_ + ": not a directory");
  const std::vector<std::string> found = sorted_subdirs(dir_);
  if (found.empty()) throw std::runtime_error("image folder " + dir_ + ": no class sub-folders");
  classes_ = classes.empty() ? found : std::move(classes);
  std::map<std::string, int64_t> index;
  for (size_t i = 0; i < classes_.size(); ++i) index[classes_[i]] = int64_t(i);
  for (const auto& name : found) {
    const auto it = index.find(name);
    if (it == index.end()) {
      throw std::runtime_error("image folder " + dir_ + ": class folder '" + name +
                               "' is not a class of the train split");
    }
    std::vector<std::string> paths;
    for (const auto& e : fs::directory_iterator(fs::path(dir_) / name)) {
      if (e.is_regular_file() && is_jpeg(e.path())) paths.push_back(e.path().string());
    }
    std::sort(paths.begin(), paths.end());
    for (auto& p : paths) {
      files_.push_back(std::move(p));
      labels_.push_back(it->second);
    }
  }
  if (files_.empty()) throw std::runtime_error("image folder " + dir_ + ": no .jpg/.jpeg images");
}

void ImageFolder::load(int64_t index, uint64_t seed, float* out) const {
  transform(decode_jpeg_file(files_[index], options_.channels, options_.max_pixels), seed, out);
}

bool ImageFolder::try_load(int64_t index, uint64_t seed, float* out) const {
  if (!options_.skip_bad_images) {
    load(index, seed, out);
    return true;
  }
  {
    std::lock_guard<std::mutex> lock(bad_mu_);
    if (bad_.count(index)) return false;
  }
  Image img;
  try {
    img = decode_jpeg_file(files_[index], options_.channels, options_.max_pixels);
  } catch (const BadImage& e) {
    size_t n;
    {
      std::lock_guard<std::mutex> lock(bad_mu_);
      if (!bad_.insert(index).second) return false;
      n = bad_.size();
    }
    if (options_.on_skip) {
      options_.on_skip("skipping bad image " + std::string(e.what()) + " (" + std::to_string(n) + " so far)");
    }
    return false;
  }
  transform(img, seed, out);
  return true;
}

int64_t ImageFolder::bad_images() const {
  std::lock_guard<std::mutex> lock(bad_mu_);
  return int64_t(bad_.size());
}

void ImageFolder::transform(const Image& img, uint64_t seed, float* out) const {
  const int64_t s = options_.img_size;
  if (augment_) {
    std::mt19937_64 rng(seed);
    const Box box = random_resized_box(img.height, img.width, rng);
    const bool flip = (rng() & 1u) != 0;
    if (rand_augment_) {
      // RandAugment works on uint8 images (as timm's on PIL images): resample, round, augment, normalise.
      Image crop = resample(img, box, s, s, options_.interpolation, flip);
      (*rand_augment_)(crop, rng);
      normalize(crop, options_.mean, options_.std, out);
    } else {
      resample_normalized(img, box, s, s, options_.interpolation, flip, options_.mean, options_.std, out);
    }
    if (options_.random_erasing > 0) random_erase(out, shape(), options_.random_erasing, rng);
  } else {
    const Box box = eval_box(img.height, img.width, s, options_.crop_pct);
    resample_normalized(img, box, s, s, options_.interpolation, false, options_.mean, options_.std, out);
  }
}

std::string ImageFolder::describe() const {
  return "image_folder " + dir_ + " (" + std::to_string(size()) + " images, " + std::to_string(num_classes()) +
         " classes" + (augment_ ? ", train augmentation" : "") + (rand_augment_ ? ", RandAugment" : "") +
         (augment_ && options_.random_erasing > 0 ? ", random erasing" : "") + ")";
}

}  // namespace data
}  // namespace mnq
