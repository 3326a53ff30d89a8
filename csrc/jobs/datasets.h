// The datasets of a job's `data:` section (train::DataConfig), read the same way by mnq-train and mnq-analyze:
// Fashion-MNIST IDX files or an ImageNet-style JPEG folder with the timm transforms, the normalisation defaults,
// the checks that the images fit the model, and the seeded subsets. The analyzer's calibration batches are then
// the batches `plan: mixed` of a training job with the same data section sees.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "csrc/data/dataset.h"
#include "csrc/jobs/job_config.h"
#include "csrc/models/factory.h"

namespace mnq {
namespace train {

// The input and output shape of a model preset after the overrides.
struct ModelShape {
  int64_t img_size = 0, in_chans = 0, num_classes = 0;
};
ModelShape model_shape(const std::string& preset, const models::ModelOverrides& overrides);
ModelShape model_shape(const ModelConfig& model);  // preset + the overrides of the model section
// The model section's overrides (0: the preset's value).
models::ModelOverrides model_overrides(const ModelConfig& model);

// The training split, data.train_subset of it (seeded by data.seed). Throws config::Error("model", …) when the
// images are not the model's in_chans × img_size × img_size.
std::shared_ptr<data::Dataset> training_split(const DataConfig& d, const ModelShape& shape);

struct Splits {
  std::shared_ptr<data::Dataset> train, val;  // val: Fashion-MNIST's test split, or the folder's val/
};
// Both splits (the image folder's val/ with the classes of train/), checked against the model's input shape and
// number of classes, then subset (train_subset with data.seed, val_subset with data.seed + 1).
Splits make_datasets(const DataConfig& d, const ModelShape& shape);

}  // namespace train
}  // namespace mnq
