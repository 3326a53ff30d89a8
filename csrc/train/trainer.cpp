#include "csrc/train/trainer.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "csrc/data/random.h"
#include "csrc/models/device.h"
#include "csrc/models/weights.h"
#include "csrc/train/data_parallel.h"
#include "csrc/train/mixup.h"
#include "csrc/util/log.h"

namespace mnq {
namespace train {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// timm's rule: no weight decay on biases, norm weights (1-D) and the position embedding / class tokens.
torch::optim::AdamW make_optimizer(const torch::nn::Module& module, const TrainConfig& cfg) {
  std::vector<at::Tensor> decay, no_decay;
  for (const auto& p : module.named_parameters()) {
    const std::string& n = p.key();
    const bool skip = p.value().dim() <= 1 || n.find("pos_embed") != std::string::npos ||
                      n.find("cls_token") != std::string::npos || n.find("dist_token") != std::string::npos ||
                      n.find("relative_position_bias_table") != std::string::npos;
    (skip ? no_decay : decay).push_back(p.value());
  }
  auto opts = torch::optim::AdamWOptions(cfg.lr).eps(cfg.eps).weight_decay(cfg.weight_decay);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(opts));
  auto nd = opts;
  nd.weight_decay(0.0);
  groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(nd));
  return torch::optim::AdamW(groups, opts);
}

// The loss and top-1 hits of the steps not yet read back, on the model's device (see trainer.h).
class PendingSteps {
 public:
  struct Step {
    double loss;      // the batch's mean loss (its float value, exactly)
    int64_t correct;  // top-1 hits
    int64_t images, batch;
  };

  // loss: 0-d float, correct: 0-d int64, both on the device; queued, not read.
  void add(const at::Tensor& loss, const at::Tensor& correct, int64_t images, int64_t batch) {
    // float → double and an int64 count < 2^53 → double are exact
    values_.push_back(at::stack({loss.detach().to(at::kDouble), correct.to(at::kDouble)}));
    meta_.push_back({0, 0, images, batch});
  }
  // Data-parallel: every kReadSteps steps only, the same steps on every rank (the read-back is a collective).
  bool due() const {
    return int64_t(meta_.size()) >= kReadSteps ||
           (!dp::active() && !meta_.empty() &&
            std::chrono::duration<double>(Clock::now() - last_read_).count() >= kReadSeconds);
  }
  // Reads every pending step back in one copy, in order.
  std::vector<Step> take() {
    std::vector<Step> out = std::move(meta_);
    meta_.clear();
    last_read_ = Clock::now();
    if (out.empty()) return out;
    const at::Tensor all = at::stack(values_);  // [steps, 2]
    dp::reduce_steps(all);                       // data-parallel: the global batches' loss and hits
    const at::Tensor v = all.to(at::kCPU).contiguous();
    values_.clear();
    const double* p = v.data_ptr<double>();
    for (size_t i = 0; i < out.size(); ++i) {
      out[i].loss = p[2 * i];
      out[i].correct = int64_t(p[2 * i + 1]);
    }
    return out;
  }

 private:
  std::vector<at::Tensor> values_;  // [2] float64 per step: loss, correct
  std::vector<Step> meta_;
  Clock::time_point last_read_ = Clock::now();
};

// Whether every parameter is finite: one flag computed on the device and copied back (not a scalar read).
bool weights_finite(const torch::nn::Module& module) {
  std::vector<at::Tensor> flags;
  for (const auto& p : module.parameters()) flags.push_back(at::isfinite(p.detach()).all());
  if (flags.empty()) return true;
  const at::Tensor all = at::stack(flags).all().to(at::kCPU);
  return *all.data_ptr<bool>();
}

// The L2 norm of all parameters (0-d float64 on the model's device, not read back; overflow-free in float64).
at::Tensor weights_norm(const torch::nn::Module& module) {
  std::vector<at::Tensor> norms;
  for (const auto& p : module.parameters()) {
    norms.push_back(at::linalg_vector_norm(p.detach(), 2, c10::nullopt, false, at::kDouble));
  }
  return norms.empty() ? at::zeros({}, at::kDouble) : at::linalg_vector_norm(at::stack(norms), 2);
}

