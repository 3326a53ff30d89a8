// Training checkpoints: everything a stage needs to continue exactly where it stopped, in ONE safetensors file
// written atomically (temp file + rename), so a kill at any moment leaves either the previous checkpoint or the
// new one, never a mix:
//   model.<name>          every parameter and buffer (quantizer ranges, PtfAct α, …)
//   optim.<name>.exp_avg / .exp_avg_sq / .step   AdamW's state per parameter (by parameter name)
//   rng.cpu               the state of the default CPU generator (at::manual_seed's)
//   state.json            TrainState as JSON bytes (uint8)
//   eval.hits             the last evaluation's per-image top-1 hits (uint8 [val_n]; absent before the first
//                         evaluation and in checkpoints of older versions)
#pragma once

#include <torch/nn/module.h>
#include <torch/optim/adamw.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

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
  nlohmann::json history = nlohmann::json::array();  // one object per evaluation (see trainer.h)
  std::vector<uint8_t> eval_hits;  // EvalMetrics::hits of the last evaluation (not in the JSON: eval.hits)

  nlohmann::json to_json() const;
  static TrainState from_json(const nlohmann::json& j);
};

void save_checkpoint(const std::string& path, const torch::nn::Module& module, torch::optim::AdamW& optimizer,
                     const TrainState& state);
// Restores module, optimizer and the CPU generator; throws naming the file and key when the file does not fit the
// module (another model or plan).
TrainState load_checkpoint(const std::string& path, torch::nn::Module& module, torch::optim::AdamW& optimizer);

}  // namespace train
}  // namespace mnq
