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
#include "csrc/util/atomic_file.h"
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

void write_metrics(const std::string& dir, const nlohmann::json& history) {
  static const char* cols[] = {"epoch",    "train_loss", "train_top1", "lr",          "val_loss",
                               "val_top1", "val_top5",   "epoch_s",    "train_img_s", "elapsed_s"};
  std::string csv, jsonl;
  for (const char* c : cols) {
    if (!csv.empty()) csv += ',';
    csv += c;
  }
  csv += '\n';
  for (const auto& h : history) {
    for (size_t i = 0; i < std::size(cols); ++i) {
      if (i > 0) csv += ',';
      csv += h.at(cols[i]).dump();
    }
    csv += '\n';
    jsonl += h.dump();
    jsonl += '\n';
  }
  util::write_file_atomic(dir + "/metrics.csv", csv);
  util::write_file_atomic(dir + "/metrics.jsonl", jsonl);
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

StageResult fit(const models::Model& model, const TrainConfig& cfg, const data::Loader& train, const data::Loader& val,
                const StageOptions& options) {
  fs::create_directories(options.dir);
  const std::string ckpt = options.dir + "/checkpoint.safetensors";
  torch::optim::AdamW opt = make_optimizer(*model.module, cfg);
  StageResult result;
  TrainState& st = result.state;
  st.trained_for = options.trained_for;
  const int64_t per_epoch = train.num_batches();
  if (per_epoch == 0) throw std::runtime_error(options.name + ": the training set has fewer images than one batch");
  const int64_t bs = train.options().batch_size;
  if (options.resume && fs::exists(ckpt)) {
    st = load_checkpoint(ckpt, *model.module, opt, {options.trained_for, per_epoch, bs});
    // Finished is re-decided by this config: more epochs, or a larger (or no) time budget, continue the stage.
    st.finished = (cfg.time_budget_s > 0 && st.elapsed_s >= cfg.time_budget_s) || st.epoch >= cfg.epochs;
    log::info("{}: resumed from {} (epoch {}/{}, batch {}, {} spent)", options.name, ckpt, st.epoch, cfg.epochs,
              st.batch, log::duration(st.elapsed_s));
  }
  auto last_eval = [&] {
    EvalMetrics m;
    if (!st.history.empty()) {
      const auto& h = st.history.back();
      m.loss = h.at("val_loss");
      m.top1 = h.at("val_top1");
      m.top5 = h.at("val_top5");
      m.n = h.at("val_n");
      // The hits are kept with the checkpoint; a count that disagrees with val_n (or none, from an older
      // version) leaves them unknown, and the paired tests report "n/a".
      if (int64_t(st.eval_hits.size()) == m.n) {
        m.hits = st.eval_hits;
      } else if (!st.eval_hits.empty()) {
        log::info("warning: {}: {} per-image results for {} test images; the paired tests will be n/a",
                  options.name, st.eval_hits.size(), m.n);
      }
    }
    return m;
  };
  if (st.finished) {
    // A kill between the last checkpoint and the final weights file leaves only the former.
    if (!fs::exists(options.dir + "/model.safetensors")) {
      models::save_weights(*model.module, options.dir + "/model.safetensors");
    }
    result.final = last_eval();
    return result;
  }
  const int64_t total_steps = cfg.epochs * per_epoch;
  const double explode = divergence_bound(train.dataset().num_classes());
  int64_t& epochs_this_session = result.session_epochs;

  while (st.epoch < cfg.epochs && !st.finished) {
    if (options.stop_after_epochs >= 0 && epochs_this_session >= options.stop_after_epochs) {
      log::info("{}: stopping after {} epoch(s) this session (continue with --resume)", options.name,
                epochs_this_session);
      result.final = last_eval();
      return result;
    }
    model.module->train();
    const auto t0 = Clock::now();
    const double elapsed0 = st.elapsed_s;
    const int64_t first_batch = st.batch;
    log::Progress bar(fmt::format("{} epoch {}/{}", options.name, st.epoch + 1, cfg.epochs), train.num_images());
    bar.update(first_batch * bs);
    bool budget_spent = false;
    auto pass = train.pass(st.epoch, st.batch);
    const at::Tensor norm0 = weights_norm(*model.module);  // read only if a step raises (below)
    const at::Device device = models::model_device(model);  // batches come from the loader on the CPU
    const MixupOptions mixing{cfg.mixup, cfg.cutmix, cfg.mixup_prob, cfg.mixup_switch_prob, cfg.label_smoothing};
    const int64_t num_classes = train.dataset().num_classes();
    double lr = learning_rate(cfg, st.step, total_steps);
    PendingSteps pending;
    std::string status;
    // The pending steps into the stage's running totals: the only host reads of the loop (see trainer.h).
    // Nothing has been saved since this pass began: the checkpoint is the one it resumed from.
    auto diverged = [&](const std::string& what, int64_t batch) {
      const std::string last = fs::exists(ckpt) ? fmt::format("the last good checkpoint is {} (epoch {}, batch {})",
                                                              ckpt, st.epoch, first_batch)
                                                : "this stage has no checkpoint yet";
      throw std::runtime_error(fmt::format("{}: diverged at epoch {} batch {}: {}. Try a lower lr; nothing of this "
                                           "epoch was evaluated or saved, {}",
                                           options.name, st.epoch + 1, batch + 1, what, last));
    };
    auto read_back = [&] {
      for (const PendingSteps::Step& p : pending.take()) {
        if (!std::isfinite(p.loss)) {
          diverged(fmt::format("the training loss is {}", std::isnan(p.loss) ? "NaN" : (p.loss > 0 ? "+Inf" : "-Inf")),
                   p.batch);
        }
        if (p.loss > explode) {
          diverged(fmt::format("the training loss exploded to {:.4g} (above {} × ln({} classes) = {:.4g})", p.loss,
                               kExplodeFactor, train.dataset().num_classes(), explode),
                   p.batch);
        }
        st.part_loss += p.loss * double(p.images);
        st.part_correct += p.correct;
        st.part_seen += p.images;
      }
      status = fmt::format("loss {:.4f} lr {:.2e}", st.part_loss / double(std::max<int64_t>(st.part_seen, 1)), lr);
    };
    while (auto b = pass->next()) {
      lr = learning_rate(cfg, st.step, total_steps);
      set_lr(opt, lr);
      const at::Tensor labels = models::to_device_async(b->labels, device);
      const at::Tensor images = models::to_device_async(b->images, device);
      at::Tensor logits, loss;
      try {
        if (mixing.enabled()) {
          // Mixup / CutMix on the model's device, from an RNG of (data seed, epoch, batch): resumable mid-epoch.
          // A data-parallel shard mixes with its partner slice of the global batch (data_parallel.h).
          at::Tensor partner_images, partner_labels;
          if (b->partner_images.defined()) {
            partner_images = models::to_device_async(b->partner_images, device);
            partner_labels = models::to_device_async(b->partner_labels, device);
          }
          const MixedBatch m = mix_batch(images, labels, num_classes, mixing,
                                         mix_seed(train.options().seed, st.epoch, st.batch), partner_images,
                                         partner_labels);
          logits = model(m.images);
          loss = soft_target_cross_entropy(logits, m.targets);
        } else {
          logits = model(images);
          loss = torch::nn::functional::cross_entropy(
              logits, labels, torch::nn::functional::CrossEntropyFuncOptions().label_smoothing(cfg.label_smoothing));
        }
        opt.zero_grad();
        loss.backward();
        dp::average_gradients(*model.module);  // data-parallel: the global batch's gradient on every rank
        opt.step();
      } catch (const std::exception& e) {
        // A rank died or hung (dist::CollectiveError): no read-back (another collective), say where it happened.
        if (message_of(e).rfind("data-parallel ", 0) == 0) {
          throw std::runtime_error(fmt::format("{}: training step at epoch {} batch {}: {}", options.name,
                                               st.epoch + 1, st.batch + 1, message_of(e)));
        }
        // An op refused its input (on the CPU, a scale outside its supported range). If the run diverged, say so.
        read_back();
        // A far too large step leaves a finite loss behind and weights that the next forward's quantizers turn
        // into scales an op refuses (the CPU ops check their scale range on the host, on every call): there the
        // weights' norm has grown by orders of magnitude since the epoch began, which healthy training never does.
        const double growth = *(weights_norm(*model.module) / norm0).to(at::kCPU).data_ptr<double>();
        if (!(growth <= kWeightGrowth)) {
          diverged(fmt::format("the weights' norm grew ×{:.3g} since the epoch began, and then {}", growth,
                               message_of(e)),
                   st.batch);
        }
        throw std::runtime_error(
            fmt::format("{}: training step at epoch {} batch {}: {}", options.name, st.epoch + 1, st.batch + 1,
                        message_of(e)));
      }
      const int64_t n = b->labels.size(0) * dp::world();  // the global batch (equal shards)
      pending.add(loss, logits.argmax(1).eq(labels).sum(), n, st.batch);
      st.step += 1;
      st.batch += 1;
      if (pending.due()) read_back();
      st.elapsed_s = elapsed0 + std::chrono::duration<double>(Clock::now() - t0).count();
      bar.update(n, status);
      // Data-parallel: every rank stops at the same step, once any rank's clock says the budget is spent.
      if (cfg.time_budget_s > 0 && dp::any_rank(st.elapsed_s >= cfg.time_budget_s)) {
        budget_spent = true;
        break;
      }
    }
    read_back();
    if (!weights_finite(*model.module)) diverged("the weights are not finite after the last step", st.batch - 1);
    const double train_s = std::chrono::duration<double>(Clock::now() - t0).count();
    const double img_s = double((st.batch - first_batch) * bs) / std::max(train_s, 1e-9);
    bar.done(fmt::format("loss {:.4f}", st.part_seen ? st.part_loss / double(st.part_seen) : 0.0));
    const bool epoch_done = st.batch >= per_epoch;
    const EvalMetrics m = evaluate(model, val, fmt::format("{} eval", options.name));
    st.eval_hits = m.hits;
    st.elapsed_s = elapsed0 + std::chrono::duration<double>(Clock::now() - t0).count();
    const double epoch_progress = double(st.epoch) + double(st.batch) / double(per_epoch);
    st.history.push_back({{"epoch", epoch_progress},
                          {"train_loss", st.part_seen ? st.part_loss / double(st.part_seen) : 0.0},
                          {"train_top1", st.part_seen ? double(st.part_correct) / double(st.part_seen) : 0.0},
                          {"lr", lr},
                          {"val_loss", m.loss},
                          {"val_top1", m.top1},
                          {"val_top5", m.top5},
                          {"val_n", m.n},
                          {"epoch_s", train_s},
                          {"train_img_s", img_s},
                          {"elapsed_s", st.elapsed_s}});
    log::info("{}: epoch {:.2f}/{} train loss {:.4f} | val loss {:.4f} top-1 {:.2f}% top-5 {:.2f}% | {:.0f} img/s",
              options.name, epoch_progress, cfg.epochs, st.history.back().at("train_loss").get<double>(), m.loss,
              100 * m.top1, 100 * m.top5, img_s);
    if (m.top1 > st.best_top1) {
      st.best_top1 = m.top1;
      st.best_epoch = int64_t(std::ceil(epoch_progress));
      models::save_weights(*model.module, options.dir + "/best.safetensors");
    }
    if (epoch_done) {
      st.epoch += 1;
      st.batch = 0;
      st.part_loss = 0;
      st.part_correct = st.part_seen = 0;
      ++epochs_this_session;
    }
    if (budget_spent) log::info("{}: time budget of {} spent", options.name, log::duration(cfg.time_budget_s));
    st.budget_spent = budget_spent;
    st.finished = budget_spent || st.epoch >= cfg.epochs;
    write_metrics(options.dir, st.history);
    dp::check_identical(*model.module, fmt::format("{}: the weights and quantizer buffers at epoch {:.2f}",
                                                   options.name, epoch_progress));
    save_checkpoint(ckpt, *model.module, opt, st);
  }
  models::save_weights(*model.module, options.dir + "/model.safetensors");
  result.final = last_eval();
  return result;
}

}  // namespace train
}  // namespace mnq
