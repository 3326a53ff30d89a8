// The sensitivity analyzer; see analyzer.h for the method, the cost and the memory bound.
#include "csrc/analysis/analyzer.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/nn/module.h>

#include <algorithm>
#include <chrono>
#include <limits>
#include <map>
#include <memory>
#include <stdexcept>

#include "csrc/analysis/buffer_cache.h"
#include "csrc/analysis/grid.h"
#include "csrc/analysis/sqnr.h"
#include "csrc/dist/dist.h"
#include "csrc/models/calibrate.h"
#include "csrc/models/device.h"
#include "csrc/models/weights.h"
#include "csrc/nn/layers.h"
#include "csrc/nn/nonlinear.h"

namespace mnq {
namespace analysis {
namespace {

// The four streams of one (layer, method): paper-mode input and output, isolated-mode input and output.
struct Scores {
  SqnrAccumulator in, out, iso_in, iso_out;
};

// The full-precision layer tensors of the current batch (the forward's own tensors, not copies), and their
// per-image norms once a score needed them (every method's four scores share them).
struct FpLayer {
  at::Tensor in, out;
  at::Tensor in_norm, out_norm;
};

bool set_observer(torch::nn::Module& m, nn::LayerObserver observer) {
  if (auto* s = m.as<nn::IntSoftmaxImpl>()) {
    s->set_observer(std::move(observer));
  } else if (auto* g = m.as<nn::IntGELUImpl>()) {
    g->set_observer(std::move(observer));
  } else if (auto* n = m.as<nn::IntLayerNormImpl>()) {
    n->set_observer(std::move(observer));
  } else {
    return false;
  }
  return true;
}

const std::vector<std::string>& candidates(const AnalyzerConfig& c, models::OpType type) {
  switch (type) {
    case models::OpType::kSoftmax: return c.softmax;
    case models::OpType::kGelu: return c.gelu;
    default: return c.layernorm;
  }
}

bool has_overrides(const models::ModelOverrides& o) { return o.num_classes || o.img_size || o.in_chans; }

bool contains(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

// Removes the full-precision tap and every observer when the analysis ends (also on an error), and restores the
// full-precision model's training flag.
class Cleanup {
 public:
  Cleanup(const models::Model& fp, std::vector<torch::nn::Module*>& observed)
      : fp_(fp), observed_(observed), was_training_(fp.module->is_training()) {}
  ~Cleanup() {
    fp_.set_tap({});
    for (auto* m : observed_) set_observer(*m, {});
    fp_.module->train(was_training_);
  }

 private:
  const models::Model& fp_;
  std::vector<torch::nn::Module*>& observed_;
  bool was_training_;
};

at::Tensor load_batch(const BatchSource& calib, int64_t i, const at::Device& device) {
  const at::Tensor x = calib.batch(i);
  TORCH_CHECK_VALUE(x.defined() && x.dim() == 4 && x.size(0) > 0, "analyze: calibration batch ", i,
                    " must be a non-empty float image batch [B, C, H, W], got ",
                    x.defined() ? x.sizes() : at::IntArrayRef{});
  return x.to(device, at::kFloat, /*non_blocking=*/true);  // a GPU need not wait for the copy (models/device.h)
}

}  // namespace

models::Model calibrated_model(const models::Model& fp, int64_t bits, const models::Plan& plan,
                               const std::string& label, const BatchSource& calib, int64_t batches,
                               const models::ModelOverrides& overrides, const ProgressCallback& progress) {
  models::QuantOptions options;
  options.bits = bits;
  options.plan = plan;
  // The analyzer compares deterministic forwards: no stochastic depth in its calibration (train mode).
  models::ModelOverrides o = has_overrides(overrides) ? overrides : fp.overrides;
  o.drop_path.reset();
  models::Model q = models::create_quant(fp.preset, options, o);
  models::copy_parameters(*fp.module, *q.module);
  q.module->to(models::model_device(fp));
  // As mnq.calibrate: PtfAct α searches restarted, train mode over the first `batches` batches (ranges track
  // their EMA, α chosen), α frozen, eval mode. Labelled "calibrate ivit" for a uniform model, else "calibrate
  // mixed".
  std::string method = q.methods.empty() ? "" : q.methods.begin()->second;
  for (const auto& [layer, m] : q.methods) {
    if (m != method) method = "mixed";
  }
  PhaseProgress phase("calibrate " + method, batches, progress);
  const at::Device device = models::model_device(q);
  models::CalibrateOptions how;
  how.reset_alpha = true;
  how.eval_after = true;
  how.on_batch = [&phase](int64_t images) { phase.step(images); };
  nn::FrozenWeightsScope frozen;  // calibration does not change the weights
  try {
    TORCH_CHECK_VALUE(batches > 0 && batches <= calib.num_batches, "calibrate: ", batches,
                      " batches requested, the calibration set has ", calib.num_batches);
    models::calibrate(q, batches, [&](int64_t i) { return load_batch(calib, i, device); }, how);
  } catch (const c10::Error& e) {
    // e.g. an op rejecting a degenerate activation scale: say which model it was, without the C++ backtrace
    throw std::runtime_error("calibrating the " + label + " model failed: " + e.what_without_backtrace());
  }
  return q;
}

models::Model uniform_model(const models::Model& fp, int64_t bits, const std::string& method,
                            const BatchSource& calib, int64_t batches, const models::ModelOverrides& overrides,
                            const ProgressCallback& progress) {
  return calibrated_model(fp, bits, models::Plan::uniform(method), "uniform '" + method + "'", calib, batches,
                          overrides, progress);
}

namespace {

// One call of analyze(): the mixable layers, the candidate methods, their calibrated uniform models, the
// full-precision layer tensors of the current batch and the scores.
struct Analysis {
  std::vector<std::pair<std::string, models::OpType>> layers;  // in forward order
  std::map<std::string, size_t> index;                         // layer name → position in `layers`
  std::vector<std::string> methods;                            // config.methods()
  std::vector<models::Model> qs;                               // qs[k]: the uniform model of methods[k]
  // acc[l][k]: the scores of layer l in the uniform model of methods[k], where that method is a candidate.
  std::vector<std::vector<std::unique_ptr<Scores>>> acc;
  std::vector<FpLayer> fp_layers;  // the full-precision tensors of the current batch, per layer
  int64_t batch_images = 0;        // images of the current batch
};

// An empty score per (layer, method) where the method is a candidate of the layer's op type.
void make_scores(Analysis& a, const AnalyzerConfig& config) {
  a.acc.resize(a.layers.size());
  for (size_t l = 0; l < a.layers.size(); ++l) {
    a.acc[l].resize(a.methods.size());
    for (size_t k = 0; k < a.methods.size(); ++k) {
      if (contains(candidates(config, a.layers[l].second), a.methods[k])) a.acc[l][k] = std::make_unique<Scores>();
    }
  }
  a.fp_layers.resize(a.layers.size());
}

// Every mixable layer of every uniform model scores its calls against the full-precision layer's tensors of the
// same batch (paper mode on its own input, isolated mode on the full-precision input put on its grid); the
// observed modules are appended to `observed` (removed by Cleanup).
void observe(Analysis& a, std::vector<torch::nn::Module*>& observed, bool isolated) {
  for (size_t k = 0; k < a.qs.size(); ++k) {
    std::vector<bool> found(a.layers.size(), false);
    for (const auto& item : a.qs[k].module->named_modules()) {
      auto it = a.index.find(item.key());
      if (it == a.index.end()) continue;  // not a mixable layer (e.g. Swin's patch_embed.norm)
      const size_t l = it->second;
      found[l] = true;
      if (!a.acc[l][k]) continue;  // methods[k] is not a candidate of this layer's op type
      Scores* s = a.acc[l][k].get();
      const std::string& name = a.layers[l].first;
      const bool ok = set_observer(*item.value(), [&a, s, l, name, isolated](const nn::LayerCall& c) {
        FpLayer& f = a.fp_layers[l];
        TORCH_CHECK(f.in.defined(), "analyze: the full-precision model did not report layer '", name, "'");
        const int64_t n = a.batch_images;
        SqnrAccumulator::check(f.in, c.x, n);
        SqnrAccumulator::check(f.out, c.y, n);
        // Each full-precision tensor is read once per call: its norms against the paper-mode and the isolated
        // tensors (and its own norms, in the first call of the batch) in one pass. Without the isolated scores
        // (xi, yi undefined) the same calls compute the paper-mode streams only.
        at::Tensor xi, yi;
        if (isolated && c.scale.defined()) {
          // clamped to the code range of the whole batch: on data-parallel ranks, each holding a shard, all-reduced
          CodeRange range = code_range(c.scale, c.x);
          dist::allreduce_min_max(range.lo, range.hi);  // no-op on one process
          xi = on_grid(f.in, c.scale, c.x, range);
        } else if (isolated) {
          xi = on_grid(f.in, c.scale, c.x);  // a float input: the full-precision input itself
        }
        FusedNorms in = image_norms_fused(f.in, c.x, xi, !f.in_norm.defined(), n);
        if (!f.in_norm.defined()) f.in_norm = std::move(in.signal);
        if (isolated) yi = c.rerun(xi).first;
        FusedNorms out = image_norms_fused(f.out, c.y, yi, !f.out_norm.defined(), n);
        if (!f.out_norm.defined()) f.out_norm = std::move(out.signal);
        s->in.add_norms(f.in_norm, in.error[0], n);
        s->out.add_norms(f.out_norm, out.error[0], n);
        if (isolated) {
          s->iso_in.add_norms(f.in_norm, in.error[1], n);
          s->iso_out.add_norms(f.out_norm, out.error[1], n);
        }
      });
      TORCH_CHECK(ok, "analyze: module '", name, "' of the quantized model is not an integer non-linear layer");
      observed.push_back(item.value().get());
    }
    for (size_t l = 0; l < a.layers.size(); ++l) {
      TORCH_CHECK(found[l], "analyze: the uniform ", a.methods[k], " model has no module named '", a.layers[l].first,
                  "'");
    }
  }
}

// Measurement: per batch one full-precision forward (its layer tensors kept for this batch only), then one
// forward of each uniform model, scored by the observers as it runs. Returns the images measured (all ranks').
int64_t measure(Analysis& a, const models::Model& fp, const BatchSource& calib, int64_t n, const at::Device& device,
                bool isolated, const ProgressCallback& progress) {
  PhaseProgress phase("measure", n, progress);
  int64_t images = 0;
  for (int64_t i = 0; i < n; ++i) {
    const at::Tensor x = load_batch(calib, i, device);
    a.batch_images = x.size(0);
    for (auto& f : a.fp_layers) f = {};
    fp.forward(x);
    for (size_t k = 0; k < a.qs.size(); ++k) {
      try {
        a.qs[k].forward(x);
      } catch (const c10::Error& e) {
        throw std::runtime_error("analyze: the uniform '" + a.methods[k] + "' model failed on calibration batch " +
                                 std::to_string(i) + ": " + e.what_without_backtrace());
      }
    }
    images += a.batch_images;
    phase.step(a.batch_images);
  }
  for (auto& f : a.fp_layers) f = {};
  // Data-parallel: each rank measured its shard of every batch (the calibrations were already global, their
  // observers all-reduce); the scores become the global batches' on every rank (no-op on one process).
  std::vector<SqnrAccumulator*> all;
  for (auto& row : a.acc) {
    for (auto& s : row) {
      if (s) all.insert(all.end(), {&s->in, &s->out});
      if (s && isolated) all.insert(all.end(), {&s->iso_in, &s->iso_out});
    }
  }
  return allreduce_accumulators(all, images);
}

// The report of the scores: per layer each candidate's SQNRs and ΔSQNR, the best method of each mode and its
// margin, and the plans.
Report make_report(const Analysis& a, const models::Model& fp, int64_t bits, const AnalyzerConfig& config, int64_t n,
                   int64_t images, bool isolated) {
  Report r;
  r.preset = fp.preset;
  r.bits = bits;
  r.mode = config.mode;
  r.isolated = isolated;
  r.batches = n;
  r.images = images;
  r.calibration_passes = static_cast<int64_t>(a.qs.size());
  r.measurement_passes = static_cast<int64_t>(a.qs.size()) + 1;
  for (size_t l = 0; l < a.layers.size(); ++l) {
    LayerReport lr;
    lr.name = a.layers[l].first;
    lr.type = a.layers[l].second;
    std::vector<double> delta, iso;
    for (size_t k = 0; k < a.methods.size(); ++k) {
      if (!a.acc[l][k]) continue;
      const Scores& s = *a.acc[l][k];
      TORCH_CHECK(s.in.images() == images, "analyze: layer '", lr.name, "' of the uniform ", a.methods[k],
                  " model ran on ", s.in.images(), " of ", images, " images");
      MethodScores ms;
      ms.method = a.methods[k];
      ms.sqnr_in = s.in.db();
      ms.sqnr_out = s.out.db();
      ms.delta = delta_sqnr(ms.sqnr_in, ms.sqnr_out);
      const double nan = std::numeric_limits<double>::quiet_NaN();
      ms.iso_in = isolated ? s.iso_in.db() : nan;
      ms.iso_out = isolated ? s.iso_out.db() : nan;
      delta.push_back(ms.delta);
      iso.push_back(ms.iso_out);
      lr.scores.push_back(ms);
    }
    const auto [best, margin] = argmax_with_margin(delta);
    lr.chosen = lr.scores[best].method;
    lr.margin = margin;
    r.plan_paper.set(lr.name, lr.chosen);
    if (isolated) {
      const auto [best_iso, margin_iso] = argmax_with_margin(iso);
      lr.chosen_isolated = lr.scores[best_iso].method;
      lr.margin_isolated = margin_iso;
      r.plan_isolated.set(lr.name, lr.chosen_isolated);
    } else {
      lr.margin_isolated = std::numeric_limits<double>::quiet_NaN();
    }
    r.layers.push_back(std::move(lr));
  }
  r.plan = config.mode == "isolated" ? r.plan_isolated : r.plan_paper;  // searched: search.h writes the plan
  return r;
}

}  // namespace

Report analyze(const models::Model& fp, int64_t bits, const AnalyzerConfig& config, const BatchSource& calib,
               const models::ModelOverrides& overrides, const ProgressCallback& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  config.validate("analyze");
  TORCH_CHECK_VALUE(!fp.quantized, "analyze: the model must be full precision (models::create_fp); '", fp.preset,
                    "' is quantized");
  TORCH_CHECK_VALUE(bits >= 2 && bits <= 16, "analyze: bits must be in [2, 16], got ", bits);
  TORCH_CHECK_VALUE(calib.num_batches > 0 && calib.batch, "analyze: the calibration set has no batches");
  models::pin_full_fp32();  // the plan must not depend on the GPU (TF32 GEMMs/convs): see models/device.h
  const int64_t n = std::min(config.calib_batches, calib.num_batches);
  const ProgressCallback report_progress = with_progress_line(config.progress, progress);
  at::NoGradGuard no_grad;
  CpuBufferCacheScope reuse_buffers;  // the same activation buffers batch after batch, without page faults
  nn::FrozenWeightsScope frozen;      // every model's weights are fixed: each layer quantizes its weight once
  const at::Device device = models::model_device(fp);
  const models::ModelOverrides& shape = has_overrides(overrides) ? overrides : fp.overrides;
  Analysis a;
  a.layers = models::mixable_layers(fp.preset, shape);
  for (size_t l = 0; l < a.layers.size(); ++l) a.index[a.layers[l].first] = l;
  a.methods = config.methods();

  // Calibration: one pass over the calibration set per uniform model.
  for (const auto& m : a.methods) a.qs.push_back(uniform_model(fp, bits, m, calib, n, shape, report_progress));
  make_scores(a, config);

  std::vector<torch::nn::Module*> observed;
  Cleanup cleanup(fp, observed);
  fp.module->eval();
  fp.set_tap([&a](const std::string& name, const at::Tensor& in, const at::Tensor& out) {
    auto it = a.index.find(name);
    if (it != a.index.end()) a.fp_layers[it->second] = FpLayer{in, out, {}, {}};
  });
  const bool isolated = config.scores_isolated();
  observe(a, observed, isolated);
  const int64_t images = measure(a, fp, calib, n, device, isolated, report_progress);

  Report r = make_report(a, fp, bits, config, n, images, isolated);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace analysis
}  // namespace mnq
