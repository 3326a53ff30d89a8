// Training checkpoints: everything a stage needs to continue exactly where it stopped, in ONE safetensors file
// published atomically (util/atomic_file.h), so a kill at any moment leaves either the previous checkpoint or the
// new one, never a mix:
//   model.<name>          every parameter and buffer (quantizer ranges, PtfAct α, …)
//   optim.<name>.exp_avg / .exp_avg_sq / .step   AdamW's state per parameter (by parameter name)
//   rng.cpu               the state of the default CPU generator (drop-path masks draw from it)
//   state.json            TrainState as JSON bytes (uint8), with `trained_for` (what the stage trains: a resume
//                         of another model, bits or plan is refused) and `optim_params` (how many parameters have
//                         AdamW state, so a file that lost some is refused)
//   eval.hits             the last evaluation's per-image top-1 hits (uint8 [val_n]; absent before the first
//                         evaluation)
//
// Everything read back is checked against the job before any of it is used (STYLE rule 18): tensor shapes and
// dtypes equal the model's (no silent casts), progress fields are integers in range and consistent with each other
// and with the job's batches per epoch (step = epoch · batches_per_epoch + batch), the RNG state has the
// generator's size, every parameter that had optimizer state still has all of it. A failure is one line naming
// the file and the field.
#pragma once

#include <torch/nn/module.h>
#include <torch/optim/adamw.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "csrc/train/history.h"

namespace mnq {
namespace train {

// The progress of one training stage.
struct TrainState {
  int64_t epoch = 0;     // completed epochs
  int64_t batch = 0;     // batches done in epoch `epoch` (a time budget can stop mid-epoch)
  int64_t step = 0;      // optimizer steps so far (drives the learning-rate schedule)
  double elapsed_s = 0;  // training wall time so far, summed over sessions
  double part_loss = 0;  // running sums of the incomplete epoch: loss·images, correct, images
  int64_t part_correct = 0, part_seen = 0;
  double best_top1 = -1;  // best evaluated top-1 and its epoch
  int64_t best_epoch = 0;
  bool budget_spent = false;  // the time budget ran out (mid-epoch possibly)
  bool finished = false;      // all epochs done or the budget spent (re-decided on resume by the new config)
  History history;                 // one entry per evaluation (history.h)
  std::vector<uint8_t> eval_hits;  // EvalMetrics::hits of the last evaluation (not in the JSON: eval.hits)
  nlohmann::json trained_for;      // what the stage trains (StageOptions::trained_for); null: not said

  nlohmann::json to_json() const;
  // Parses and range-checks state.json against the job (see CheckpointExpect); throws std::runtime_error
  // "checkpoint <path>: field '<name>' …".
  static TrainState from_json(const nlohmann::json& j, const std::string& path, int64_t batches_per_epoch,
                              int64_t batch_size);
};

// What a checkpoint must agree with to be resumed by this job.
struct CheckpointExpect {
  nlohmann::json trained_for;     // must equal the file's, key by key (a mismatch names the key and both values)
  int64_t batches_per_epoch = 0;  // of the job's training loader
  int64_t batch_size = 0;
};

void save_checkpoint(const std::string& path, const torch::nn::Module& module, torch::optim::AdamW& optimizer,
                     const TrainState& state);
// Validates the whole file first (it changes nothing when it throws), then restores module, optimizer and the CPU
// generator.
TrainState load_checkpoint(const std::string& path, torch::nn::Module& module, torch::optim::AdamW& optimizer,
                           const CheckpointExpect& expect);
// The `trained_for` of a checkpoint, checked against `expected` without loading anything (a job checks every
// stage it will resume before it rewrites that stage's plan.yaml). No-op when the file does not exist.
void check_trained_for(const std::string& path, const nlohmann::json& expected);

}  // namespace train
}  // namespace mnq
