#include "csrc/train/results.h"

#include <nlohmann/json.hpp>

#include "csrc/train/comparisons.h"
#include "csrc/util/atomic_file.h"
#include "csrc/util/log.h"

namespace mnq {
namespace train {
namespace {

// The integer models of the finished QAT runs (model.int.safetensors): their top-1 next to the fake-quant model's
// and how often the two agree.
std::string integer_markdown(const std::vector<RunResult>& rows) {
  std::string md;
  for (const auto& r : rows) {
    if (!r.integer) continue;
    const IntegerMetrics& m = *r.integer;
    auto pct = [](const std::optional<double>& v) { return v ? fmt::format("{:.3f}", 100 * *v) : std::string("n/a"); };
    md += m.skipped.empty() ? fmt::format("| {} | {:.2f} | {:.2f} | {:.2f} | {} | {} |\n", r.name, 100 * r.metrics.top1,
                                          100 * m.top1, 100 * m.top1_agree, pct(m.equal_logits), pct(m.equal_images))
                            : fmt::format("| {} | {:.2f} | not exported: {} | | | |\n", r.name, 100 * r.metrics.top1,
                                          m.skipped);
  }
  if (md.empty()) return md;
  return "\nInteger models (<run>/model.int.safetensors, integer-only inference; equality with the fake-quant model "
         "on the same test images: same top-1 class, integer logits equal bit for bit, images with every logit "
         "equal):\n\n"
         "| run | top-1 % (fake quant) | top-1 % (integer) | same top-1 % | equal logits % | equal images % |\n"
         "|---|---|---|---|---|---|\n" +
         md;
}

}  // namespace

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
  md += integer_markdown(rows);
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
    if (r.integer) runs.back()["integer"] = r.integer->to_json();
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
