// A whole `mnq-train` job: data, the FP model (loaded, or pretrained and cached in <dir>/fp), then every run
// (calibrate → QAT → evaluate), each from the same FP weights, and the results table. The C++ entry of the
// trainer (the CLI and the Python bindings call run_job).
//
// Run folder <output.dir>: config.yaml (the resolved job), train.log, fp/ (stage folder, see trainer.h),
// <run>/ (plan.yaml + a stage folder), plans/ (the analyzer's reports and plans: mixed_w<bits>.yaml of
// analyze.mode, mixed_paper_w<bits>.yaml, mixed_isolated_w<bits>.yaml when the isolated scores were computed,
// searched_w<bits>.yaml when searched), results.md, results.json.
#pragma once

#include <string>
#include <vector>

#include "csrc/jobs/datasets.h"  // ModelShape, model_shape
#include "csrc/jobs/job_config.h"
#include "csrc/train/results.h"

namespace mnq {
namespace train {

struct JobOptions {
  bool resume = false;             // continue every stage from its checkpoint; skip finished runs
  int64_t stop_after_epochs = -1;  // stop after this many epochs in this session (all stages), as if killed
  bool quiet = false;              // no progress bars
};

struct JobResult {
  std::string dir;
  std::vector<RunResult> rows;  // FP first, then the runs in order (those reached)
  bool finished = false;        // every stage finished
  int64_t epochs_left = -1;     // what is left of JobOptions::stop_after_epochs after this job (-1: no limit)
};

// One job per seed of `config.seeds` (seeds.h) when it lists any, else run_single_job.
JobResult run_job(const JobConfig& config, const JobOptions& options = {});
// The job with data.seed alone (config.seeds is not looked at).
JobResult run_single_job(const JobConfig& config, const JobOptions& options = {});
// The entry of the Python bindings: run_job(config, {resume}).
inline JobResult run_job(const JobConfig& config, bool resume) {
  JobOptions options;
  options.resume = resume;
  return run_job(config, options);
}

// `mnq-train`: config::run_cli with --resume and --stop-after-epochs. Returns the exit status.
int cli_main(int argc, char** argv);

}  // namespace train
}  // namespace mnq