// The message of an exception without a C++ backtrace (c10::Error::what() appends one).
std::string message_of(const std::exception& e) {
  if (const auto* c = dynamic_cast<const c10::Error*>(&e)) return c->what_without_backtrace();
  return e.what();
}

void set_lr(torch::optim::AdamW& opt, double lr) {
  for (auto& g : opt.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
}

}  // namespace

uint64_t stage_seed(int64_t seed, const std::string& stage) {
  if (stage == "fp") return uint64_t(seed);
  uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a of the name, then mixed with the seed
  for (const unsigned char c : stage) h = (h ^ c) * 0x100000001b3ULL;
  return data::rnd::splitmix64(data::rnd::splitmix64(uint64_t(seed)) ^ h);
}

double divergence_bound(int64_t num_classes) {
  return kExplodeFactor * std::log(double(std::max<int64_t>(num_classes, 2)));
}

double learning_rate(const TrainConfig& cfg, int64_t step, int64_t total) {
  if (step < cfg.warmup_steps) return cfg.lr * double(step + 1) / double(cfg.warmup_steps);
  const double end = cfg.lr / cfg.lr_end_div;
  const int64_t span = total - cfg.warmup_steps;
  const double t = span > 0 ? std::min(1.0, double(step - cfg.warmup_steps) / double(span)) : 1.0;
  return end + 0.5 * (cfg.lr - end) * (1.0 + std::cos(M_PI * t));
}

namespace {

// One call of fit(): its steps (resume, the training pass, evaluation and checkpoint) share the stage's model,
// loaders, optimizer and state.
class StageRun {
 public:
  StageRun(const models::Model& model, const TrainConfig& cfg, const data::Loader& train, const data::Loader& val,
           const StageOptions& options)
      : model_(model),
        cfg_(cfg),
        train_(train),
        val_(val),
        options_(options),
        ckpt_(options.dir + "/checkpoint.safetensors"),
        opt_(make_optimizer(*model.module, cfg)) {}

  StageResult run() {
    st_.trained_for = options_.trained_for;
    per_epoch_ = train_.num_batches();
    if (per_epoch_ == 0) {
      throw std::runtime_error(options_.name + ": the training set has fewer images than one batch");
    }
    bs_ = train_.options().batch_size;
    if (options_.resume && fs::exists(ckpt_)) resume();
    if (st_.finished) {
      // A kill between the last checkpoint and the final weights file leaves only the former.
      if (!fs::exists(options_.dir + "/model.safetensors")) {
        models::save_weights(*model_.module, options_.dir + "/model.safetensors");
      }
      result_.final = last_eval();
      return result_;
    }
    total_steps_ = cfg_.epochs * per_epoch_;
    explode_ = divergence_bound(train_.dataset().num_classes());
    while (st_.epoch < cfg_.epochs && !st_.finished) {
      if (options_.stop_after_epochs >= 0 && result_.session_epochs >= options_.stop_after_epochs) {
        log::info("{}: stopping after {} epoch(s) this session (continue with --resume)", options_.name,
                  result_.session_epochs);
        result_.final = last_eval();
        return result_;
      }
      Pass pass = train_pass();
      end_pass(pass);
    }
    models::save_weights(*model_.module, options_.dir + "/model.safetensors");
    result_.final = last_eval();
    return result_;
  }

 private:
  // One pass over (the rest of) an epoch, until its end or a spent time budget.
  struct Pass {
    Clock::time_point t0;
    double elapsed0 = 0;      // st.elapsed_s when it began
    int64_t first_batch = 0;  // the batch it began at
    double lr = 0;            // of the latest step
    PendingSteps pending;     // steps not yet read back
    std::string status;       // the progress bar's running loss
    at::Tensor norm0;         // the weights' norm when it began (read only if a step raises)
    bool budget_spent = false;
    double train_s = 0, img_s = 0;  // its training time and rate (set at its end)
  };

