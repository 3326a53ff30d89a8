// One training stage (FP pretraining or QAT of one run): AdamW with a cosine schedule, label-smoothed
// cross-entropy (soft-target cross-entropy on Mixup / CutMix batches when train.mixup or train.cutmix > 0; the
// training top-1 then counts the unmixed labels), evaluation after every epoch, and a checkpoint after every epoch (and when a time budget runs
// out, even mid-epoch), so a killed stage continues with --resume from its last checkpoint and ends with the
// same weights and metrics as an uninterrupted one: the data order and augmentations are functions of
// (seed, epoch, position), and the checkpoint holds the weights, quantizer buffers, AdamW state, step count and
// the CPU generator. A NaN/Inf loss stops the stage with an error naming its batch, before any later checkpoint
// is written, so the last checkpoint stays the last good one.
//
// A step reads nothing back to the host (on a GPU each read would wait for the device): the batch goes to the
// device without waiting (the loader's pinned memory, models/device.h), and the step's loss and top-1 hits stay
// on the device until they are read back together (one copy) every kReadSteps steps or kReadSeconds, at a time
// budget stop and at the end of each pass; the NaN check and the progress bar's running loss use those reads.
//
// Stage folder: checkpoint.safetensors, metrics.csv and metrics.jsonl (one line per evaluation), best.safetensors
// (the weights of the best top-1), model.safetensors (the final weights, models::save_weights).
#pragma once

#include <string>

#include "csrc/data/loader.h"
#include "csrc/models/factory.h"
#include "csrc/train/checkpoint.h"
#include "csrc/train/job_config.h"
#include "csrc/train/metrics.h"

namespace mnq {
namespace train {

struct StageOptions {
  std::string name;                // "fp" or the run's name (logs)
  std::string dir;                 // the stage folder (created)
  bool resume = false;             // continue from dir/checkpoint.safetensors when it exists
  int64_t stop_after_epochs = -1;  // stop this session after this many epochs, as if killed (>= 0)
};

struct StageResult {
  TrainState state;            // finished == false: interrupted (stop_after_epochs)
  EvalMetrics final;           // the last evaluation
  int64_t session_epochs = 0;  // epochs completed in this call
};

// How often fit() reads the pending losses back: after this many steps, or this many seconds since the last read.
constexpr int64_t kReadSteps = 50;
constexpr double kReadSeconds = 1.0;

// The learning rate at optimizer step `step` of `total`: linear warm-up, then cosine from lr to lr / lr_end_div.
double learning_rate(const TrainConfig& cfg, int64_t step, int64_t total);

StageResult fit(const models::Model& model, const TrainConfig& cfg, const data::Loader& train, const data::Loader& val,
                const StageOptions& options);

}  // namespace train
}  // namespace mnq
