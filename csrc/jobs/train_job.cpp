#include "csrc/jobs/train_job.h"

#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include "csrc/jobs/datasets.h"
#include "csrc/jobs/mixed.h"
#include "csrc/jobs/seeds.h"
#include "csrc/models/calibrate.h"
#include "csrc/models/device.h"
#include "csrc/models/weights.h"
#include "csrc/train/data_parallel.h"
#include "csrc/train/integer_eval.h"
#include "csrc/train/trainer.h"
#include "csrc/util/atomic_file.h"
#include "csrc/util/log.h"

namespace mnq {
namespace train {
namespace {

namespace fs = std::filesystem;

// Activation ranges before QAT (SPEC §1): models::calibrate on the first `batches` calibration batches of the
// training split, the model left in train mode for QAT. (A fresh model has run no α search: none is reset.)
void calibrate(const models::Model& q, const data::Loader& calib, int64_t batches, const std::string& name) {
  batches = std::min(batches, calib.num_batches());
  log::Progress bar(name + " calibrate", batches, "batch");
  models::CalibrateOptions how;
  how.on_batch = [&bar](int64_t) { bar.update(1); };
  const at::Device device = models::model_device(q);
  models::calibrate(q, batches, [&](int64_t i) { return calib.batch(kCalibEpoch, i).images.to(device); }, how);
  bar.done();
}

// What a stage trains, saved in its checkpoint (StageOptions::trained_for): a resume of another model, bit-width or
// plan is refused instead of training the old checkpoint under the new name.
nlohmann::json model_identity(const ModelConfig& m) {
  return {{"preset", m.preset},
          {"num_classes", m.num_classes},
          {"img_size", m.img_size},
          {"in_chans", m.in_chans},
          {"drop_path", m.drop_path}};
}

nlohmann::json run_identity(const ModelConfig& m, int64_t bits, const models::Plan& plan) {
  return {{"stage", "qat"}, {"model", model_identity(m)}, {"bits", bits}, {"plan", plan.entries()}};
}

RunResult row_of(const std::string& name, int64_t bits, const std::string& plan, const StageResult& s) {
  RunResult r;
  r.name = name;
  r.bits = bits;
  r.plan = plan;
  r.metrics = s.final;
  r.best_top1 = std::max(s.state.best_top1, 0.0);
  r.best_epoch = s.state.best_epoch;
  r.epochs = s.state.history.empty() ? 0.0 : s.state.history.back().epoch;
  r.wall_s = s.state.elapsed_s;
  r.finished = s.state.finished;
  return r;
}

}  // namespace

JobResult run_job(const JobConfig& config, const JobOptions& options) {
  if (!config.seeds.empty()) return run_seeds(config, options);  // one run_single_job per seed (seeds.h)
  return run_single_job(config, options);
}

JobResult run_single_job(const JobConfig& config, const JobOptions& options) {
  config.validate("");
  // Data-parallel (torchrun): only rank 0 writes files and logs; no-op on one process. The device as below.
  dp::begin_job({at::Device(config.device == "cpu" || !at::hasCUDA() ? at::kCPU : at::kCUDA), config.dist.timeout_s,
                 config.data.batch_size, config::to_yaml(config)});
  JobResult result;
  result.dir = config.output.dir;
  const std::string dir = config.output.dir;
  fs::create_directories(dir);
  log::set_quiet(options.quiet);
  log::set_file(dir + "/train.log");
  // Temporary files of writers killed mid-write (util/atomic_file.h): never read, removed before anything else.
  if (const int64_t stale = util::remove_stale_temps(dir); stale > 0) {
    log::info("removed {} temporary file(s) left in {} by a killed job", stale, dir);
  }
  // A resumed job's config.yaml is replaced only once every stage's checkpoint has been checked against the new
  // config (below): a refused resume leaves the run folder describing what it holds.
  const std::string yaml = config::to_yaml(config);
  const bool have_config = fs::exists(dir + "/config.yaml");
  const bool config_changed = options.resume && have_config && util::read_file(dir + "/config.yaml") != yaml;
  if (!options.resume || !have_config) util::write_file_atomic(dir + "/config.yaml", yaml);
  if (config.threads > 0) at::set_num_threads(int(config.threads));
  if (config.device == "cuda" && !at::hasCUDA()) {
    throw config::Error("device", "cuda requested but this machine has no usable GPU (use auto or cpu)");
  }
  const at::Device device(config.device == "cpu" || !at::hasCUDA() ? at::kCPU : at::kCUDA);
  // Full FP32 (no TF32 in cuBLAS/cuDNN): the runs must not depend on the GPU they ran on (models/device.h).
  models::pin_full_fp32();
  log::info("mnq-train: run folder {} ({}, {} torch threads, {}){}", dir, device.is_cuda() ? "CUDA" : "CPU",
            at::get_num_threads(), models::fp32_settings(), options.resume ? ", resuming" : "");

  const models::ModelOverrides overrides = model_overrides(config.model);
  const ModelShape shape = model_shape(config.model);
  const Splits splits = make_datasets(config.data, shape);
  const DataConfig& d = config.data;
  // Pinned batches on a GPU: the copies to the device do not wait (models/device.h).
  const bool pin = device.is_cuda();
  // Data-parallel: each rank loads its slice of every global batch (dp::sharded; whole batches on one process).
  const bool mixing = dp::mixes(config.train) || dp::mixes(config.model.pretrain);
  const data::Loader train(
      splits.train, dp::sharded({d.batch_size, true, true, d.workers, d.prefetch, uint64_t(d.seed), pin}, mixing));
  const data::Loader val(splits.val,
                         dp::sharded({d.eval_batch_size, false, false, d.workers, d.prefetch, uint64_t(d.seed), pin}));
  log::info("data: train {}, {} batches of {}; test {}", splits.train->describe(), train.num_batches(), d.batch_size,
            splits.val->describe());

  // The FP model: a checkpoint, or pretraining (always resumable: a finished pretraining is the cache).
  at::manual_seed(stage_seed(d.seed, "fp"));
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
    nlohmann::json fp_identity = {{"stage", "fp"}, {"model", model_identity(config.model)}};
    const StageResult s =
        fit(fp, config.model.pretrain, train, val, {"fp", dir + "/fp", true, epochs_left, std::move(fp_identity)});
    fp_row = row_of("fp", 0, "-", s);
    if (!s.state.finished) {
      if (config_changed) util::write_file_atomic(dir + "/config.yaml", yaml);  // the FP stage accepted it
      result.rows.push_back(fp_row);
      write_results(dir, result.rows);
      result.epochs_left = epochs_left < 0 ? -1 : std::max<int64_t>(0, epochs_left - s.session_epochs);
      return result;
    }
    if (epochs_left >= 0) epochs_left = std::max<int64_t>(0, epochs_left - s.session_epochs);
  }
  result.rows.push_back(fp_row);
  write_results(dir, result.rows);

