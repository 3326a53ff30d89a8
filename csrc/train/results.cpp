#include "csrc/train/results.h"

#include <nlohmann/json.hpp>

#include "csrc/train/comparisons.h"
#include "csrc/train/log.h"
#include "csrc/util/atomic_file.h"

namespace mnq {
namespace train {

std::string results_markdown(const std::vector<RunResult>& rows) {
  std::string md =
      "| run | bits | plan | top-1 % [95% CI] | top-5 % | loss | best top-1 % (epoch) | epochs | wall time |\n"
      "|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& r : rows) {
    const Interval ci = wilson_interval(r.metrics.top1, r.metrics.n);
    md += fmt::format("| {} | {} | {} | {:.2f} [{:.2f}, {:.2f}] | {:.2f} | {:.4f} | {:.2f} ({}) | {:.2f}{} | {} |\n",
                      r.name, r.bits ? std::to_string(r.bits) : "32 (FP)", r.plan, 100 * r.metrics.top1, 100 * ci.lo,
                      100 * ci.hi, 100 * r.metrics.top5, r.metrics.loss, 100 * r.best_top1, r.best_epoch, r.epochs,
                      r.finished ? "" : " (unfinished)", log::duration(r.wall_s));
  }
  if (!rows.empty()) {
    md += fmt::format("\nTest images: {}. The interval is the Wilson score interval of top-1 on that many images.\n",
                      rows.front().metrics.n);
  }
  return md + comparisons_markdown(rows, paired_comparisons(rows));
}

std::string results_json(const std::vector<RunResult>& rows) {
  nlohmann::json runs = nlohmann::json::array();
  for (const auto& r : rows) {
    const Interval ci = wilson_interval(r.metrics.top1, r.metrics.n);
    runs.push_back({{"name", r.name},
                    {"bits", r.bits},
                    {"plan", r.plan},
                    {"top1", r.metrics.top1},
                    {"top1_ci95", {ci.lo, ci.hi}},
                    {"top5", r.metrics.top5},
                    {"loss", r.metrics.loss},
                    {"test_images", r.metrics.n},
                    {"best_top1", r.best_top1},
                    {"best_epoch", r.best_epoch},
                    {"epochs", r.epochs},
                    {"finished", r.finished}});
  }
  nlohmann::json out = comparisons_json(rows, paired_comparisons(rows));
  out["runs"] = std::move(runs);
  return out.dump(2) + "\n";
}

void write_results(const std::string& dir, const std::vector<RunResult>& rows) {
  util::write_file_atomic(dir + "/results.md", results_markdown(rows));
  util::write_file_atomic(dir + "/results.json", results_json(rows));
}

}  // namespace train
}  // namespace mnq
