// Calibration (SPEC §1): a quantized model's activation ranges, before QAT or before measuring it. The one
// definition used by the trainer's runs (csrc/jobs/train_job.cpp) and the analyzer's models
// (csrc/analysis/analyzer.cpp), which differ only in the options they pass:
//
//   the trainer:  the model was just created (no α search has run), and QAT follows in train mode;
//   the analyzer: as mnq.calibrate, every PtfAct α search restarts first, and the model is measured in eval mode.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>

#include "csrc/models/factory.h"

namespace mnq {
namespace models {

struct CalibrateOptions {
  bool reset_alpha = false;  // restart every PtfAct α search first (nn::PtfActImpl::reset_alpha)
  bool eval_after = false;   // leave the model in eval mode (else in train mode)
  // Called after each batch with its number of images (a progress display); may be empty.
  std::function<void(int64_t images)> on_batch;
};

// Runs batch(0), …, batch(batches − 1) (images [B, C, H, W] on the model's device) through `model` in train mode
// without gradients: every quantizer's range tracks the EMA of its batch min/max and each PtfAct searches its α.
// Then the α choice is frozen (Model::freeze_alpha). Nothing else of the model changes; RNG draws are the
// forwards' own (drop-path in train mode).
void calibrate(const Model& model, int64_t batches, const std::function<at::Tensor(int64_t)>& batch,
               const CalibrateOptions& options = {});

}  // namespace models
}  // namespace mnq
