// The plan search; see search.h for the objective, the moves and the cost.
#include "csrc/analysis/search.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>

#include "csrc/analysis/buffer_cache.h"
#include "csrc/nn/layers.h"
#include "csrc/util/atomic_file.h"

namespace mnq {
namespace analysis {
namespace {

at::Device device_of(const models::Model& m) {
  for (const auto& p : m.module->parameters()) return p.device();
  return at::Device(at::kCPU);
}

std::string plan_key(const models::Plan& p) { return p.to_yaml(); }

// Batches read once and kept for the whole search (every candidate calibrates on the same tensors).
std::vector<at::Tensor> read_all(const BatchSource& source, int64_t n, const at::Device& device, const char* what) {
  std::vector<at::Tensor> out;
  for (int64_t i = 0; i < n; ++i) {
    const at::Tensor x = source.batch(i);
    TORCH_CHECK_VALUE(x.defined() && x.dim() == 4 && x.size(0) > 0, "search: ", what, " batch ", i,
                      " must be a non-empty float image batch [B, C, H, W]");
    out.push_back(x.to(device, at::kFloat));
  }
  return out;
}

struct Evaluator {
  const models::Model& fp;
  int64_t bits;
  const models::ModelOverrides& overrides;
  std::vector<at::Tensor> calib, holdout, fp_logp;  // fp_logp: log-softmax of the FP model per held-out batch
  std::map<std::string, double> cache;
  int64_t images = 0;