  // The checkpoint, when resuming; finished is re-decided by this config: more epochs, or a larger (or no) time
  // budget, continue the stage.
  void resume() {
    st_ = load_checkpoint(ckpt_, *model_.module, opt_, {options_.trained_for, per_epoch_, bs_});
    st_.finished = (cfg_.time_budget_s > 0 && st_.elapsed_s >= cfg_.time_budget_s) || st_.epoch >= cfg_.epochs;
    log::info("{}: resumed from {} (epoch {}/{}, batch {}, {} spent)", options_.name, ckpt_, st_.epoch, cfg_.epochs,
              st_.batch, log::duration(st_.elapsed_s));
  }

  // The last evaluation, from the history.
  EvalMetrics last_eval() const {
    EvalMetrics m;
    if (!st_.history.empty()) {
      const HistoryEntry& h = st_.history.back();
      m.loss = h.val_loss;
      m.top1 = h.val_top1;
      m.top5 = h.val_top5;
      m.n = h.val_n;
      // The hits are kept with the checkpoint; a count that disagrees with val_n (or none, from an older
      // version) leaves them unknown, and the paired tests report "n/a".
      if (int64_t(st_.eval_hits.size()) == m.n) {
        m.hits = st_.eval_hits;
      } else if (!st_.eval_hits.empty()) {
        log::info("warning: {}: {} per-image results for {} test images; the paired tests will be n/a",
                  options_.name, st_.eval_hits.size(), m.n);
      }
    }
    return m;
  }

  // Nothing has been saved since this pass began: the checkpoint is the one it resumed from.
  [[noreturn]] void diverged(const Pass& p, const std::string& what, int64_t batch) const {
    const std::string last = fs::exists(ckpt_) ? fmt::format("the last good checkpoint is {} (epoch {}, batch {})",
                                                             ckpt_, st_.epoch, p.first_batch)
                                               : "this stage has no checkpoint yet";
    throw std::runtime_error(fmt::format("{}: diverged at epoch {} batch {}: {}. Try a lower lr; nothing of this "
                                         "epoch was evaluated or saved, {}",
                                         options_.name, st_.epoch + 1, batch + 1, what, last));
  }

  // The pending steps into the stage's running totals: the only host reads of the loop (see trainer.h).
  void read_back(Pass& p) {
    for (const PendingSteps::Step& s : p.pending.take()) {
      if (!std::isfinite(s.loss)) {
        diverged(p, fmt::format("the training loss is {}", std::isnan(s.loss) ? "NaN" : (s.loss > 0 ? "+Inf" : "-Inf")),
                 s.batch);
      }
      if (s.loss > explode_) {
        diverged(p, fmt::format("the training loss exploded to {:.4g} (above {} × ln({} classes) = {:.4g})", s.loss,
                                kExplodeFactor, train_.dataset().num_classes(), explode_),
                 s.batch);
      }
      st_.part_loss += s.loss * double(s.images);
      st_.part_correct += s.correct;
      st_.part_seen += s.images;
    }
    p.status = fmt::format("loss {:.4f} lr {:.2e}", st_.part_loss / double(std::max<int64_t>(st_.part_seen, 1)), p.lr);
  }

