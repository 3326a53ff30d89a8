// mnq-analyze: the job config and its run; see analyze_job.h.
#include "csrc/jobs/analyze_job.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <fmt/format.h>

#include <filesystem>
#include <iostream>

#include "csrc/analysis/analyzer.h"
#include "csrc/analysis/report.h"
#include "csrc/analysis/search.h"
#include "csrc/config/cli.h"
#include "csrc/data/loader.h"
#include "csrc/jobs/datasets.h"
#include "csrc/jobs/mixed.h"
#include "csrc/models/device.h"
#include "csrc/models/plan.h"
#include "csrc/models/weights.h"
#include "csrc/util/atomic_file.h"

namespace mnq {
namespace analysis {
namespace {

// The training split as mnq-train reads it (train::training_split: same normalisation, subset and shuffled
// calibration epoch), so the analyzer sees the batches `plan: mixed` of a training job with the same data section
// sees.
data::Loader calibration_loader(const train::DataConfig& d, const train::ModelShape& shape) {
  return data::Loader(train::training_split(d, shape),
                      {d.batch_size, true, true, d.workers, d.prefetch, static_cast<uint64_t>(d.seed)});
}

}  // namespace

void AnalyzeModelConfig::visit(config::Visitor& v) {
  v.field("preset", preset, "model preset (models::preset_names())");
  v.field("checkpoint", checkpoint, "safetensors file of the full-precision weights (timm names)");
  v.field("num_classes", num_classes, "override the preset's number of classes (0: keep)");
  v.field("img_size", img_size, "override the preset's image size (0: keep)");
  v.field("in_chans", in_chans, "override the preset's input channels (0: keep)");
}

void AnalyzeModelConfig::validate(const std::string& path) const {
  const auto key = [&](const char* k) { return config::detail::join(path, k); };
  try {
    models::preset_family(preset);
  } catch (const std::invalid_argument& e) {
    throw config::Error(key("preset"), e.what());
  }
  if (checkpoint.empty()) throw config::Error(key("checkpoint"), "is required (the full-precision weights)");
  if (!config::is_file(checkpoint)) {
    throw config::Error(key("checkpoint"), "no such file: '" + checkpoint + "'");
  }
  for (const auto& [k, v] : {std::pair{"num_classes", num_classes}, {"img_size", img_size}, {"in_chans", in_chans}}) {
    if (v < 0) throw config::Error(key(k), "must be 0 (the preset's) or positive, got " + std::to_string(v));
  }
}

models::ModelOverrides AnalyzeModelConfig::overrides() const {
  models::ModelOverrides o;
  if (num_classes > 0) o.num_classes = num_classes;
  if (img_size > 0) o.img_size = img_size;
  if (in_chans > 0) o.in_chans = in_chans;
  return o;
}

void AnalyzeOutputConfig::visit(config::Visitor& v) {
  v.field("dir", dir, "output folder: plan.yaml, report.csv, report.json, config.yaml");
}

void AnalyzeOutputConfig::validate(const std::string& path) const {
  if (dir.empty()) throw config::Error(config::detail::join(path, "dir"), "must not be empty");
}

void AnalyzeJob::visit(config::Visitor& v) {
  v.section("model", model, "the full-precision model");
  v.section("data", data, "calibration data: batches of the training split (as mnq-train)");
  v.field("bits", bits, "W/A bit-width of the quantized models (SPEC §6), 2..16");
  v.field("device", device, "auto (CUDA when available) | cpu | cuda");
  v.field("threads", threads, "intra-op CPU threads (0: LibTorch's default)");
  v.section("analyze", analyze, "the sensitivity analyzer");
  v.section("output", output, "where the plan and the report go");
}

void AnalyzeJob::validate(const std::string& path) const {
  const auto key = [&](const char* k) { return config::detail::join(path, k); };
  model.validate(key("model"));
  data.validate(key("data"));
  if (bits < 2 || bits > 16) throw config::Error(key("bits"), "must be in [2, 16], got " + std::to_string(bits));
  if (device != "auto" && device != "cpu" && device != "cuda") {
    throw config::Error(key("device"), "must be auto, cpu or cuda, got '" + device + "'");
  }
  if (threads < 0 || threads > config::max_threads()) {
    throw config::Error(key("threads"), "must be in 0.." + std::to_string(config::max_threads()) +
                                            " (4 per hardware thread, at least 64; 0: LibTorch's default), got " +
                                            std::to_string(threads));
  }
  analyze.validate(key("analyze"));
  // Every candidate is calibrated as a uniform model at these bits.
  if (const std::string why = models::unsupported_bits(bits, analyze.methods()); !why.empty()) {
    throw config::Error(key("bits"), why);
  }
  output.validate(key("output"));
}

int run_analyze_job(const AnalyzeJob& job) {
  namespace fs = std::filesystem;
  job.validate("");
  if (job.threads > 0) at::set_num_threads(static_cast<int>(job.threads));
  const bool cuda = job.device == "cuda" || (job.device == "auto" && at::hasCUDA());
  if (job.device == "cuda" && !at::hasCUDA()) throw config::Error("device", "cuda requested but no GPU is available");
  const at::Device device(cuda ? at::kCUDA : at::kCPU);
  models::pin_full_fp32();  // as analyze() does; said here before the work starts
  std::cerr << "mnq-analyze: " << (cuda ? "CUDA" : "CPU") << ", " << models::fp32_settings() << "\n";

  const models::ModelOverrides overrides = job.model.overrides();
  models::Model fp = models::create_fp(job.model.preset, overrides);
  models::load_weights(*fp.module, job.model.checkpoint);
  fp.module->to(device);
  fp.module->eval();

  const data::Loader loader = calibration_loader(job.data, train::model_shape(job.model.preset, overrides));
  const int64_t n = std::min(job.analyze.calib_batches, loader.num_batches());
  if (n == 0) {
    throw config::Error("data.batch_size", "the training split has no full batch of " +
                                               std::to_string(job.data.batch_size) + " images");
  }
  const BatchSource calib{n, [&loader](int64_t i) { return loader.batch(train::kCalibEpoch, i).images; }};

  const Report report = analyze(fp, job.bits, job.analyze, calib, overrides);
  fs::create_directories(job.output.dir);
  util::remove_stale_temps(job.output.dir);  // of a killed earlier run (util/atomic_file.h)
  const fs::path dir(job.output.dir);
  util::write_file_atomic((dir / "config.yaml").string(), config::to_yaml(job));
  report.write_csv((dir / "report.csv").string());
  report.write_json((dir / "report.json").string());
  std::cout << report.summary();
  if (job.analyze.mode != "searched") {
    report.plan.save((dir / "plan.yaml").string());
    std::cout << "wrote " << (dir / "plan.yaml").string() << ", report.csv, report.json\n";
    return 0;
  }
  // mode searched: the plan search (search.h), scored on the batches right after the calibration batches.
  const int64_t h = job.analyze.search_holdout_batches;
  if (n + h > loader.num_batches()) {
    throw config::Error("analyze.search_holdout_batches",
                        fmt::format("{} calibration + {} held-out batches, but the training split has {} batches", n,
                                    h, loader.num_batches()));
  }
  const BatchSource holdout{h, [&loader, n](int64_t i) { return loader.batch(train::kCalibEpoch, n + i).images; }};
  const SearchResult found = search_plan(fp, job.bits, job.analyze, calib, holdout, report, overrides);
  found.plan.save((dir / "plan.yaml").string());
  found.write_json((dir / "search.json").string());
  std::cout << found.summary()
            << fmt::format("the search took {:.1f}x the analyzer's {:.1f} s\n", found.seconds / std::max(report.seconds, 1e-9),
                           report.seconds)
            << "wrote " << (dir / "plan.yaml").string() << " (searched), report.csv, report.json, search.json\n";
  return 0;
}

int cli_main(int argc, char** argv) {
  return config::run_cli<AnalyzeJob>(argc, argv, "mnq-analyze",
                                     "Per-layer SQNR sensitivity of a full-precision model and the mixed plan",
                                     run_analyze_job);
}

}  // namespace analysis
}  // namespace mnq
