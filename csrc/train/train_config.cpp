// The trainer's configuration sections; see train_config.h.
#include "csrc/train/train_config.h"

#include <fmt/format.h>

#include <cmath>

namespace mnq {
namespace train {
namespace {

void require(bool ok, const std::string& path, const char* key, const std::string& what) {
  if (!ok) throw config::Error(config::detail::join(path, key), what);
}

// A day: longer than any collective should ever wait (a checkpoint write, an evaluation on rank 0 alone), and
// below c10d's millisecond counters' limits.
constexpr double kMaxTimeoutS = 86400;

}  // namespace

void TrainConfig::visit(config::Visitor& v) {
  v.field("epochs", epochs, "training epochs; the cosine schedule spans them (pretrain: 0 = no pretraining)");
  v.field("time_budget_s", time_budget_s,
          "stop once this many seconds of training are spent, checkpointed, even mid-epoch (0: no limit)");
  v.field("lr", lr, "AdamW peak learning rate");
  v.field("lr_end_div", lr_end_div, "cosine decay ends at lr / lr_end_div");
  v.field("warmup_steps", warmup_steps, "linear warm-up steps before the cosine (0: none)");
  v.field("weight_decay", weight_decay, "AdamW weight decay (not applied to biases, norms, embeddings, tokens)");
  v.field("eps", eps, "AdamW epsilon");
  v.field("label_smoothing", label_smoothing, "cross-entropy label smoothing (folded into the mixed targets)");
  v.field("mixup", mixup, "Mixup alpha: λ ~ Beta(α, α) per batch, batch mixed with itself reversed (0: off)");
  v.field("cutmix", cutmix, "CutMix alpha (0: off); with mixup > 0 too, one of the two per batch");
  v.field("mixup_prob", mixup_prob, "probability of mixing a batch (Mixup or CutMix), 0..1");
  v.field("mixup_switch_prob", mixup_switch_prob, "probability of CutMix rather than Mixup when both are on, 0..1");
}

void TrainConfig::validate(const std::string& path) const {
  require(epochs >= 0, path, "epochs", "must be >= 0, got " + std::to_string(epochs));
  require(time_budget_s >= 0, path, "time_budget_s", "must be >= 0 (0: no limit)");
  require(lr > 0, path, "lr", "must be positive");
  require(lr_end_div >= 1, path, "lr_end_div", "must be >= 1");
  require(warmup_steps >= 0, path, "warmup_steps", "must be >= 0");
  require(weight_decay >= 0, path, "weight_decay", "must be >= 0");
  require(eps > 0, path, "eps", "must be positive");
  require(label_smoothing >= 0 && label_smoothing < 1, path, "label_smoothing", "must be in [0, 1)");
  require(mixup >= 0 && std::isfinite(mixup), path, "mixup", "must be >= 0 (0: off)");
  require(cutmix >= 0 && std::isfinite(cutmix), path, "cutmix", "must be >= 0 (0: off)");
  require(mixup_prob >= 0 && mixup_prob <= 1, path, "mixup_prob", "must be in [0, 1]");
  require(mixup_switch_prob >= 0 && mixup_switch_prob <= 1, path, "mixup_switch_prob", "must be in [0, 1]");
}

void DistConfig::visit(config::Visitor& v) {
  v.field("timeout_s", timeout_s,
          "data-parallel jobs (torchrun): a collective waiting longer than this for a rank fails, naming the ranks "
          "that did not answer, and the job exits non-zero");
}

void DistConfig::validate(const std::string& path) const {
  if (!(timeout_s >= 1 && timeout_s <= kMaxTimeoutS)) {
    throw config::Error(config::detail::join(path, "timeout_s"),
                        fmt::format("must be in 1..{} seconds, got {}", kMaxTimeoutS, timeout_s));
  }
}

}  // namespace train
}  // namespace mnq
