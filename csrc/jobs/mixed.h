// `plan: mixed`: the per-layer plan of the SQNR-difference analyzer (SPEC §7) for one bit-width.
#pragma once

#include <optional>
#include <string>

#include "csrc/data/loader.h"
#include "csrc/jobs/job_config.h"
#include "csrc/models/factory.h"

namespace mnq {
namespace train {

// The epoch number whose (shuffled, deterministic) training batches serve as calibration data, distinct from
// the training epochs 0, 1, … so calibration images do not depend on the number of epochs.
inline constexpr int64_t kCalibEpoch = 1000000;

// The analyzer's plans for one bit-width.
struct MixedPlans {
  models::Plan chosen;  // analyze.mode's
  models::Plan paper;
  std::optional<models::Plan> isolated;  // the isolated ranking's, when the analysis scored it (analyze.isolated)
  std::optional<models::Plan> searched;  // the plan search's (analysis/search.h), when a run or analyze.mode asks

  // The plan of a run's `plan` value: mixed, mixed_paper, mixed_isolated or searched.
  const models::Plan& of(const std::string& plan) const;
  // Writes <dir>/mixed_w<bits>.yaml, mixed_paper_w<bits>.yaml (atomically), mixed_isolated_w<bits>.yaml and
  // searched_w<bits>.yaml when there are those plans (an older file of a plan not computed is removed).
  void save(const std::string& dir, int64_t bits) const;
  // The plans `save` wrote, or nullopt when the mixed or mixed_paper file is missing (a resumed job re-analyzes).
  static std::optional<MixedPlans> load(const std::string& dir, int64_t bits);
};

// Runs the analyzer on the FP model with the first calibration batches of `calib`, writes its report into
// `report_dir`, and returns its plans. With `search` (or analyze.mode searched) also the plan search, scored on
// the search_holdout_batches batches after the calibration batches (its report: searched_w<bits>_search.json).
// `isolated`: whether the analysis scores the isolated mode (and returns its plan) — analyze.isolated as the caller
// resolved it (AnalyzerConfig::scores_isolated with its runs' needs; the search needs it).
MixedPlans mixed_plans(const models::Model& fp, int64_t bits, const JobConfig& config, const data::Loader& calib,
                       const models::ModelOverrides& overrides, const std::string& report_dir, bool search = false,
                       bool isolated = false);

}  // namespace train
}  // namespace mnq
