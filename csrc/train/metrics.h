// Evaluation of a classifier on a loader: mean cross-entropy (no smoothing), top-1 and top-5 accuracy, and the
// 95 % Wilson score interval of top-1 on the test-set size (the binomial error of the test set alone: with
// n = 1000 images, ±2.5 points around 80 %), and which images top-1 got right (for the paired tests of stats.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "csrc/data/loader.h"
#include "csrc/models/factory.h"
#include "csrc/train/stats.h"

namespace mnq {
namespace train {

struct EvalMetrics {
  double loss = 0, top1 = 0, top5 = 0;  // top-k as fractions in [0, 1]
  int64_t n = 0;
  // Per test image, in the loader's (deterministic) order: 1 when the top-1 class is the label. Empty when unknown
  // (a checkpoint written before these were kept); otherwise hits.size() == n.
  std::vector<uint8_t> hits;
};

// Runs `model` in eval mode (quantizer ranges frozen) without gradients over every batch of epoch 0 of `loader`.
// Leaves the model in eval mode.
EvalMetrics evaluate(const models::Model& model, const data::Loader& loader, const std::string& label);

}  // namespace train
}  // namespace mnq
