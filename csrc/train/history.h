// The evaluations of a training stage: one entry per evaluation (after every epoch, and when a time budget stops
// a stage mid-epoch). Kept in the checkpoint (state.json's "history", checkpoint.h) and written as the stage
// folder's metrics.csv and metrics.jsonl, both rewritten after every evaluation.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace mnq {
namespace train {

struct HistoryEntry {
  double epoch = 0;        // epochs trained when evaluated: fractional after a mid-epoch time-budget stop
  double train_loss = 0;   // mean training loss over the epoch's batches so far (0 when none)
  double train_top1 = 0;   // training top-1 over those batches (the unmixed labels)
  double lr = 0;           // the learning rate of the pass's last step
  double val_loss = 0;     // the evaluation (EvalMetrics): mean cross-entropy, top-1, top-5, test images
  double val_top1 = 0;
  double val_top5 = 0;
  int64_t val_n = 0;
  double epoch_s = 0;      // seconds of the pass's training (evaluation excluded)
  double train_img_s = 0;  // training images per second of the pass
  double elapsed_s = 0;    // the stage's wall time so far, summed over sessions

  // Every key of an entry, in the order of the struct (the JSON object orders its keys by name).
  static constexpr const char* kKeys[] = {"epoch",    "train_loss", "train_top1", "lr",          "val_loss",  "val_top1",
                                          "val_top5", "val_n",      "epoch_s",    "train_img_s", "elapsed_s"};

  // {key: value} with every key above; val_n an integer, the others floating point.
  nlohmann::json to_json() const;
  // The entry of `j`, which has every key as a number and val_n as an integer (TrainState::from_json checks).
  static HistoryEntry from_json(const nlohmann::json& j);
};
using History = std::vector<HistoryEntry>;

nlohmann::json to_json(const History& history);  // an array of HistoryEntry::to_json()

// <dir>/metrics.csv (a header, then one row per entry: every key but val_n) and <dir>/metrics.jsonl (one
// to_json() per line), published atomically.
void write_metrics(const std::string& dir, const History& history);

}  // namespace train
}  // namespace mnq
