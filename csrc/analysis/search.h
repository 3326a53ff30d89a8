// The plan search (`analyze.mode: searched`, `plan: searched`): a greedy local search over per-layer plans that
// scores every candidate by what the network's output actually loses, where the analyzer (SPEC §7) scores each
// layer alone by ΔSQNR and cannot see interactions between layers.
//
// Objective: KL(p_FP ‖ p_Q), the mean over held-out images of Σ_c p_FP(c)·(log p_FP(c) − log p_Q(c)), with p_FP the
// full-precision model's softmax and p_Q the post-training-quantized candidate's (calibrated, eval mode). Why KL to
// the FP logits rather than cross-entropy on the labels: (1) it measures exactly the damage quantization does (0
// for a perfect copy of the FP model), the quantity a plan decides, while cross-entropy adds the FP model's own
// errors, identical for every plan, and can reward quantization noise that happens to flip a wrong FP prediction;
// (2) the held-out images are training-split images the FP model was fitted on, where its labels' cross-entropy is
// optimistic, but its output distribution is still the reference QAT starts from; (3) it uses all classes'
// probabilities per image, so fewer images give a stable ranking (lower variance than a 0/1 or one-class signal).
//
// Held-out images: the training-split batches right after the calibration batches in the same shuffled
// calibration epoch (disjoint from the images that set the activation ranges).
//
// Search: evaluate the start plans — every uniform plan of the analyzer's methods, the paper (ΔSQNR) plan and the
// isolated plan — then, from the best of them, change one layer's method at a time (first improvement): layers in
// order of the analyzer's ΔSQNR margin (least certain first), each layer's alternatives in order of ΔSQNR; a change
// that lowers the KL is kept at once. Sweeps repeat until one changes nothing or `search_evaluations` candidate
// evaluations (start plans included) are spent. The result is the best plan evaluated, so it is never worse on the
// objective than any start plan.
//
// Cost and what is shared: the calibration and held-out batches are read once and kept (as the FP log-probabilities
// of the held-out images), and each distinct plan is calibrated and scored once (a cache keyed by the plan): an
// evaluation costs one calibration pass (calib_batches) plus one eval pass (search_holdout_batches) of the quantized
// model. A candidate needs its own calibration: the activation ranges downstream of the changed layer depend on it.
#pragma once

#include <string>
#include <vector>

#include "csrc/analysis/analyzer.h"
#include "csrc/analysis/report.h"

namespace mnq {
namespace analysis {

struct SearchStep {
  int64_t evaluation = 0;  // 1-based
  std::string kind;        // "start" (a start plan) or "move"
  std::string label;       // the start plan's name, or "layer: from → to"
  double score = 0;        // its KL (nats per image)
  bool accepted = false;   // a move kept (or the best start)
  double best = 0;         // the best score so far, after this evaluation
};

struct SearchResult {
  std::string objective = "kl_fp";  // mean KL(p_FP ‖ p_Q) over the held-out images, nats
  models::Plan plan;                // the best plan evaluated (every layer named)
  double score = 0;
  std::string start;                // the start plan the search began from
  std::vector<std::pair<std::string, double>> starts;  // every start plan's score
  std::vector<SearchStep> trajectory;                  // every evaluation in order
  int64_t evaluations = 0;                             // distinct plans calibrated and scored
  int64_t holdout_images = 0;
  double seconds = 0;

  void write_json(const std::string& path) const;  // atomically
  std::string summary() const;
};

// The per-layer plan of `method` wherever it can be used (every mixable layer named).
models::Plan uniform_layer_plan(const std::vector<std::pair<std::string, models::OpType>>& layers,
                                const std::string& method);

// `report`: the analyzer's report of the same fp, bits and calibration batches (its plans are start plans, its
// margins and ΔSQNR order the moves). `calib`: the calibration batches (the first config.calib_batches are used);
// `holdout`: the held-out images. Throws std::invalid_argument on an empty holdout, a report of another model or
// one without the isolated scores.
SearchResult search_plan(const models::Model& fp, int64_t bits, const AnalyzerConfig& config,
                         const BatchSource& calib, const BatchSource& holdout, const Report& report,
                         const models::ModelOverrides& overrides = {}, const ProgressCallback& progress = {});

}  // namespace analysis
}  // namespace mnq
