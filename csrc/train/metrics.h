// Evaluation of a classifier on a loader: mean cross-entropy (no smoothing), top-1 and top-5 accuracy, and the
// 95 % Wilson score interval of top-1 on the test-set size (the binomial error of the test set alone: with
// n = 1000 images, ±2.5 points around 80 %).
#pragma once

#include <cstdint>
#include <string>

#include "csrc/data/loader.h"
#include "csrc/models/factory.h"

namespace mnq {
namespace train {

struct EvalMetrics {
  double loss = 0, top1 = 0, top5 = 0;  // top-k as fractions in [0, 1]
  int64_t n = 0;
};

// Runs `model` in eval mode (quantizer ranges frozen) without gradients over every batch of epoch 0 of `loader`.
// Leaves the model in eval mode.
// Where the model's parameters live (batches are moved there).
at::Device model_device(const models::Model& model);

EvalMetrics evaluate(const models::Model& model, const data::Loader& loader, const std::string& label);

struct Interval {
  double lo = 0, hi = 0;
};
// Wilson score interval for a proportion p observed on n trials (z = 1.96: 95 %).
Interval wilson_interval(double p, int64_t n, double z = 1.959963984540054);

}  // namespace train
}  // namespace mnq
