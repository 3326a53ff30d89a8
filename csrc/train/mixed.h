// `plan: mixed`: the per-layer plan of the SQNR-difference analyzer (SPEC §7) for one bit-width.
#pragma once

#include <string>

#include "csrc/data/loader.h"
#include "csrc/models/factory.h"
#include "csrc/train/job_config.h"

namespace mnq {
namespace train {

// The epoch number whose (shuffled, deterministic) training batches serve as calibration data, distinct from
// the training epochs 0, 1, … so calibration images do not depend on the number of epochs.
inline constexpr int64_t kCalibEpoch = 1000000;

// Runs the analyzer on the FP model with the first calibration batches of `calib`, writes its report into
// `report_dir`, and returns the plan.
models::Plan mixed_plan(const models::Model& fp, int64_t bits, const JobConfig& config, const data::Loader& calib,
                        const models::ModelOverrides& overrides, const std::string& report_dir);

}  // namespace train
}  // namespace mnq