  // Forward, loss, backward and the AdamW step of one batch; returns its loss and logits (on the device).
  std::pair<at::Tensor, at::Tensor> step(Pass& p, const data::Batch& b, const at::Tensor& images,
                                         const at::Tensor& labels, const at::Device& device) {
    const MixupOptions mixing{cfg_.mixup, cfg_.cutmix, cfg_.mixup_prob, cfg_.mixup_switch_prob, cfg_.label_smoothing};
    at::Tensor logits, loss;
    try {
      if (mixing.enabled()) {
        // Mixup / CutMix on the model's device, from an RNG of (data seed, epoch, batch): resumable mid-epoch.
        // A data-parallel shard mixes with its partner slice of the global batch (data_parallel.h).
        at::Tensor partner_images, partner_labels;
        if (b.partner_images.defined()) {
          partner_images = models::to_device_async(b.partner_images, device);
          partner_labels = models::to_device_async(b.partner_labels, device);
        }
        const MixedBatch m = mix_batch(images, labels, train_.dataset().num_classes(), mixing,
                                       mix_seed(train_.options().seed, st_.epoch, st_.batch), partner_images,
                                       partner_labels);
        logits = model_(m.images);
        loss = soft_target_cross_entropy(logits, m.targets);
      } else {
        logits = model_(images);
        loss = torch::nn::functional::cross_entropy(
            logits, labels, torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(cfg_.label_smoothing));
      }
      opt_.zero_grad();
      loss.backward();
      dp::average_gradients(*model_.module);  // data-parallel: the global batch's gradient on every rank
      opt_.step();
    } catch (const std::exception& e) {
      // A rank died or hung (dist::CollectiveError): no read-back (another collective), say where it happened.
      if (message_of(e).rfind("data-parallel ", 0) == 0) {
        throw std::runtime_error(fmt::format("{}: training step at epoch {} batch {}: {}", options_.name,
                                             st_.epoch + 1, st_.batch + 1, message_of(e)));
      }
      // An op refused its input (on the CPU, a scale outside its supported range). If the run diverged, say so.
      read_back(p);
      // A far too large step leaves a finite loss behind and weights that the next forward's quantizers turn
      // into scales an op refuses (the CPU ops check their scale range on the host, on every call): there the
      // weights' norm has grown by orders of magnitude since the epoch began, which healthy training never does.
      const double growth = *(weights_norm(*model_.module) / p.norm0).to(at::kCPU).data_ptr<double>();
      if (!(growth <= kWeightGrowth)) {
        diverged(p, fmt::format("the weights' norm grew ×{:.3g} since the epoch began, and then {}", growth,
                                message_of(e)),
                 st_.batch);
      }
      throw std::runtime_error(fmt::format("{}: training step at epoch {} batch {}: {}", options_.name,
                                           st_.epoch + 1, st_.batch + 1, message_of(e)));
    }
    return {loss, logits};
  }

  // The training steps of one pass, its losses read back, the weights checked finite at its end.
  Pass train_pass() {
    model_.module->train();
    Pass p;
    p.t0 = Clock::now();
    p.elapsed0 = st_.elapsed_s;
    p.first_batch = st_.batch;
    log::Progress bar(fmt::format("{} epoch {}/{}", options_.name, st_.epoch + 1, cfg_.epochs), train_.num_images());
    bar.update(p.first_batch * bs_);
    auto pass = train_.pass(st_.epoch, st_.batch);
    p.norm0 = weights_norm(*model_.module);
    const at::Device device = models::model_device(model_);  // batches come from the loader on the CPU
    p.lr = learning_rate(cfg_, st_.step, total_steps_);
    p.pending = PendingSteps();  // its read-back clock starts with the steps
    const dp::PassCollectives collectives;  // data-parallel: recorded and logged per step at the pass's end
    while (auto b = pass->next()) {
      p.lr = learning_rate(cfg_, st_.step, total_steps_);
      set_lr(opt_, p.lr);
      const at::Tensor labels = models::to_device_async(b->labels, device);
      const at::Tensor images = models::to_device_async(b->images, device);
      const auto [loss, logits] = step(p, *b, images, labels, device);
      const int64_t n = b->labels.size(0) * dp::world();  // the global batch (equal shards)
      p.pending.add(loss, logits.argmax(1).eq(labels).sum(), n, st_.batch);
      st_.step += 1;
      st_.batch += 1;
      if (p.pending.due()) read_back(p);
      st_.elapsed_s = p.elapsed0 + std::chrono::duration<double>(Clock::now() - p.t0).count();
      bar.update(n, p.status);
      // Data-parallel: every rank stops at the same step, once any rank's clock says the budget is spent.
      if (cfg_.time_budget_s > 0 && dp::any_rank(st_.elapsed_s >= cfg_.time_budget_s)) {
        p.budget_spent = true;
        break;
      }
    }
    read_back(p);
    if (!weights_finite(*model_.module)) diverged(p, "the weights are not finite after the last step", st_.batch - 1);
    p.train_s = std::chrono::duration<double>(Clock::now() - p.t0).count();
    p.img_s = double((st_.batch - p.first_batch) * bs_) / std::max(p.train_s, 1e-9);
    collectives.end(options_.name, st_.batch - p.first_batch);
    bar.done(fmt::format("loss {:.4f}", st_.part_seen ? st_.part_loss / double(st_.part_seen) : 0.0));
    return p;
  }

