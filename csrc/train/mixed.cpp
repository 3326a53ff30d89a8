// `plan: mixed`: the analyzer (csrc/analysis) on the trainer's calibration batches.
#include "csrc/train/mixed.h"

#include <algorithm>
#include <filesystem>

#include <fmt/ranges.h>

#include "csrc/analysis/analyzer.h"
#include "csrc/train/log.h"
#include "csrc/train/metrics.h"
#include "csrc/train/trainer.h"

namespace mnq {
namespace train {

namespace {

std::string plan_file(const std::string& dir, const std::string& kind, int64_t bits) {
  return (std::filesystem::path(dir) / (kind + "_w" + std::to_string(bits) + ".yaml")).string();
}

}  // namespace

const models::Plan& MixedPlans::of(const std::string& plan) const {
  if (plan == "mixed_paper") return paper;
  if (plan == "mixed_isolated") return isolated;
  return chosen;
}

void MixedPlans::save(const std::string& dir, int64_t bits) const {
  paper.save(plan_file(dir, "mixed_paper", bits));
  isolated.save(plan_file(dir, "mixed_isolated", bits));
  chosen.save(plan_file(dir, "mixed", bits));  // last: its presence marks a complete set
}

std::optional<MixedPlans> MixedPlans::load(const std::string& dir, int64_t bits) {
  MixedPlans p;
  const std::pair<const char*, models::Plan*> files[] = {
      {"mixed", &p.chosen}, {"mixed_paper", &p.paper}, {"mixed_isolated", &p.isolated}};
  for (const auto& [kind, plan] : files) {
    const std::string file = plan_file(dir, kind, bits);
    if (!std::filesystem::exists(file)) return std::nullopt;
    *plan = models::Plan::load(file);
  }
  return p;
}

MixedPlans mixed_plans(const models::Model& fp, int64_t bits, const JobConfig& config, const data::Loader& calib,
                       const models::ModelOverrides& overrides, const std::string& report_dir) {
  const int64_t n = std::min(config.analyze.calib_batches, calib.num_batches());
  if (n == 0) {
    throw config::Error("data.batch_size", "the training split has no full batch for the analyzer's calibration");
  }
  const at::Device device = model_device(fp);
  const analysis::BatchSource source{
      n, [&calib, device](int64_t i) { return calib.batch(kCalibEpoch, i).images.to(device); }};
  log::info("analyzer: W{} on {} calibration batches, candidates softmax [{}], gelu [{}], layernorm [{}]", bits, n,
            fmt::join(config.analyze.softmax, ", "), fmt::join(config.analyze.gelu, ", "),
            fmt::join(config.analyze.layernorm, ", "));
  at::manual_seed(stage_seed(config.data.seed, "analyze/w" + std::to_string(bits)));  // its own stage (trainer.h)
  const analysis::Report report = analysis::analyze(fp, bits, config.analyze, source, overrides);
  const std::filesystem::path dir(report_dir);
  const std::string stem = "mixed_w" + std::to_string(bits);
  report.write_csv((dir / (stem + "_report.csv")).string());
  report.write_json((dir / (stem + "_report.json")).string());
  log::info("analyzer: W{} done in {}\n{}", bits, log::duration(report.seconds), report.summary());
  return {report.plan, report.plan_paper, report.plan_isolated};
}

}  // namespace train
}  // namespace mnq