  // Every run's plan before any QAT (SPEC §7: assigned once, before QAT), so a bad plan fails fast; the analyzer
  // runs once per bit-width.
  const std::vector<RunConfig> runs = config.runs();
  std::map<int64_t, MixedPlans> mixed;
  std::vector<models::Plan> plans;
  for (const RunConfig& run : runs) {
    if (is_mixed_plan(run.plan)) {
      // A resumed job keeps the plans it already chose (they depend only on the FP weights and the bits).
      // The plan search runs with the analysis when a run of these bits asks for it (or analyze.mode does).
      // The isolated scores when a run of these bits needs them (analyze.isolated auto) or analyze.isolated says.
      auto asks = [&](const char* plan) {
        return std::any_of(runs.begin(), runs.end(),
                           [&](const RunConfig& r) { return r.bits == run.bits && r.plan == plan; });
      };
      const bool search = config.analyze.mode == "searched" || asks("searched");
      const bool isolated = config.analyze.scores_isolated(search || asks("mixed_isolated"));
      if (!mixed.count(run.bits) && options.resume) {
        auto saved = MixedPlans::load(dir + "/plans", run.bits);
        if (saved && (!search || saved->searched) && (!isolated || saved->isolated)) mixed[run.bits] = *saved;
      }
      if (!mixed.count(run.bits)) {
        fs::create_directories(dir + "/plans");
        mixed[run.bits] = mixed_plans(fp, run.bits, config, train, overrides, dir + "/plans", search, isolated);
        mixed[run.bits].save(dir + "/plans", run.bits);
      }
      plans.push_back(mixed[run.bits].of(run.plan));
    } else if (is_plan_method(run.plan)) {
      plans.push_back(models::Plan::uniform(run.plan));
    } else {
      plans.push_back(models::Plan::load(run.plan));
    }
  }

  if (options.resume) {
    for (size_t i = 0; i < runs.size(); ++i) {
      check_trained_for(dir + "/" + runs[i].name + "/checkpoint.safetensors",
                        run_identity(config.model, runs[i].bits, plans[i]));
    }
  }
  if (config_changed) {
    log::info("warning: {}/config.yaml differs from this job's config; resuming with the new one", dir);
    util::write_file_atomic(dir + "/config.yaml", yaml);
  }

  for (size_t i = 0; i < runs.size(); ++i) {
    const RunConfig& run = runs[i];
    const models::Plan& plan = plans[i];
    const std::string run_dir = dir + "/" + run.name;
    fs::create_directories(run_dir);
    plan.save(run_dir + "/plan.yaml");
    at::manual_seed(stage_seed(d.seed, "qat/" + run.name));  // initialisation, calibration, drop-path masks
    const models::Model q = models::create_quant(config.model.preset, {run.bits, plan}, overrides);
    models::copy_parameters(*fp.module, *q.module);
    q.module->to(device);
    const bool from_checkpoint = options.resume && fs::exists(run_dir + "/checkpoint.safetensors");
    if (!from_checkpoint) calibrate(q, train, config.quant.calib_batches, run.name);
    const StageResult s = fit(q, config.train, train, val,
                              {run.name, run_dir, options.resume, epochs_left, run_identity(config.model, run.bits, plan)});
    result.rows.push_back(row_of(run.name, run.bits, run.plan, s));
    if (s.state.finished) result.rows.back().integer = export_integer_model(q, val, run_dir, run.name);
    write_results(dir, result.rows);
    if (epochs_left >= 0) epochs_left = std::max<int64_t>(0, epochs_left - s.session_epochs);
    result.epochs_left = epochs_left;
    if (!s.state.finished) return result;
  }
  result.finished = true;
  result.epochs_left = epochs_left;
  log::info("results ({}/results.md):\n{}", dir, results_markdown(result.rows));
  return result;
}

}  // namespace train
}  // namespace mnq
