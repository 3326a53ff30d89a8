// One entry point for every model family: build a full-precision or quantized ViT / DeiT / Swin from a preset
// name, behind one small type (`Model`) that the analyzer, the trainer and the Python bindings share, so none of
// them needs to know whether a preset is a ViT or a Swin.
#pragma once

#include <torch/nn/module.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "csrc/models/plan.h"
#include "csrc/models/qvit.h"
#include "csrc/models/tap.h"

namespace mnq {
namespace models {

enum class Family { kViT, kSwin };

// Overrides applied to a preset: shapes (e.g. a timm preset trained on another number of classes) and the
// stochastic-depth rate of the last block (drop_path.h; training only, so evaluation is unaffected).
struct ModelOverrides {
  std::optional<int64_t> num_classes, img_size, in_chans;
  std::optional<double> drop_path;
};

// Every preset name, ViT/DeiT then Swin, each list sorted.
std::vector<std::string> preset_names();
// The family of a preset; throws std::invalid_argument listing the known presets otherwise.
Family preset_family(const std::string& preset);
// The mixable layers of a preset (after overrides) in forward order, with their op type.
std::vector<std::pair<std::string, OpType>> mixable_layers(const std::string& preset,
                                                           const ModelOverrides& overrides = {});

// A built model. `module` owns the parameters and buffers (train()/eval()/to()/named_parameters() and
// load_weights/save_weights work on it); `forward` maps images [B, C, H, W] (float) to logits [B, classes].
struct Model {
  std::string preset;
  Family family = Family::kViT;
  bool quantized = false;
  int64_t bits = 0;                              // W/A bits; 0 for full precision
  std::map<std::string, std::string> methods;    // resolved plan (quantized only): layer -> method
  ModelOverrides overrides;                      // what the preset was built with
  std::shared_ptr<torch::nn::Module> module;
  std::function<at::Tensor(const at::Tensor&)> forward;
  // Ends the PtfAct α search of every fqvit LayerNorm (after calibration, before QAT); no-op for FP models.
  std::function<void()> freeze_alpha = [] {};
  // Full precision only: calls the tap at every mixable layer of later forwards (an empty tap removes it). The
  // quantized models' layers take nn::LayerObserver instead (found by name in module->named_modules()).
  std::function<void(LayerTap)> set_tap = [](LayerTap) {
    throw std::logic_error("Model::set_tap: only full-precision models have a layer tap");
  };

  at::Tensor operator()(const at::Tensor& x) const { return forward(x); }
};

// Full-precision model with timm's parameter names.
Model create_fp(const std::string& preset, const ModelOverrides& overrides = {});
// Quantized model (SPEC §6) for `options.bits` and `options.plan`; throws naming the key on a bad plan.
Model create_quant(const std::string& preset, const QuantOptions& options, const ModelOverrides& overrides = {});

}  // namespace models
}  // namespace mnq
