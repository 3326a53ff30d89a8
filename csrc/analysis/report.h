// What the analyzer measured and chose: per mixable layer and candidate method the paper-mode SQNR_in, SQNR_out
// and ΔSQNR, the isolated-mode scores, the chosen method of both modes with its margin to the runner-up, and the
// plan. Written as CSV (one row per layer and method), JSON (one object per layer) and a text summary.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "csrc/models/plan.h"

namespace mnq {
namespace analysis {

struct MethodScores {
  std::string method;
  // Paper mode: the uniform model of `method` beside the full-precision model (dB; +∞ = exact).
  double sqnr_in = 0, sqnr_out = 0, delta = 0;
  // Isolated mode: the full-precision input on the grid of the quantized layer's input (iso_in: its SQNR), the
  // layer's output on it (iso_out: its SQNR against the float op). The isolated ranking uses iso_out.
  double iso_in = 0, iso_out = 0;
};

struct LayerReport {
  std::string name;
  models::OpType type = models::OpType::kSoftmax;
  std::vector<MethodScores> scores;  // the candidates of its op type, in tie order (ivit, ibert, fqvit)
  std::string chosen;                // paper mode: argmax ΔSQNR
  double margin = 0;                 // its ΔSQNR minus the runner-up's (NaN with a single candidate)
  std::string chosen_isolated;       // isolated mode: argmax iso_out
  double margin_isolated = 0;
};

// The winner of `values` (one per candidate, in tie order): the first maximum, NaN counting as −∞; and the
// margin to the runner-up (NaN with a single candidate, +∞ when the winner is +∞ and the runner-up is not).
std::pair<size_t, double> argmax_with_margin(const std::vector<double>& values);

struct Report {
  std::string preset;
  int64_t bits = 0;
  std::string mode;  // paper | isolated: which ranking wrote `plan`
  // Whether the isolated mode was scored (AnalyzerConfig::isolated); when not, every iso_in / iso_out and
  // margin_isolated is NaN, chosen_isolated is empty, plan_isolated names no layer and disagreements() is empty.
  bool isolated = true;
  int64_t batches = 0, images = 0;
  int64_t calibration_passes = 0;  // passes over the calibration set to calibrate (one per uniform model)
  int64_t measurement_passes = 0;  // passes to measure (uniform models + 1 full-precision)
  double seconds = 0;              // wall time of analyze()
  std::vector<LayerReport> layers;  // model order
  models::Plan plan;                // the chosen method per mixable layer (every layer named), per `mode`
  models::Plan plan_paper, plan_isolated;

  // The layers where the two modes choose differently, as "name (paper → isolated)".
  std::vector<std::string> disagreements() const;
  void write_csv(const std::string& path) const;   // atomically (util/atomic_file.h)
  void write_json(const std::string& path) const;  // atomically; ±∞ and NaN as the strings "inf", "-inf", "nan"
  std::string summary() const;                     // counts per op type and method, as the paper reports them
};

}  // namespace analysis
}  // namespace mnq
