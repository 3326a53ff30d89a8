// The trainer's own configuration sections (STYLE rule 12): how one stage is optimised (`train:` and
// `model.pretrain:` of an mnq-train job) and the data-parallel settings (`dist:`). The job that holds them is
// csrc/jobs/job_config.h; they live here so the trainer (trainer.h, data_parallel.h) needs nothing of the job.
#pragma once

#include <cstdint>
#include <string>

#include "csrc/config/config.h"

namespace mnq {
namespace train {

// Optimisation of one training stage (FP pretraining or QAT): AdamW, cosine decay from lr to lr / lr_end_div.
struct TrainConfig {
  int64_t epochs = 1;
  double time_budget_s = 0;
  double lr = 1e-6;
  double lr_end_div = 15;
  int64_t warmup_steps = 0;
  double weight_decay = 1e-4;
  double eps = 1e-8;
  double label_smoothing = 0.1;
  double mixup = 0.8;
  double cutmix = 1.0;
  double mixup_prob = 1.0;
  double mixup_switch_prob = 0.5;

  void visit(config::Visitor& v);
  void validate(const std::string& path) const;
};

// Data-parallel jobs (torchrun; csrc/train/data_parallel.h).
struct DistConfig {
  double timeout_s = 600;  // a collective that waits longer for a rank fails

  void visit(config::Visitor& v);
  void validate(const std::string& path) const;
};

}  // namespace train
}  // namespace mnq
