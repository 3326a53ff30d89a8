// `plan: mixed`: the analyzer (csrc/analysis) on the trainer's calibration batches.
#include "csrc/jobs/mixed.h"

#include <algorithm>
#include <filesystem>

#include <fmt/ranges.h>

#include "csrc/analysis/analyzer.h"
#include "csrc/analysis/search.h"
#include "csrc/models/device.h"
#include "csrc/train/trainer.h"
#include "csrc/util/log.h"

namespace mnq {
namespace train {

namespace {

std::string plan_file(const std::string& dir, const std::string& kind, int64_t bits) {
  return (std::filesystem::path(dir) / (kind + "_w" + std::to_string(bits) + ".yaml")).string();
}

}  // namespace

const models::Plan& MixedPlans::of(const std::string& plan) const {
  if (plan == "mixed_paper") return paper;
  if (plan == "mixed_isolated") {
    if (!isolated) throw std::logic_error("MixedPlans: no isolated plan was computed");
    return *isolated;
  }
  if (plan == "searched") {
    if (!searched) throw std::logic_error("MixedPlans: no searched plan was computed");
    return *searched;
  }
  return chosen;
}

void MixedPlans::save(const std::string& dir, int64_t bits) const {
  paper.save(plan_file(dir, "mixed_paper", bits));
  for (const auto& [kind, plan] : {std::pair{"mixed_isolated", &isolated}, std::pair{"searched", &searched}}) {
    if (*plan) {
      (*plan)->save(plan_file(dir, kind, bits));
    } else {
      std::filesystem::remove(plan_file(dir, kind, bits));  // not of this analysis
    }
  }
  chosen.save(plan_file(dir, "mixed", bits));  // last: its presence marks a complete set
}

std::optional<MixedPlans> MixedPlans::load(const std::string& dir, int64_t bits) {
  MixedPlans p;
  for (const auto& [kind, plan] : {std::pair{"mixed", &p.chosen}, std::pair{"mixed_paper", &p.paper}}) {
    const std::string file = plan_file(dir, kind, bits);
    if (!std::filesystem::exists(file)) return std::nullopt;
    *plan = models::Plan::load(file);
  }
  for (const auto& [kind, plan] : {std::pair{"mixed_isolated", &p.isolated}, std::pair{"searched", &p.searched}}) {
    const std::string file = plan_file(dir, kind, bits);
    if (std::filesystem::exists(file)) *plan = models::Plan::load(file);
  }
  return p;
}

MixedPlans mixed_plans(const models::Model& fp, int64_t bits, const JobConfig& config, const data::Loader& calib,
                       const models::ModelOverrides& overrides, const std::string& report_dir, bool search,
                       bool isolated) {
  const int64_t n = std::min(config.analyze.calib_batches, calib.num_batches());
  if (n == 0) {
    throw config::Error("data.batch_size", "the training split has no full batch for the analyzer's calibration");
  }
  const at::Device device = models::model_device(fp);
  const analysis::BatchSource source{
      n, [&calib, device](int64_t i) { return calib.batch(kCalibEpoch, i).images.to(device); }};
  analysis::AnalyzerConfig analyze = config.analyze;
  analyze.isolated = isolated ? "true" : "false";  // the caller's resolution of auto
  log::info("analyzer: W{} on {} calibration batches, candidates softmax [{}], gelu [{}], layernorm [{}], {}", bits,
            n, fmt::join(analyze.softmax, ", "), fmt::join(analyze.gelu, ", "), fmt::join(analyze.layernorm, ", "),
            analyze.isolated == "true" ? "paper and isolated scores" : "paper-mode scores");
  at::manual_seed(stage_seed(config.data.seed, "analyze/w" + std::to_string(bits)));  // its own stage (trainer.h)
  const analysis::Report report = analysis::analyze(fp, bits, analyze, source, overrides);
  const std::filesystem::path dir(report_dir);
  const std::string stem = "mixed_w" + std::to_string(bits);
  report.write_csv((dir / (stem + "_report.csv")).string());
  report.write_json((dir / (stem + "_report.json")).string());
  log::info("analyzer: W{} done in {}\n{}", bits, log::duration(report.seconds), report.summary());
  MixedPlans plans{report.plan, report.plan_paper, std::nullopt, std::nullopt};
  if (report.isolated) plans.isolated = report.plan_isolated;
  if (!search && config.analyze.mode != "searched") return plans;
  const int64_t h = config.analyze.search_holdout_batches;
  if (n + h > calib.num_batches()) {
    throw config::Error("analyze.search_holdout_batches",
                        fmt::format("{} calibration + {} held-out batches, but the training split has {} batches", n,
                                    h, calib.num_batches()));
  }
  const analysis::BatchSource holdout{
      h, [&calib, device, n](int64_t i) { return calib.batch(kCalibEpoch, n + i).images.to(device); }};
  at::manual_seed(stage_seed(config.data.seed, "search/w" + std::to_string(bits)));
  const analysis::SearchResult found = analysis::search_plan(fp, bits, analyze, source, holdout, report, overrides);
  found.write_json((dir / ("searched_w" + std::to_string(bits) + "_search.json")).string());
  log::info("plan search: W{}: {} (the analyzer took {:.1f} s: the search cost {:.1f}x)", bits, found.summary(),
            report.seconds, found.seconds / std::max(report.seconds, 1e-9));
  plans.searched = found.plan;
  if (config.analyze.mode == "searched") plans.chosen = found.plan;
  return plans;
}

}  // namespace train
}  // namespace mnq
