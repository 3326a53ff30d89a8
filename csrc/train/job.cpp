#include "csrc/train/job.h"

#include <torch/torch.h>

#include <filesystem>
#include <map>

#include "csrc/data/fashion_mnist.h"
#include "csrc/data/image_folder.h"
#include "csrc/models/presets.h"
#include "csrc/models/swin.h"
#include "csrc/models/weights.h"
#include "csrc/train/files.h"
#include "csrc/train/log.h"
#include "csrc/train/mixed.h"
#include "csrc/train/trainer.h"

namespace mnq {
namespace train {
namespace {

namespace fs = std::filesystem;

models::ModelOverrides overrides_of(const ModelConfig& m) {
  models::ModelOverrides o;
  if (m.num_classes > 0) o.num_classes = m.num_classes;
  if (m.img_size > 0) o.img_size = m.img_size;
  if (m.in_chans > 0) o.in_chans = m.in_chans;
  if (m.drop_path > 0) o.drop_path = m.drop_path;
  return o;
}

}  // namespace

ModelShape model_shape(const ModelConfig& m) {
  ModelShape s{};
  if (models::preset_family(m.preset) == models::Family::kViT) {
    const auto c = models::vit_preset(m.preset);
    s = {c.img_size, c.in_chans, c.num_classes};
  } else {
    const auto c = models::swin_preset(m.preset);
    s = {c.img_size, c.in_chans, c.num_classes};
  }
  if (m.img_size > 0) s.img_size = m.img_size;
  if (m.in_chans > 0) s.in_chans = m.in_chans;
  if (m.num_classes > 0) s.num_classes = m.num_classes;
  return s;
}

namespace {

struct Splits {
  std::shared_ptr<data::Dataset> train, val;
};

Splits make_datasets(const DataConfig& d, const ModelShape& shape) {
  Splits s;
  if (d.kind == "fashion_mnist") {
    const std::vector<double> mean = d.mean.empty() ? std::vector<double>{0.2860} : d.mean;
    const std::vector<double> std = d.std.empty() ? std::vector<double>{0.3530} : d.std;
    auto train = std::make_shared<data::FashionMnist>(d.root, "train", mean, std);
    train->set_augmentation(d.rand_augment(), data::parse_filter(d.interpolation), d.erasing());
    s.train = train;
    s.val = std::make_shared<data::FashionMnist>(d.root, "test", mean, std);
  } else {
    data::ImageFolderOptions o;
    o.img_size = shape.img_size;
    o.channels = shape.in_chans;
    o.crop_pct = d.crop_pct;
    o.interpolation = data::parse_filter(d.interpolation);
    o.train_augment = d.train_augment;
    o.rand_augment = d.rand_augment();
    o.random_erasing = d.erasing();
    if (!d.mean.empty()) o.mean = d.mean;
    if (!d.std.empty()) o.std = d.std;
    if (shape.in_chans == 1 && d.mean.empty()) {
      o.mean = {0.449};  // grey: the mean of ImageNet's channel statistics
      o.std = {0.226};
    }
    auto train = std::make_shared<data::ImageFolder>(d.root, "train", o);
    s.val = std::make_shared<data::ImageFolder>(d.root, "val", o, train->classes());
    s.train = train;
  }
  const data::ImageShape is = s.train->shape();
  if (is.channels != shape.in_chans || is.height != shape.img_size || is.width != shape.img_size) {
    throw config::Error("model",
                        fmt::format("the model takes {}×{}×{} images, the data are {}×{}×{} (set "
                                    "model.in_chans / model.img_size)",
                                    shape.in_chans, shape.img_size, shape.img_size, is.channels, is.height, is.width));
  }
  if (s.train->num_classes() != shape.num_classes) {
    throw config::Error("model.num_classes", fmt::format("the model has {} classes, the data {}", shape.num_classes,
                                                         s.train->num_classes()));
  }
  s.train = data::subset(s.train, d.train_subset, uint64_t(d.seed));
  s.val = data::subset(s.val, d.val_subset, uint64_t(d.seed) + 1);
  return s;
}

// Activation ranges before QAT (SPEC §1): quantizers in training mode see `batches` training batches without
// gradients (EMA of min/max; PtfAct α search), then the α choice of the fqvit LayerNorms is frozen.
void calibrate(const models::Model& q, const data::Loader& calib, int64_t batches, const std::string& name) {
  batches = std::min(batches, calib.num_batches());
  q.module->train();
  torch::NoGradGuard no_grad;
  Progress bar(name + " calibrate", batches, "batch");
  for (int64_t i = 0; i < batches; ++i) {
    q(calib.batch(kCalibEpoch, i).images.to(model_device(q)));
    bar.update(1);
  }
  bar.done();
  q.freeze_alpha();
}

RunResult row_of(const std::string& name, int64_t bits, const std::string& plan, const StageResult& s) {
  RunResult r;
  r.name = name;
  r.bits = bits;
  r.plan = plan;
  r.metrics = s.final;
  r.best_top1 = std::max(s.state.best_top1, 0.0);
  r.best_epoch = s.state.best_epoch;
  r.epochs = s.state.history.empty() ? 0.0 : s.state.history.back().at("epoch").get<double>();
  r.wall_s = s.state.elapsed_s;
  r.finished = s.state.finished;
  return r;
}

}  // namespace

JobResult run_job(const JobConfig& config, const JobOptions& options) {
  config.validate("");
  JobResult result;
  result.dir = config.output.dir;
  const std::string dir = config.output.dir;
  fs::create_directories(dir);
  log::set_quiet(options.quiet);
  log::set_file(dir + "/train.log");
  const std::string yaml = config::to_yaml(config);
  if (options.resume && fs::exists(dir + "/config.yaml") && read_text(dir + "/config.yaml") != yaml) {
    log::info("warning: {}/config.yaml differs from this job's config; resuming with the new one", dir);
  }
  write_text_atomic(dir + "/config.yaml", yaml);
  if (config.threads > 0) at::set_num_threads(int(config.threads));
  if (config.device == "cuda" && !at::hasCUDA()) {
    throw config::Error("device", "cuda requested but this machine has no usable GPU (use auto or cpu)");
  }
  const at::Device device(config.device == "cpu" || !at::hasCUDA() ? at::kCPU : at::kCUDA);
  log::info("mnq-train: run folder {} ({}, {} torch threads){}", dir, device.is_cuda() ? "CUDA" : "CPU",
            at::get_num_threads(), options.resume ? ", resuming" : "");

  const models::ModelOverrides overrides = overrides_of(config.model);
  const ModelShape shape = model_shape(config.model);
  const Splits splits = make_datasets(config.data, shape);
  const DataConfig& d = config.data;
  const data::Loader train(splits.train, {d.batch_size, true, true, d.workers, d.prefetch, uint64_t(d.seed)});
  const data::Loader val(splits.val, {d.eval_batch_size, false, false, d.workers, d.prefetch, uint64_t(d.seed)});
  log::info("data: train {}, {} batches of {}; test {}", splits.train->describe(), train.num_batches(), d.batch_size,
            splits.val->describe());

  // The FP model: a checkpoint, or pretraining (always resumable: a finished pretraining is the cache).
  at::manual_seed(uint64_t(d.seed));
  const models::Model fp = models::create_fp(config.model.preset, overrides);
  fp.module->to(device);
  int64_t epochs_left = options.stop_after_epochs;
  RunResult fp_row;
  if (!config.model.checkpoint.empty()) {
    models::load_weights(*fp.module, config.model.checkpoint);
    log::info("fp: weights from {}", config.model.checkpoint);
    fp_row.name = "fp";
    fp_row.plan = "-";
    fp_row.metrics = evaluate(fp, val, "fp eval");
    fp_row.best_top1 = fp_row.metrics.top1;
    fp_row.finished = true;
  } else {
    const StageResult s = fit(fp, config.model.pretrain, train, val, {"fp", dir + "/fp", true, epochs_left});
    fp_row = row_of("fp", 0, "-", s);
    if (!s.state.finished) {
      result.rows.push_back(fp_row);
      write_results(dir, result.rows);
      return result;
    }
    if (epochs_left >= 0) epochs_left = std::max<int64_t>(0, epochs_left - s.session_epochs);
  }
  result.rows.push_back(fp_row);
  write_results(dir, result.rows);

  // Every run's plan before any QAT (SPEC §7: assigned once, before QAT), so a bad plan fails fast; the analyzer
  // runs once per bit-width.
  const std::vector<RunConfig> runs = config.runs();
  std::map<int64_t, models::Plan> mixed;
  std::vector<models::Plan> plans;
  for (const RunConfig& run : runs) {
    if (run.plan == "mixed") {
      // A resumed job keeps the plans it already chose (they depend only on the FP weights and the bits).
      const std::string plan_file = dir + "/plans/mixed_w" + std::to_string(run.bits) + ".yaml";
      if (!mixed.count(run.bits) && options.resume && fs::exists(plan_file)) {
        mixed[run.bits] = models::Plan::load(plan_file);
      }
      if (!mixed.count(run.bits)) {
        fs::create_directories(dir + "/plans");
        mixed[run.bits] = mixed_plan(fp, run.bits, config, train, overrides, dir + "/plans");
        mixed[run.bits].save(plan_file);
      }
      plans.push_back(mixed[run.bits]);
    } else if (is_plan_method(run.plan)) {
      plans.push_back(models::Plan::uniform(run.plan));
    } else {
      plans.push_back(models::Plan::load(run.plan));
    }
  }

  for (size_t i = 0; i < runs.size(); ++i) {
    const RunConfig& run = runs[i];
    const models::Plan& plan = plans[i];
    const std::string run_dir = dir + "/" + run.name;
    fs::create_directories(run_dir);
    plan.save(run_dir + "/plan.yaml");
    const models::Model q = models::create_quant(config.model.preset, {run.bits, plan}, overrides);
    models::copy_parameters(*fp.module, *q.module);
    q.module->to(device);
    const bool from_checkpoint = options.resume && fs::exists(run_dir + "/checkpoint.safetensors");
    if (!from_checkpoint) calibrate(q, train, config.quant.calib_batches, run.name);
    const StageResult s = fit(q, config.train, train, val, {run.name, run_dir, options.resume, epochs_left});
    result.rows.push_back(row_of(run.name, run.bits, run.plan, s));
    write_results(dir, result.rows);
    if (!s.state.finished) return result;
    if (epochs_left >= 0) epochs_left = std::max<int64_t>(0, epochs_left - s.session_epochs);
  }
  result.finished = true;
  log::info("results ({}/results.md):\n{}", dir, results_markdown(result.rows));
  return result;
}

}  // namespace train
}  // namespace mnq
