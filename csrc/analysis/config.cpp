// AnalyzerConfig validation.
#include "csrc/analysis/config.h"

#include <algorithm>

#include "csrc/models/plan.h"

namespace mnq {
namespace analysis {
namespace {

[[noreturn]] void fail(const std::string& path, const std::string& key, const std::string& what) {
  throw config::Error(config::detail::join(path, key), what);
}

void check_candidates(const std::string& path, const char* key, const std::vector<std::string>& list) {
  if (list.empty()) fail(path, key, "needs at least one candidate method");
  const auto& known = models::plan_methods();
  for (size_t i = 0; i < list.size(); ++i) {
    if (std::find(known.begin(), known.end(), list[i]) == known.end()) {
      fail(path, key, "unknown method '" + list[i] + "' (expected ivit, ibert or fqvit)");
    }
    if (std::find(list.begin(), list.begin() + i, list[i]) != list.begin() + i) {
      fail(path, key, "method '" + list[i] + "' is listed twice");
    }
  }
}

}  // namespace

void AnalyzerConfig::validate(const std::string& path) const {
  check_candidates(path, "softmax", softmax);
  check_candidates(path, "gelu", gelu);
  check_candidates(path, "layernorm", layernorm);
  if (calib_batches <= 0) fail(path, "calib_batches", "must be positive, got " + std::to_string(calib_batches));
  if (mode != "paper" && mode != "isolated" && mode != "searched") {
    fail(path, "mode", "must be paper, isolated or searched, got '" + mode + "'");
  }
  if (isolated != "auto" && isolated != "true" && isolated != "false") {
    fail(path, "isolated", "must be auto, true or false, got '" + isolated + "'");
  }
  if (isolated == "false" && mode != "paper") {
    fail(path, "isolated", "false needs mode paper (mode '" + mode + "' ranks by the isolated scores)");
  }
  if (search_evaluations < 1 || search_evaluations > 100000) {
    fail(path, "search_evaluations", "must be in 1..100000, got " + std::to_string(search_evaluations));
  }
  if (search_holdout_batches < 1 || search_holdout_batches > 100000) {
    fail(path, "search_holdout_batches", "must be in 1..100000, got " + std::to_string(search_holdout_batches));
  }
}

bool AnalyzerConfig::scores_isolated(bool needed) const {
  return isolated == "true" || (isolated == "auto" && (needed || mode != "paper"));
}

std::vector<std::string> AnalyzerConfig::methods() const {
  std::vector<std::string> out;
  for (const auto& m : models::plan_methods()) {
    for (const auto* list : {&softmax, &gelu, &layernorm}) {
      if (std::find(list->begin(), list->end(), m) != list->end()) {
        out.push_back(m);
        break;
      }
    }
  }
  return out;
}

}  // namespace analysis
}  // namespace mnq