  // After a pass: the evaluation, its history entry, the best weights, the epoch count, metrics files and the
  // checkpoint.
  void end_pass(const Pass& p) {
    const bool epoch_done = st_.batch >= per_epoch_;
    const EvalMetrics m = evaluate(model_, val_, fmt::format("{} eval", options_.name));
    st_.eval_hits = m.hits;
    st_.elapsed_s = p.elapsed0 + std::chrono::duration<double>(Clock::now() - p.t0).count();
    const double epoch_progress = double(st_.epoch) + double(st_.batch) / double(per_epoch_);
    HistoryEntry h;
    h.epoch = epoch_progress;
    h.train_loss = st_.part_seen ? st_.part_loss / double(st_.part_seen) : 0.0;
    h.train_top1 = st_.part_seen ? double(st_.part_correct) / double(st_.part_seen) : 0.0;
    h.lr = p.lr;
    h.val_loss = m.loss;
    h.val_top1 = m.top1;
    h.val_top5 = m.top5;
    h.val_n = m.n;
    h.epoch_s = p.train_s;
    h.train_img_s = p.img_s;
    h.elapsed_s = st_.elapsed_s;
    st_.history.push_back(h);
    log::info("{}: epoch {:.2f}/{} train loss {:.4f} | val loss {:.4f} top-1 {:.2f}% top-5 {:.2f}% | {:.0f} img/s",
              options_.name, epoch_progress, cfg_.epochs, h.train_loss, m.loss, 100 * m.top1, 100 * m.top5, p.img_s);
    if (m.top1 > st_.best_top1) {
      st_.best_top1 = m.top1;
      st_.best_epoch = int64_t(std::ceil(epoch_progress));
      models::save_weights(*model_.module, options_.dir + "/best.safetensors");
    }
    if (epoch_done) {
      st_.epoch += 1;
      st_.batch = 0;
      st_.part_loss = 0;
      st_.part_correct = st_.part_seen = 0;
      ++result_.session_epochs;
    }
    if (p.budget_spent) log::info("{}: time budget of {} spent", options_.name, log::duration(cfg_.time_budget_s));
    st_.budget_spent = p.budget_spent;
    st_.finished = p.budget_spent || st_.epoch >= cfg_.epochs;
    write_metrics(options_.dir, st_.history);
    dp::check_identical(*model_.module, fmt::format("{}: the weights and quantizer buffers at epoch {:.2f}",
                                                    options_.name, epoch_progress));
    save_checkpoint(ckpt_, *model_.module, opt_, st_);
  }

  const models::Model& model_;
  const TrainConfig& cfg_;
  const data::Loader& train_;
  const data::Loader& val_;
  const StageOptions& options_;
  const std::string ckpt_;
  torch::optim::AdamW opt_;
  StageResult result_;
  TrainState& st_ = result_.state;
  int64_t per_epoch_ = 0, bs_ = 0, total_steps_ = 0;
  double explode_ = 0;
};

}  // namespace

StageResult fit(const models::Model& model, const TrainConfig& cfg, const data::Loader& train, const data::Loader& val,
                const StageOptions& options) {
  fs::create_directories(options.dir);
  return StageRun(model, cfg, train, val, options).run();
}

}  // namespace train
}  // namespace mnq
