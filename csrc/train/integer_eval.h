// The integer model of a finished QAT run (issue 11): deploy::convert of the trained fake-quant model, published as
// `<run>/model.int.safetensors` (IntegerModel::save: the one atomic write of csrc/util), and its evaluation on the
// job's test set side by side with the fake-quant model it came from, published as `<run>/model.int.json`:
//   top1          the integer model's top-1 (argmax of its dequantized logits q·S, the mean of both heads when
//                 distilled, as the fake-quant model's)
//   top1_agree    share of the test images whose top-1 class is the fake-quant model's
//   equal_logits  share of the logits whose integer code equals the fake-quant model's head code round(logits/S)
//                 bit for bit (SPEC §5 code recovery; README "Deploy" says where and why the two can differ);
//                 null for a distilled model, whose fake-quant forward returns only the mean of its two heads
//   equal_images  share of the images all of whose logits are equal (one moved code upstream moves them all)
//   weights_hash  FNV-1a of the fake-quant model's parameters and buffers (names, dtypes, shapes, bytes) that
//                 were exported: a resumed job whose run is already exported from the same weights reads this file
//                 instead of converting and evaluating again; other weights (a rerun without --resume) export anew.
// Both files are functions of the weights and the test set alone, so a killed and resumed job writes the same bytes
// (scripts/fault_inject.py compares them).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "csrc/data/loader.h"
#include "csrc/models/factory.h"

namespace mnq {
namespace train {

struct IntegerMetrics {
  std::string skipped;                // non-empty: not exported, and why (W/A above the engine's 8 bits)
  double top1 = 0, top1_agree = 0;    // fractions in [0, 1]
  std::optional<double> equal_logits;  // none for a distilled model (see above)
  std::optional<double> equal_images;
  int64_t n = 0;                       // test images
  std::string weights_hash;            // 16 hex digits

  nlohmann::json to_json() const;
  static IntegerMetrics from_json(const nlohmann::json& j, const std::string& path);
};

// The FNV-1a hash (16 hex digits) of a module's parameters and buffers, in named order.
std::string weights_hash(const torch::nn::Module& module);

// Exports and evaluates the integer model of `model` (a finished QAT run; left in eval mode) into `run_dir`, or
// reads `<run_dir>/model.int.json` when it describes these weights and model.int.safetensors exists. W/A above 8:
// nothing is written and `skipped` says why.
IntegerMetrics export_integer_model(const models::Model& model, const data::Loader& val, const std::string& run_dir,
                                    const std::string& name);

}  // namespace train
}  // namespace mnq
