// The sensitivity analyzer (SPEC §7, arXiv 2407.18437 §3): per mixable layer and candidate method, how much
// signal quality the layer itself loses (ΔSQNR = SQNR_out − SQNR_in), and the mixed plan that gives every layer
// the method losing least.
//
// Paper mode (SPEC §7): one uniformly quantized model per candidate method (create_quant with Plan::uniform(m),
// parameters copied from the full-precision model), each calibrated on the calibration set, then run beside the
// full-precision model on the same images; every mixable layer's input and output are compared with the
// full-precision layer's. Isolated mode (beyond the paper): each candidate is also fed the full-precision input
// of the layer, put on the grid of the input the quantized layer received, and its output is scored against the
// float op's; upstream error then cannot confound the ranking. It costs one extra call of each observed layer,
// ~15–20% of the analysis, and is scored when AnalyzerConfig::scores_isolated() (isolated: true, or auto and mode
// isolated / searched); `mode` picks which ranking writes the plan.
//
// Cost, counted in passes over the calibration set: calibration = one pass per uniform model (train mode: the
// activation ranges track the EMA, PtfAct chooses α; each model needs its own since its ranges depend on its
// own upstream methods), measurement = methods + 1 (per batch: one full-precision forward whose layer inputs and
// outputs are kept for that batch only, then one forward of each uniform model, scored as it runs).
// Memory: the full-precision activations of the mixable layers for one batch, plus a few float64 scalars per
// layer and method; nothing grows with the number of batches.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "csrc/analysis/config.h"
#include "csrc/analysis/progress.h"
#include "csrc/analysis/report.h"
#include "csrc/models/factory.h"

namespace mnq {
namespace analysis {

// Calibration images, read lazily so memory does not grow with their number: batch(i) for i in
// [0, num_batches) returns the same float images [B, C, H, W] every time it is called with the same i.
struct BatchSource {
  int64_t num_batches = 0;
  std::function<at::Tensor(int64_t)> batch;
};

// The uniform model of one method: create_quant(fp.preset, {bits, Plan::uniform(method)}, overrides), the
// parameters of `fp` copied in, moved to fp's device and calibrated. Empty `overrides`: fp.overrides.
models::Model uniform_model(const models::Model& fp, int64_t bits, const std::string& method,
                            const BatchSource& calib, int64_t batches, const models::ModelOverrides& overrides = {},
                            const ProgressCallback& progress = {});

// The quantized model of any plan, built and calibrated as uniform_model does; `label` names it in errors.
models::Model calibrated_model(const models::Model& fp, int64_t bits, const models::Plan& plan,
                               const std::string& label, const BatchSource& calib, int64_t batches,
                               const models::ModelOverrides& overrides = {}, const ProgressCallback& progress = {});

// fp: a full-precision model (models::create_fp, trained weights; on CPU or CUDA, the analysis runs there).
// `overrides`: the ones fp was created with (empty: fp.overrides, which models::create_fp records). Uses
// min(config.calib_batches, calib.num_batches) batches.
// `progress` receives every batch of every phase (besides the stderr line of config.progress).
// Throws std::invalid_argument on a bad config (naming the key under "analyze"), a quantized `fp`, or an empty
// calibration set. Pins full FP32 process-wide first (models::pin_full_fp32: no TF32 in cuBLAS/cuDNN), so the
// plan does not depend on the GPU it was measured on.
Report analyze(const models::Model& fp, int64_t bits, const AnalyzerConfig& config, const BatchSource& calib,
               const models::ModelOverrides& overrides = {}, const ProgressCallback& progress = {});

}  // namespace analysis
}  // namespace mnq
