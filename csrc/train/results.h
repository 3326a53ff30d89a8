// The comparison table of a job: the FP model and every quantized run, with top-1 and its 95 % Wilson interval
// on the test-set size, top-5, loss, best top-1, epochs and wall time, followed by the paired comparisons
// (comparisons.h: which differences are significant), and each finished QAT run's integer model (integer_eval.h:
// its top-1 and its equality with the fake-quant model; results.json: "integer" in the run's entry); as results.md and results.json
// ({"runs": [...], "comparisons": [...], "summary": [...], "method": {...}}). results.json holds only what the job's
// config and seed determine, so a killed and resumed job writes the same bytes as an uninterrupted one
// (scripts/fault_inject.py); the wall times are in results.md and each stage's metrics.csv.
#pragma once

#include <string>
#include <vector>

#include "csrc/train/integer_eval.h"
#include "csrc/train/metrics.h"

namespace mnq {
namespace train {

struct RunResult {
  std::string name;     // "fp" or the run's name
  int64_t bits = 0;     // 0 for FP
  std::string plan;     // "-" for FP; the plan as configured (mixed, ivit, …, or a file)
  EvalMetrics metrics;  // final evaluation
  double best_top1 = 0;
  int64_t best_epoch = 0;
  double epochs = 0;  // epochs trained (fractional when a time budget stopped mid-epoch)
  double wall_s = 0;  // training + evaluation time, over all sessions
  bool finished = false;
  std::optional<IntegerMetrics> integer;  // a finished QAT run's integer model (integer_eval.h)
};

std::string results_markdown(const std::vector<RunResult>& rows);
std::string results_json(const std::vector<RunResult>& rows);
// Writes <dir>/results.md and <dir>/results.json atomically.
void write_results(const std::string& dir, const std::vector<RunResult>& rows);

}  // namespace train
}  // namespace mnq
