// The `analyze:` section of a job (mnq-analyze jobs and training jobs with `plan: mixed`), SPEC §7 defaults.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "csrc/config/config.h"

namespace mnq {
namespace analysis {

struct AnalyzerConfig {
  // Candidates per op type (SPEC §7); the tie rule prefers the earlier of ivit, ibert, fqvit whatever the order
  // given here. GELU may name fqvit (float GELU, SPEC §3.3) only explicitly.
  std::vector<std::string> softmax = {"ivit", "ibert", "fqvit"};
  std::vector<std::string> gelu = {"ivit", "ibert"};
  std::vector<std::string> layernorm = {"ivit", "ibert", "fqvit"};
  int64_t calib_batches = 30;  // SPEC §7 default: 30 batches of the training split
  std::string mode = "paper";  // which ranking writes the plan: paper (ΔSQNR) | isolated | searched (search.h)
  bool progress = true;        // a progress line on stderr
  // Score the isolated mode too (each candidate re-run on the full-precision input put on its grid: ~15–20% of the
  // analysis): true | false | auto (when `mode` needs them: isolated or searched; a training job also when a run of
  // the bit-width is mixed_isolated or searched). Without them the report holds the paper-mode scores (SPEC §7).
  std::string isolated = "auto";
  // The plan search (search.h; mode searched, or a `plan: searched` run of mnq-train).
  int64_t search_evaluations = 40;     // candidate plans calibrated and scored at most (start plans included)
  int64_t search_holdout_batches = 8;  // held-out training batches (after the calibration batches) it scores on

  void visit(config::Visitor& v) {
    v.field("softmax", softmax, "candidate methods for softmax layers (ivit, ibert, fqvit)");
    v.field("gelu", gelu, "candidate methods for GELU layers (ivit, ibert; fqvit = float GELU)");
    v.field("layernorm", layernorm, "candidate methods for LayerNorm layers (ivit, ibert, fqvit)");
    v.field("calib_batches", calib_batches,
            "calibration batches: each uniform model is calibrated, then scored, on them");
    v.field("mode", mode, "ranking that writes the plan: paper (max SQNR difference) | isolated (max output SQNR "
                          "on the full-precision input) | searched (greedy search from the uniform and analyzer "
                          "plans, scored by the quantized model's KL to the full-precision outputs)");
    v.field("progress", progress, "show a progress line on stderr");
    v.field("isolated", isolated,
            "also score the isolated mode (~15-20% of the analysis): true | false | auto (when needed: mode "
            "isolated or searched, a mixed_isolated or searched run); without: the paper-mode scores only, SPEC §7");
    v.field("search_evaluations", search_evaluations,
            "plan search: candidate plans calibrated and scored at most, start plans included");
    v.field("search_holdout_batches", search_holdout_batches,
            "plan search: held-out training batches scored (the ones after the calibration batches)");
  }
  // Throws config::Error("<path>.<key>", what) on an empty or unknown candidate list, a duplicate, a non-positive
  // calib_batches or an unknown mode, an isolated value other than true / false / auto (or false with a mode that
  // ranks by the isolated scores), search sizes out of range.
  void validate(const std::string& path) const;
  // Whether an analysis with this config scores the isolated mode: isolated true, or auto and `mode` needs it
  // (`needed`: a caller's own need, e.g. a training job's mixed_isolated run; ignored when isolated is false).
  bool scores_isolated(bool needed = false) const;
  // The union of the candidate lists in tie-break order (ivit, ibert, fqvit): the uniform models to build.
  std::vector<std::string> methods() const;
};

}  // namespace analysis
}  // namespace mnq
