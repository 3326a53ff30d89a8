// One training stage (FP pretraining or QAT of one run): AdamW with a cosine schedule, label-smoothed
// cross-entropy (soft-target cross-entropy on Mixup / CutMix batches when train.mixup or train.cutmix > 0; the
// training top-1 then counts the unmixed labels), evaluation after every epoch, and a checkpoint after every epoch (and when a time budget runs
// out, even mid-epoch), so a killed stage continues with --resume from its last checkpoint and ends with the
// same weights and metrics as an uninterrupted one: the data order and augmentations are functions of
// (seed, epoch, position), and the checkpoint holds the weights, quantizer buffers, AdamW state, step count and
// the CPU generator.
//
// Divergence stops the stage at once with an error naming the epoch and batch, before the epoch is evaluated or
// anything is saved, so checkpoint.safetensors and best.safetensors stay the last good ones. Diverged means: a
// batch loss that is not finite, or "exploding": above kExplodeFactor · ln(classes). ln(classes) is the loss of
// a uniform guess, where training starts; a batch mean 10× above it says the true class gets on average a
// probability below classes^-10 (e^-23 for 10 classes), which no converging run passes through; what does get
// there is a learning rate far too large, whose logits then grow past the range of the integer approximations
// (i-exp of I-BERT's softmax supports input scales up to ≈1.67) and made such a run end, epochs later, in an op's
// range error instead of this stop. The check runs where the losses are read back anyway (below), and at the end
// of each pass the weights are checked finite (one copy). An op that raises inside a step (a scale outside its
// range: on the CPU the QAT ops check it on the host at every call, so they see the blown-up weights of a bad step
// one step later, long before the next loss read-back) first has the pending losses checked and the weights' norm
// compared with the epoch's start: grown more than kWeightGrowth× (or not finite) is divergence too. Otherwise its
// error is raised naming the stage, epoch and batch.
//
// A step reads nothing back to the host (on a GPU each read would wait for the device): the batch goes to the
// device without waiting (the loader's pinned memory, models/device.h), and the step's loss and top-1 hits stay
// on the device until they are read back together (one copy) every kReadSteps steps or kReadSeconds, at a time
// budget stop and at the end of each pass; the NaN check and the progress bar's running loss use those reads.
//
// Data-parallel (data_parallel.h): the loaders yield this rank's slice of each global batch; gradients are
// averaged over ranks after backward; the read-backs (every kReadSteps steps only, the same steps on every rank)
// all-reduce the losses and hits; a time budget stops every rank at the same step; the ranks' weights and
// quantizer buffers are checked identical before each checkpoint, which rank 0 alone writes.
//
// Stage folder: checkpoint.safetensors, metrics.csv and metrics.jsonl (one line per evaluation), best.safetensors
// (the weights of the best top-1), model.safetensors (the final weights, models::save_weights).
#pragma once

#include <string>

#include "csrc/data/loader.h"
#include "csrc/models/factory.h"
#include "csrc/train/checkpoint.h"
#include "csrc/train/metrics.h"
#include "csrc/train/train_config.h"

namespace mnq {
namespace train {

struct StageOptions {
  std::string name;                // "fp" or the run's name (logs)
  std::string dir;                 // the stage folder (created)
  bool resume = false;             // continue from dir/checkpoint.safetensors when it exists
  int64_t stop_after_epochs = -1;  // stop this session after this many epochs, as if killed (>= 0)
  // What the stage trains (model, bits, plan; set by run_job), saved in the checkpoint: a resume whose job asks
  // for something else is refused (checkpoint.h). null: not checked.
  nlohmann::json trained_for;
};

struct StageResult {
  TrainState state;            // finished == false: interrupted (stop_after_epochs)
  EvalMetrics final;           // the last evaluation
  int64_t session_epochs = 0;  // epochs completed in this call
};

// How often fit() reads the pending losses back: after this many steps, or this many seconds since the last read.
constexpr int64_t kReadSteps = 50;
constexpr double kReadSeconds = 1.0;
// A batch loss above kExplodeFactor · ln(classes) is divergence (see above).
constexpr double kExplodeFactor = 10.0;
// After an op error in a step: parameters whose L2 norm grew more than this factor within the epoch diverged (a
// learning rate of 10 grows them by ~100-1000× in one AdamW step; a healthy epoch changes them by a few %).
constexpr double kWeightGrowth = 10.0;
double divergence_bound(int64_t num_classes);

// The learning rate at optimizer step `step` of `total`: linear warm-up, then cosine from lr to lr / lr_end_div.
double learning_rate(const TrainConfig& cfg, int64_t step, int64_t total);

// The seed of a job's stage, from (data.seed, stage name) alone: each stage reseeds torch's generators with it
// before it draws anything (model initialisation, calibration and drop-path masks, the analyzer), so what a stage
// draws never depends on what earlier stages consumed, and a resumed job whose earlier stages were loaded from their
// files (plans, finished checkpoints) draws the same numbers as an uninterrupted one. Stage "fp" keeps data.seed
// itself, as before stages had their own seeds, so existing FP results and caches stay valid.
uint64_t stage_seed(int64_t seed, const std::string& stage);

StageResult fit(const models::Model& model, const TrainConfig& cfg, const data::Loader& train, const data::Loader& val,
                const StageOptions& options);

}  // namespace train
}  // namespace mnq
