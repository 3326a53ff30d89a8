// Calibration; see calibrate.h.
#include "csrc/models/calibrate.h"

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include "csrc/nn/quant.h"

namespace mnq {
namespace models {

void calibrate(const Model& model, int64_t batches, const std::function<at::Tensor(int64_t)>& batch,
               const CalibrateOptions& options) {
  at::NoGradGuard no_grad;
  if (options.reset_alpha) {
    for (const auto& m : model.module->modules()) {
      if (auto* ptf = m->as<nn::PtfActImpl>()) ptf->reset_alpha();
    }
  }
  model.module->train();
  for (int64_t i = 0; i < batches; ++i) {
    const at::Tensor x = batch(i);
    model.forward(x);
    if (options.on_batch) options.on_batch(x.size(0));
  }
  model.freeze_alpha();
  if (options.eval_after) model.module->eval();
}

}  // namespace models
}  // namespace mnq
