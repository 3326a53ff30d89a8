#include "csrc/jobs/datasets.h"

#include <fmt/format.h>

#include <vector>

#include "csrc/config/config.h"
#include "csrc/data/fashion_mnist.h"
#include "csrc/data/image.h"
#include "csrc/data/image_folder.h"
#include "csrc/models/presets.h"
#include "csrc/models/swin.h"
#include "csrc/util/log.h"

namespace mnq {
namespace train {
namespace {

// Fashion-MNIST's own statistics; for grey image folders the mean of ImageNet's channel statistics.
const std::vector<double> kFashionMean{0.2860}, kFashionStd{0.3530}, kGreyMean{0.449}, kGreyStd{0.226};

data::ImageFolderOptions folder_options(const DataConfig& d, const ModelShape& shape) {
  data::ImageFolderOptions o;
  o.img_size = shape.img_size;
  o.channels = shape.in_chans;
  o.crop_pct = d.crop_pct;
  o.interpolation = data::parse_filter(d.interpolation);
  o.train_augment = d.train_augment;
  o.rand_augment = d.rand_augment();  // ImageFolder applies these to its train split only
  o.random_erasing = d.erasing();
  if (!d.mean.empty()) o.mean = d.mean;
  if (!d.std.empty()) o.std = d.std;
  o.max_pixels = d.max_image_pixels;
  o.skip_bad_images = d.on_bad_image == "skip";
  o.on_skip = [](const std::string& line) { log::write(line); };
  if (shape.in_chans == 1 && d.mean.empty()) {
    o.mean = kGreyMean;
    o.std = kGreyStd;
  }
  return o;
}

std::shared_ptr<data::FashionMnist> fashion_split(const DataConfig& d, const std::string& split) {
  return std::make_shared<data::FashionMnist>(d.root, split, d.mean.empty() ? kFashionMean : d.mean,
                                              d.std.empty() ? kFashionStd : d.std);
}

// The whole training split, its images checked against the model's input.
std::shared_ptr<data::Dataset> open_train(const DataConfig& d, const ModelShape& shape) {
  std::shared_ptr<data::Dataset> ds;
  if (d.kind == "fashion_mnist") {
    auto train = fashion_split(d, "train");
    train->set_augmentation(d.rand_augment(), data::parse_filter(d.interpolation), d.erasing());
    ds = train;
  } else {
    ds = std::make_shared<data::ImageFolder>(d.root, "train", folder_options(d, shape));
  }
  const data::ImageShape is = ds->shape();
  if (is.channels != shape.in_chans || is.height != shape.img_size || is.width != shape.img_size) {
    throw config::Error("model",
                        fmt::format("the model takes {}×{}×{} images, the data are {}×{}×{} (set "
                                    "model.in_chans / model.img_size)",
                                    shape.in_chans, shape.img_size, shape.img_size, is.channels, is.height, is.width));
  }
  return ds;
}

}  // namespace

ModelShape model_shape(const std::string& preset, const models::ModelOverrides& o) {
  ModelShape s{};
  if (models::preset_family(preset) == models::Family::kViT) {
    const auto c = models::vit_preset(preset);
    s = {c.img_size, c.in_chans, c.num_classes};
  } else {
    const auto c = models::swin_preset(preset);
    s = {c.img_size, c.in_chans, c.num_classes};
  }
  s.img_size = o.img_size.value_or(s.img_size);
  s.in_chans = o.in_chans.value_or(s.in_chans);
  s.num_classes = o.num_classes.value_or(s.num_classes);
  return s;
}

models::ModelOverrides model_overrides(const ModelConfig& m) {
  models::ModelOverrides o;
  if (m.num_classes > 0) o.num_classes = m.num_classes;
  if (m.img_size > 0) o.img_size = m.img_size;
  if (m.in_chans > 0) o.in_chans = m.in_chans;
  if (m.drop_path > 0) o.drop_path = m.drop_path;
  return o;
}

ModelShape model_shape(const ModelConfig& m) { return model_shape(m.preset, model_overrides(m)); }

std::shared_ptr<data::Dataset> training_split(const DataConfig& d, const ModelShape& shape) {
  return data::subset(open_train(d, shape), d.train_subset, uint64_t(d.seed));
}

Splits make_datasets(const DataConfig& d, const ModelShape& shape) {
  Splits s;
  s.train = open_train(d, shape);
  if (d.kind == "fashion_mnist") {
    s.val = fashion_split(d, "test");
  } else {
    const auto& classes = static_cast<const data::ImageFolder&>(*s.train).classes();
    s.val = std::make_shared<data::ImageFolder>(d.root, "val", folder_options(d, shape), classes);
  }
  if (s.train->num_classes() != shape.num_classes) {
    throw config::Error("model.num_classes", fmt::format("the model has {} classes, the data {}", shape.num_classes,
                                                         s.train->num_classes()));
  }
  s.train = data::subset(s.train, d.train_subset, uint64_t(d.seed));
  s.val = data::subset(s.val, d.val_subset, uint64_t(d.seed) + 1);
  return s;
}

}  // namespace train
}  // namespace mnq
