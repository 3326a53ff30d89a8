// The YAML job of `mnq-analyze` (STYLE rule 12): a full-precision model and its weights, the calibration data
// (the `data:` section of mnq-train jobs, so one file's sections can be shared), the bit-width, the analyzer
// settings and the output folder, which receives plan.yaml, report.csv, report.json and config.yaml.
//
//   model: {preset: vit_mnist_tiny, checkpoint: runs/fp/model.safetensors}
//   data: {kind: fashion_mnist, batch_size: 64}
//   bits: 8
//   analyze: {calib_batches: 30, mode: paper}
//   output: {dir: runs/analyze}
#pragma once

#include <cstdint>
#include <string>

#include "csrc/analysis/config.h"
#include "csrc/config/config.h"
#include "csrc/jobs/job_config.h"
#include "csrc/models/factory.h"

namespace mnq {
namespace analysis {

struct AnalyzeModelConfig {
  std::string preset = "vit_mnist_tiny";
  std::string checkpoint;  // safetensors of the full-precision weights (models::load_weights); required
  int64_t num_classes = 0, img_size = 0, in_chans = 0;  // 0: the preset's

  void visit(config::Visitor& v);
  void validate(const std::string& path) const;
  models::ModelOverrides overrides() const;
};

struct AnalyzeOutputConfig {
  std::string dir = "runs/analyze";

  void visit(config::Visitor& v);
  void validate(const std::string& path) const;
};

struct AnalyzeJob {
  AnalyzeModelConfig model;
  train::DataConfig data;
  int64_t bits = 8;
  std::string device = "auto";  // auto (CUDA when available) | cpu | cuda
  int64_t threads = 0;          // intra-op threads (0: LibTorch's default)
  AnalyzerConfig analyze;
  AnalyzeOutputConfig output;

  void visit(config::Visitor& v);
  void validate(const std::string& path) const;
};

// Runs the job: builds the model, loads its weights, analyzes on the calibration batches, writes the output
// folder and prints the summary. Returns 0.
int run_analyze_job(const AnalyzeJob& job);

// `mnq-analyze --config job.yaml [--set key=value] [--print-config]`; the exit status.
int cli_main(int argc, char** argv);

}  // namespace analysis
}  // namespace mnq
