// The YAML job of `mnq-train` (STYLE rule 12: typed structs, visit() for every key, validate() naming the key
// path). A job: data, a full-precision model (a checkpoint or `pretrain` epochs), and one or more quantized runs
// (`quant`, or the `compare` list), each QAT-trained from the same FP weights and compared in results.md/json.
// Defaults are the SPEC §8 recipe for full-size jobs, augmentations included (RandAugment rand-m9-mstd0.5-inc1,
// random erasing 0.25, Mixup 0.8 / CutMix 1.0, drop-path 0.1); configs/fashion_mnist.yaml sizes a small CPU job
// and turns the augmentations off.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "csrc/analysis/config.h"
#include "csrc/config/config.h"
#include "csrc/data/image.h"
#include "csrc/data/rand_augment.h"
#include "csrc/train/train_config.h"

namespace mnq {
namespace train {

struct DataConfig {
  std::string kind = "fashion_mnist";
  std::string root = "/usr/share/datasets/fashion-mnist";
  int64_t batch_size = 128;
  int64_t eval_batch_size = 256;
  int64_t workers = 2;
  int64_t prefetch = 4;
  int64_t train_subset = 0;
  int64_t val_subset = 0;
  int64_t seed = 0;
  std::vector<double> mean;
  std::vector<double> std;
  double crop_pct = 0.875;
  std::string interpolation = "bicubic";
  bool train_augment = true;
  std::string randaugment = "rand-m9-mstd0.5-inc1";
  double random_erasing = 0.25;
  int64_t max_image_pixels = data::kDefaultMaxImagePixels;
  std::string on_bad_image = "error";

  void visit(config::Visitor& v);
  void validate(const std::string& path) const;
  // The parsed `randaugment` (nullopt when empty or train_augment is off).
  std::optional<data::RandAugmentConfig> rand_augment() const;
  // Random-erasing probability of the training split (0 when train_augment is off).
  double erasing() const { return train_augment ? random_erasing : 0.0; }
};

struct ModelConfig {
  std::string preset = "deit_tiny_patch16_224";
  int64_t num_classes = 0;
  int64_t img_size = 0;
  int64_t in_chans = 0;
  std::string checkpoint;
  double drop_path = 0.1;
  TrainConfig pretrain = [] {
    TrainConfig t;
    t.epochs = 0;
    t.lr = 1e-3;
    t.weight_decay = 0.05;
    return t;
  }();

  void visit(config::Visitor& v);
  void validate(const std::string& path) const;
};

// One quantized run: W/A bits and a plan (ivit | ibert | fqvit: that method everywhere; mixed: the analyzer's
// per-layer choice for these bits in analyze.mode; mixed_paper / mixed_isolated: that mode's choice, both from
// the same single analysis per bit-width; anything else: a plan file).
struct RunConfig {
  std::string name;
  int64_t bits = 8;
  std::string plan = "mixed";

  void visit(config::Visitor& v);
  void validate(const std::string& path) const;
};

struct QuantConfig {
  int64_t bits = 8;
  std::string plan = "mixed";
  int64_t calib_batches = 30;

  void visit(config::Visitor& v);
  void validate(const std::string& path) const;
};

struct OutputConfig {
  std::string dir = "runs/job";

  void visit(config::Visitor& v);
  void validate(const std::string& path) const;
};

struct JobConfig {
  DataConfig data;
  ModelConfig model;
  QuantConfig quant;
  TrainConfig train;
  std::vector<RunConfig> compare;
  analysis::AnalyzerConfig analyze;  // `plan: mixed` runs (SPEC §7); the same section as mnq-analyze jobs
  OutputConfig output;
  int64_t threads = 0;
  std::string device = "auto";  // auto (CUDA when available) | cpu | cuda
  // Repetitions of the whole job, one per seed (data.seed replaced by each: training subset, data order,
  // initialisation, pretraining, calibration, analyzer), each in <output.dir>/seed<s>/ as a job of its own, then
  // results pooled over seeds (seeds.h). Empty: one job with data.seed, exactly as without this key.
  std::vector<int64_t> seeds;
  DistConfig dist;               // data-parallel jobs (torchrun)

  void visit(config::Visitor& v);
  void validate(const std::string& path) const;

  // The runs of the job: `compare` when given, else one run from `quant` named "w<bits>_<plan>".
  std::vector<RunConfig> runs() const;
};

// A plan chosen by name (mixed, mixed_paper, mixed_isolated or a uniform method), not a plan file.
bool is_plan_method(const std::string& plan);
// One of the analyzer's plans: mixed, mixed_paper, mixed_isolated or searched (the plan search's).
bool is_mixed_plan(const std::string& plan);

}  // namespace train
}  // namespace mnq