  // Mean KL(p_FP ‖ p_Q) over the held-out images, in nats (float64 sums).
  double operator()(const models::Plan& plan, const std::string& label) {
    const std::string key = plan_key(plan);
    if (auto it = cache.find(key); it != cache.end()) return it->second;
    const BatchSource source{int64_t(calib.size()), [this](int64_t i) { return calib[size_t(i)]; }};
    models::Model q = calibrated_model(fp, bits, plan, label, source, int64_t(calib.size()), overrides);
    at::NoGradGuard no_grad;
    double kl = 0;
    for (size_t i = 0; i < holdout.size(); ++i) {
      at::Tensor logq;
      try {
        logq = at::log_softmax(q.forward(holdout[i]).to(at::kDouble), -1);
      } catch (const c10::Error& e) {
        throw std::runtime_error("search: the " + label + " model failed on held-out batch " + std::to_string(i) +
                                 ": " + e.what_without_backtrace());
      }
      kl += (fp_logp[i].exp() * (fp_logp[i] - logq)).sum().item<double>();
    }
    const double score = std::isfinite(kl) ? kl / double(images) : std::numeric_limits<double>::infinity();
    cache[key] = score;
    return score;
  }
};

}  // namespace

models::Plan uniform_layer_plan(const std::vector<std::pair<std::string, models::OpType>>& layers,
                                const std::string& method) {
  models::Plan p;
  for (const auto& [name, type] : layers) p.set(name, method);
  return p;
}

SearchResult search_plan(const models::Model& fp, int64_t bits, const AnalyzerConfig& config,
                         const BatchSource& calib, const BatchSource& holdout, const Report& report,
                         const models::ModelOverrides& overrides, const ProgressCallback& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  config.validate("analyze");
  TORCH_CHECK_VALUE(!fp.quantized, "search: the model must be full precision");
  TORCH_CHECK_VALUE(holdout.num_batches > 0 && holdout.batch, "search: the held-out set has no batches");
  TORCH_CHECK_VALUE(calib.num_batches > 0 && calib.batch, "search: the calibration set has no batches");
  TORCH_CHECK_VALUE(report.bits == bits && report.preset == fp.preset, "search: the report is of ", report.preset,
                    " W", report.bits, ", not ", fp.preset, " W", bits);
  const models::ModelOverrides& shape =
      (overrides.num_classes || overrides.img_size || overrides.in_chans) ? overrides : fp.overrides;
  const auto layers = models::mixable_layers(fp.preset, shape);
  TORCH_CHECK_VALUE(layers.size() == report.layers.size(), "search: the report has ", report.layers.size(),
                    " layers, the model ", layers.size());
  TORCH_CHECK_VALUE(report.isolated, "search: the report has no isolated scores (the isolated plan is a start plan): "
                    "analyze with isolated true (Python: mnq.analyze(..., isolated=True))");
  const at::Device device = device_of(fp);
  at::NoGradGuard no_grad;
  CpuBufferCacheScope reuse_buffers;  // every candidate's calibration and scoring reuse the same buffers
  nn::FrozenWeightsScope frozen;      // no weight changes: each layer quantizes its weight once per model
  fp.module->eval();

  Evaluator eval{fp, bits, shape, {}, {}, {}, {}, 0};
  eval.calib = read_all(calib, std::min(config.calib_batches, calib.num_batches), device, "calibration");
  eval.holdout = read_all(holdout, holdout.num_batches, device, "held-out");
  for (const at::Tensor& x : eval.holdout) {
    eval.fp_logp.push_back(at::log_softmax(fp.forward(x).to(at::kDouble), -1));
    eval.images += x.size(0);
  }
  const int64_t budget = config.search_evaluations;
  const ProgressCallback show = with_progress_line(config.progress, progress);
  PhaseProgress phase("search", budget, show);
  SearchResult r;
  r.holdout_images = eval.images;
  double best = std::numeric_limits<double>::infinity();
  // One evaluation: scored (cached plans cost nothing and are not counted), recorded in the trajectory.
  auto evaluate = [&](const models::Plan& plan, const std::string& kind, const std::string& label) {
    const bool cached = eval.cache.count(plan_key(plan)) > 0;
    const double score = eval(plan, kind == "start" ? "'" + label + "'" : "candidate (" + label + ")");
    if (!cached) {
      ++r.evaluations;
      phase.step(eval.images);
    }
    const bool better = score < best;
    if (better) {
      best = score;
      r.plan = plan;
      r.score = score;
    }
    r.trajectory.push_back({int64_t(r.trajectory.size()) + 1, kind, label, score, better, best});
    return better;
  };

  // Start plans: each uniform method, then the analyzer's two rankings.
  std::vector<std::pair<std::string, models::Plan>> starts;
  for (const std::string& m : config.methods()) starts.emplace_back("uniform " + m, uniform_layer_plan(layers, m));
  starts.emplace_back("paper (ΔSQNR)", report.plan_paper);
  starts.emplace_back("isolated", report.plan_isolated);
  for (const auto& [name, plan] : starts) {
    if (r.evaluations >= budget && !r.trajectory.empty()) break;
    if (evaluate(plan, "start", name)) r.start = name;
    r.starts.emplace_back(name, eval.cache.at(plan_key(plan)));
  }

  // Moves: layers by the analyzer's margin (smallest first: where ΔSQNR was least sure), alternatives by ΔSQNR.
  std::vector<size_t> order;
  for (size_t l = 0; l < report.layers.size(); ++l) {
    if (report.layers[l].scores.size() > 1) order.push_back(l);
  }
  std::stable_sort(order.begin(), order.end(), [&](size_t i, size_t j) {
    const double a = report.layers[i].margin, b = report.layers[j].margin;
    return (std::isnan(a) ? INFINITY : a) < (std::isnan(b) ? INFINITY : b);
  });
  bool improved = true;
  while (improved && r.evaluations < budget) {
    improved = false;
    for (const size_t l : order) {
      const LayerReport& layer = report.layers[l];
      std::vector<MethodScores> alternatives = layer.scores;
      std::stable_sort(alternatives.begin(), alternatives.end(), [](const MethodScores& a, const MethodScores& b) {
        return (std::isnan(a.delta) ? -INFINITY : a.delta) > (std::isnan(b.delta) ? -INFINITY : b.delta);
      });
      const std::string current = r.plan.method_for(layer.name);
      for (const MethodScores& alt : alternatives) {
        if (alt.method == current || r.evaluations >= budget) continue;
        models::Plan candidate = r.plan;
        candidate.set(layer.name, alt.method);
        if (eval.cache.count(plan_key(candidate))) continue;  // seen: a move back, or an earlier start
        if (evaluate(candidate, "move", fmt::format("{}: {} → {}", layer.name, current, alt.method))) {
          improved = true;
          break;  // first improvement: on to the next layer from the new plan
        }
      }
    }
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

void SearchResult::write_json(const std::string& path) const {
  nlohmann::json steps = nlohmann::json::array(), start_list = nlohmann::json::array();
  auto num = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json("inf"); };
  for (const SearchStep& s : trajectory) {
    steps.push_back({{"evaluation", s.evaluation},
                     {"kind", s.kind},
                     {"label", s.label},
                     {"score", num(s.score)},
                     {"accepted", s.accepted},
                     {"best", num(s.best)}});
  }
  for (const auto& [name, score] : starts) start_list.push_back({{"plan", name}, {"score", num(score)}});
  const nlohmann::json j = {{"objective", objective},
                            {"score", num(score)},
                            {"start", start},
                            {"starts", std::move(start_list)},
                            {"evaluations", evaluations},
                            {"holdout_images", holdout_images},
                            {"seconds", seconds},
                            {"plan", plan.entries()},
                            {"trajectory", std::move(steps)}};
  util::write_file_atomic(path, j.dump(2) + "\n");
}

std::string SearchResult::summary() const {
  std::string s = fmt::format("plan search ({}, {} held-out images): {} evaluations in {:.1f} s; best {:.5f}", objective,
                              holdout_images, evaluations, seconds, score);
  for (const auto& [name, score] : starts) s += fmt::format("; {} {:.5f}", name, score);
  int64_t moves = 0;
  for (const SearchStep& st : trajectory) moves += st.kind == "move" && st.accepted;
  return s + fmt::format("; {} move(s) kept from {}\n", moves, start);
}

}  // namespace analysis
}  // namespace mnq
