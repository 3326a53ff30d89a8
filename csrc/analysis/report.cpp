// Report output: CSV, JSON, summary; the argmax rule of SPEC §7.
#include "csrc/analysis/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "csrc/util/atomic_file.h"

namespace mnq {
namespace analysis {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// A number for CSV: shortest round-trip form; inf, -inf, nan as such (Python's float() reads all three).
std::string num(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return fmt::format("{}", v);
}

// JSON has no infinities: finite values are numbers, the others the strings of num().
nlohmann::json jnum(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(num(v)); }

}  // namespace

std::pair<size_t, double> argmax_with_margin(const std::vector<double>& values) {
  if (values.empty()) throw std::invalid_argument("argmax_with_margin: no candidates");
  auto key = [](double v) { return std::isnan(v) ? -kInf : v; };
  size_t best = 0;
  for (size_t i = 1; i < values.size(); ++i) {
    if (key(values[i]) > key(values[best])) best = i;  // strict: ties keep the earlier candidate
  }
  if (values.size() == 1) return {best, std::numeric_limits<double>::quiet_NaN()};
  double second = -kInf;
  for (size_t i = 0; i < values.size(); ++i) {
    if (i != best) second = std::max(second, key(values[i]));
  }
  const double top = key(values[best]);
  // ∞ − ∞ (two exact candidates) is a tie: margin 0
  return {best, top == second ? 0.0 : top - second};
}

std::vector<std::string> Report::disagreements() const {
  std::vector<std::string> out;
  for (const auto& l : layers) {
    if (!isolated || l.chosen == l.chosen_isolated) continue;
    out.push_back(l.name + " (" + l.chosen + " → " + l.chosen_isolated + ")");
  }
  return out;
}

void Report::write_csv(const std::string& path) const {
  std::string out =
      "layer,op_type,method,sqnr_in,sqnr_out,delta_sqnr,isolated_sqnr_in,isolated_sqnr_out,chosen,margin,"
      "chosen_isolated,margin_isolated\n";
  for (const auto& l : layers) {
    for (const auto& s : l.scores) {
      out += fmt::format("{},{},{},{},{},{},{},{},{},{},{},{}\n", l.name, models::op_type_key(l.type), s.method,
                         num(s.sqnr_in), num(s.sqnr_out), num(s.delta), num(s.iso_in), num(s.iso_out), l.chosen,
                         num(l.margin), l.chosen_isolated, num(l.margin_isolated));
    }
  }
  util::write_file_atomic(path, out);
}

void Report::write_json(const std::string& path) const {
  nlohmann::json j;
  j["preset"] = preset;
  j["bits"] = bits;
  j["mode"] = mode;
  j["batches"] = batches;
  j["images"] = images;
  j["calibration_passes"] = calibration_passes;
  j["measurement_passes"] = measurement_passes;
  j["seconds"] = seconds;
  j["isolated"] = isolated;
  j["layers"] = nlohmann::json::array();
  for (const auto& l : layers) {
    nlohmann::json jl;
    jl["layer"] = l.name;
    jl["op_type"] = models::op_type_key(l.type);
    jl["chosen"] = l.chosen;
    jl["margin"] = jnum(l.margin);
    jl["chosen_isolated"] = l.chosen_isolated;
    jl["margin_isolated"] = jnum(l.margin_isolated);
    nlohmann::json methods = nlohmann::json::object();
    for (const auto& s : l.scores) {
      methods[s.method] = {{"sqnr_in", jnum(s.sqnr_in)},       {"sqnr_out", jnum(s.sqnr_out)},
                           {"delta_sqnr", jnum(s.delta)},      {"isolated_sqnr_in", jnum(s.iso_in)},
                           {"isolated_sqnr_out", jnum(s.iso_out)}};
    }
    jl["methods"] = methods;
    j["layers"].push_back(jl);
  }
  j["plan"] = plan.to_yaml();
  j["disagreements"] = disagreements();
  util::write_file_atomic(path, j.dump(2) + "\n");
}

std::string Report::summary() const {
  std::string out = fmt::format("mixed plan for {} (W/A {}), {} mode, {} images in {} batches, {:.1f} s:\n", preset,
                                bits, mode, images, batches, seconds);
  for (auto type : {models::OpType::kSoftmax, models::OpType::kGelu, models::OpType::kLayerNorm}) {
    std::map<std::string, int64_t> count;
    int64_t total = 0;
    for (const auto& l : layers) {
      if (l.type != type) continue;
      ++count[mode == "isolated" ? l.chosen_isolated : l.chosen];
      ++total;
    }
    if (total == 0) continue;
    std::string line;
    for (const auto& m : models::plan_methods()) {
      if (count.count(m)) line += fmt::format("{}{} {}", line.empty() ? "" : ", ", m, count[m]);
    }
    out += fmt::format("  {:<9} ({:>3} layers): {}\n", models::op_type_key(type), total, line);
  }
  if (!isolated) return out + "the paper mode's scores only (analyze.isolated: true scores the isolated mode too)\n";
  const auto diff = disagreements();
  out += fmt::format("paper and isolated modes disagree on {} of {} layers", diff.size(), layers.size());
  for (size_t i = 0; i < diff.size(); ++i) out += (i == 0 ? ": " : ", ") + diff[i];
  out += "\n";
  return out;
}

}  // namespace analysis
}  // namespace mnq
