// The tiny trainer jobs of the train tests (test_train.cpp, test_train_resume.cpp): a job config on synthetic
// Fashion-MNIST-shaped data, its splits, and reading a safetensors file back.
#pragma once

#include <torch/torch.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <functional>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "csrc/config/config.h"
#include "csrc/data/fashion_mnist.h"
#include "csrc/jobs/datasets.h"
#include "csrc/jobs/train_job.h"
#include "csrc/models/device.h"
#include "csrc/models/op_counter.h"
#include "csrc/models/plan.h"
#include "csrc/models/presets.h"
#include "csrc/models/weights.h"
#include "csrc/train/metrics.h"
#include "csrc/train/trainer.h"
#include "csrc/util/atomic_file.h"
#include "csrc/util/log.h"
#include "train_test_util.h"

namespace mnq_test {

using namespace mnq;
using namespace mnq::train;


inline JobConfig tiny_job(const std::string& data_dir, const std::string& out_dir) {
  JobConfig c;
  c.data.root = data_dir;
  c.data.batch_size = 16;
  c.data.eval_batch_size = 64;
  c.data.workers = 1;
  c.data.seed = 3;
  c.model.preset = "vit_mnist_tiny";
  c.model.pretrain.epochs = 2;
  c.model.pretrain.lr = 2e-3;
  c.model.pretrain.warmup_steps = 2;
  c.train.epochs = 2;
  c.train.lr = 1e-4;
  c.quant.calib_batches = 2;
  c.compare = {RunConfig{"ivit8", 8, "ivit"}};
  c.output.dir = out_dir;
  c.threads = 1;
  // The SPEC §8 augmentations (the defaults) off: these tests check learning and resuming on the plain data;
  // "every augmentation on" below resumes with them.
  c.data.randaugment = "";
  c.data.random_erasing = 0;
  c.model.drop_path = 0;
  for (TrainConfig* t : {&c.model.pretrain, &c.train}) t->mixup = t->cutmix = 0;
  return c;
}

// A split of write_synthetic_fashion's files, normalised with mean = std = 0.3.
inline std::shared_ptr<data::FashionMnist> synthetic_split(const std::string& root, const std::string& split) {
  return std::make_shared<data::FashionMnist>(root, split, std::vector<double>{0.3}, std::vector<double>{0.3});
}

// The setup of the single-stage tests: quiet log, one torch thread, a temporary folder with synthetic data.
struct SyntheticData {
  TempDir dir;
  std::shared_ptr<data::FashionMnist> train, test;
  SyntheticData(const std::string& tag, int64_t n_train, int64_t n_test, uint64_t seed) : dir(tag) {
    log::set_quiet(true);
    at::set_num_threads(1);
    mnq_test::write_synthetic_fashion(dir / "data", n_train, n_test, seed);
    train = synthetic_split(dir / "data", "train");
    test = synthetic_split(dir / "data", "test");
  }
};

inline std::map<std::string, at::Tensor> tensors(const std::string& path) {
  std::map<std::string, at::Tensor> out;
  for (auto& [k, v] : models::read_safetensors(path)) out[k] = v;
  return out;
}


}  // namespace mnq_test
