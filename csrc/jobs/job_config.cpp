#include "csrc/jobs/job_config.h"

#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <set>

#include "csrc/models/plan.h"

namespace mnq {
namespace train {
namespace {

constexpr int64_t kMaxBatch = 65536;

std::string join(const std::string& path, const char* key) { return path.empty() ? key : path + "." + key; }

void require(bool ok, const std::string& path, const char* key, const std::string& what) {
  if (!ok) throw config::Error(join(path, key), what);
}

void check_plan(const std::string& plan, const std::string& path, const char* key) {
  if (is_plan_method(plan)) return;
  require(!plan.empty() && config::is_file(plan), path, key,
          "must be mixed, mixed_paper, mixed_isolated, searched, ivit, ibert, fqvit or a plan file; no such file '" + plan +
              "'");
}

// The bits of a run against every method its plan can use: a mixed plan may pick any analyzer candidate, a plan
// file uses the methods it names (read here, so a bad plan file is also a config error).
void check_run_bits(int64_t bits, const std::string& plan, const analysis::AnalyzerConfig& analyze,
                    const std::string& path) {
  std::vector<std::string> methods;
  if (is_mixed_plan(plan)) {
    methods = analyze.methods();
  } else if (is_plan_method(plan)) {
    methods = {plan};
  } else {
    try {
      const models::Plan p = models::Plan::load(plan);
      for (const auto& [key, method] : p.entries()) methods.push_back(method);
    } catch (const std::invalid_argument& e) {
      throw config::Error(join(path, "plan"), e.what());
    }
  }
  const std::string why = models::unsupported_bits(bits, methods);
  require(why.empty(), path, "bits", why + (is_mixed_plan(plan) ? " (the mixed plan may pick it: see analyze)" : ""));
}

}  // namespace

bool is_plan_method(const std::string& plan) {
  return is_mixed_plan(plan) || plan == "ivit" || plan == "ibert" || plan == "fqvit";
}

bool is_mixed_plan(const std::string& plan) {
  return plan == "mixed" || plan == "mixed_paper" || plan == "mixed_isolated" || plan == "searched";
}

void DataConfig::visit(config::Visitor& v) {
  v.field("kind", kind, "fashion_mnist (IDX .gz files in root) | image_folder (root/{train,val}/<class>/*.jpg)");
  v.field("root", root, "dataset folder");
  v.field("batch_size", batch_size, "training images per batch");
  v.field("eval_batch_size", eval_batch_size, "evaluation / calibration images per batch");
  v.field("workers", workers, "loader threads (0: load in the training thread)");
  v.field("prefetch", prefetch, "batches loaded ahead of training");
  v.field("train_subset", train_subset, "use this many training images (a fixed seeded subset; 0: all)");
  v.field("val_subset", val_subset, "evaluate on this many test images (a fixed seeded subset; 0: all)");
  v.field("seed", seed, "seed of the shuffles, augmentations, subsets and model initialisation");
  v.field("mean", mean, "per-channel mean of (x/255) (empty: Fashion-MNIST's 0.2860, or ImageNet's)");
  v.field("std", std, "per-channel std of (x/255) (empty: Fashion-MNIST's 0.3530, or ImageNet's)");
  v.field("crop_pct", crop_pct, "image_folder eval transform: resize to img_size / crop_pct, center crop");
  v.field("interpolation", interpolation, "image_folder resize filter: bicubic | bilinear");
  v.field("train_augment", train_augment,
          "training-split augmentation: random-resized crop + horizontal flip (image_folder), and the RandAugment "
          "and random erasing below (both kinds); false: none");
  v.field("randaugment", randaugment,
          "RandAugment as timm's string, e.g. rand-m9-mstd0.5-inc1 (m magnitude 0..10, n ops, mstd magnitude std, "
          "mmax, p op probability, inc 0|1); empty: off");
  v.field("random_erasing", random_erasing,
          "probability of erasing a random box of each training image with N(0,1) noise (timm 'pixel' mode), 0..1");
  v.field("max_image_pixels", max_image_pixels,
          "image_folder: a JPEG whose header claims more pixels (width × height) is a bad image (PIL's limit)");
  v.field("on_bad_image", on_bad_image,
          "image_folder: error (stop naming the file) | skip (log it once, count it, use the next image) for an "
          "unreadable, oversized, truncated or corrupt JPEG");
}

std::optional<data::RandAugmentConfig> DataConfig::rand_augment() const {
  if (randaugment.empty() || !train_augment) return std::nullopt;
  return data::parse_rand_augment(randaugment);
}

void DataConfig::validate(const std::string& path) const {
  require(kind == "fashion_mnist" || kind == "image_folder", path, "kind",
          "must be fashion_mnist or image_folder, got '" + kind + "'");
  require(!root.empty(), path, "root", "must name a folder");
  // Upper bounds: a batch of 65536 224×224 RGB images is 39 GB of floats, beyond any device; a loader holds
  // prefetch + workers batches at once; subsets index int32-sized datasets.
  require(batch_size > 0 && batch_size <= kMaxBatch, path, "batch_size",
          fmt::format("must be in 1..{}, got {}", kMaxBatch, batch_size));
  require(eval_batch_size > 0 && eval_batch_size <= kMaxBatch, path, "eval_batch_size",
          fmt::format("must be in 1..{}, got {}", kMaxBatch, eval_batch_size));
  require(workers >= 0 && workers <= 64, path, "workers", "must be in 0..64, got " + std::to_string(workers));
  require(prefetch > 0 && prefetch <= 64, path, "prefetch", "must be in 1..64, got " + std::to_string(prefetch));
  require(train_subset >= 0 && train_subset <= INT32_MAX, path, "train_subset",
          fmt::format("must be in 0..{} (0: all), got {}", INT32_MAX, train_subset));
  require(val_subset >= 0 && val_subset <= INT32_MAX, path, "val_subset",
          fmt::format("must be in 0..{} (0: all), got {}", INT32_MAX, val_subset));
  require(seed >= 0, path, "seed", "must be >= 0");
  require(mean.size() == std.size(), path, "std", "needs as many values as mean");
  for (double s : std) require(s > 0, path, "std", "values must be positive");
  require(crop_pct > 0 && crop_pct <= 1, path, "crop_pct", "must be in (0, 1]");
  require(interpolation == "bicubic" || interpolation == "bilinear", path, "interpolation",
          "must be bicubic or bilinear, got '" + interpolation + "'");
  if (!randaugment.empty()) {
    try {
      data::parse_rand_augment(randaugment);
    } catch (const std::invalid_argument& e) {
      throw config::Error(join(path, "randaugment"), e.what());
    }
  }
  require(random_erasing >= 0 && random_erasing <= 1, path, "random_erasing",
          "must be in [0, 1], got " + fmt::format("{}", random_erasing));
  require(max_image_pixels > 0 && max_image_pixels <= (int64_t(1) << 40), path, "max_image_pixels",
          "must be in 1..2^40, got " + std::to_string(max_image_pixels));
  require(on_bad_image == "error" || on_bad_image == "skip", path, "on_bad_image",
          "must be error or skip, got '" + on_bad_image + "'");
}

void ModelConfig::visit(config::Visitor& v) {
  v.field("preset", preset, "model preset (models::preset_names(): vit_mnist_tiny, deit_tiny_patch16_224, ...)");
  v.field("num_classes", num_classes, "override the preset's classes (0: keep; else must match the data)");
  v.field("img_size", img_size, "override the preset's input size (0: keep)");
  v.field("in_chans", in_chans, "override the preset's input channels (0: keep)");
  v.field("checkpoint", checkpoint, "full-precision safetensors weights (timm export or mnq's); empty: pretrain");
  v.field("drop_path", drop_path,
          "stochastic depth: per-sample drop rate of the residual branches, rising linearly from 0 (first block) "
          "to this (last), in training only; 0..1 (exclusive)");
  v.section("pretrain", pretrain, "train the FP model first (when no checkpoint); cached in <output.dir>/fp");
}

void ModelConfig::validate(const std::string& path) const {
  require(!preset.empty(), path, "preset", "must name a preset");
  require(num_classes >= 0, path, "num_classes", "must be >= 0 (0: the preset's)");
  require(img_size >= 0, path, "img_size", "must be >= 0 (0: the preset's)");
  require(in_chans >= 0, path, "in_chans", "must be >= 0 (0: the preset's)");
  require(drop_path >= 0 && drop_path < 1, path, "drop_path", "must be in [0, 1)");
  require(checkpoint.empty() || config::is_file(checkpoint), path, "checkpoint",
          "no such file '" + checkpoint + "'");
  pretrain.validate(join(path, "pretrain"));
  require(!checkpoint.empty() || pretrain.epochs > 0, path, "checkpoint",
          "is empty and pretrain.epochs is 0: give FP weights or pretraining epochs");
}

void RunConfig::visit(config::Visitor& v) {
  v.field("name", name, "run name (its folder under output.dir; a row of the results table)");
  v.field("bits", bits, "W/A bit-width (SPEC §6), 2..16");
  v.field("plan", plan,
          "mixed (the analyzer's plan, analyze.mode) | mixed_paper | mixed_isolated (that mode's plan, from the "
          "same analysis) | searched (the plan search from the uniform and analyzer plans, analysis/search.h) | "
          "ivit | ibert | fqvit | a plan file");
}

void RunConfig::validate(const std::string& path) const {
  require(!name.empty() && name.find_first_of("/\\ ") == std::string::npos && name != "fp" && name[0] != '.', path,
          "name", "must be a non-empty folder name without '/', spaces or a leading '.', and not 'fp'");
  require(bits >= 2 && bits <= 16, path, "bits", "must be in 2..16, got " + std::to_string(bits));
  check_plan(plan, path, "plan");
}

void QuantConfig::visit(config::Visitor& v) {
  v.field("bits", bits, "W/A bit-width of the run when `compare` is empty, 2..16");
  v.field("plan", plan,
          "plan of the run when `compare` is empty: mixed | mixed_paper | mixed_isolated | ivit | ibert | fqvit | a "
          "plan file");
  v.field("calib_batches", calib_batches, "training batches that set the activation ranges before QAT");
}

void QuantConfig::validate(const std::string& path) const {
  require(bits >= 2 && bits <= 16, path, "bits", "must be in 2..16, got " + std::to_string(bits));
  check_plan(plan, path, "plan");
  require(calib_batches > 0, path, "calib_batches", "must be positive");
}

void OutputConfig::visit(config::Visitor& v) {
  v.field("dir", dir, "run folder: config, plans, metrics, checkpoints, results.md / results.json");
}

void OutputConfig::validate(const std::string& path) const { require(!dir.empty(), path, "dir", "must name a folder"); }

void JobConfig::visit(config::Visitor& v) {
  v.section("data", data, "dataset and loader");
  v.section("model", model, "full-precision model");
  v.section("quant", quant, "quantization (the single run when `compare` is empty) and calibration");
  v.section("train", train, "QAT of every run (SPEC §8 defaults)");
  v.list("compare", compare, "runs compared in one job, each from the same FP weights (empty: one run from quant)");
  v.section("analyze", analyze, "the sensitivity analyzer of `plan: mixed` runs (candidates, calibration batches, mode)");
  v.section("output", output, "where results go");
  v.field("threads", threads, "torch intra-op threads (0: torch's default)");
  v.field("device", device, "auto (CUDA when available) | cpu | cuda: where the models train and evaluate");
  v.field("seeds", seeds,
          "repeat the whole job once per seed (replacing data.seed), each in <output.dir>/seed<s>, and pool the "
          "results over seeds (mean, spread, stratified paired tests); empty: one job with data.seed");
  v.section("dist", dist, "data-parallel jobs on several processes (torchrun)");
}

void JobConfig::validate(const std::string& path) const {
  data.validate(join(path, "data"));
  model.validate(join(path, "model"));
  quant.validate(join(path, "quant"));
  train.validate(join(path, "train"));
  require(train.epochs > 0, path, "train.epochs", "must be positive (the QAT schedule spans it)");
  std::set<std::string> names;
  for (size_t i = 0; i < compare.size(); ++i) {
    const std::string p = join(path, "compare") + "." + std::to_string(i);  // config.h's list paths
    compare[i].validate(p);
    require(names.insert(compare[i].name).second, p, "name", "duplicate run name '" + compare[i].name + "'");
  }
  analyze.validate(join(path, "analyze"));
  auto check_run = [&](int64_t bits, const std::string& plan, const std::string& p) {
    // The isolated ranking and the plan search (which starts from it) need the isolated scores.
    require(analyze.isolated != "false" || (plan != "mixed_isolated" && plan != "searched"), p, "plan",
            "'" + plan + "' needs the isolated scores: analyze.isolated is false");
    check_run_bits(bits, plan, analyze, p);
  };
  if (compare.empty()) check_run(quant.bits, quant.plan, join(path, "quant"));
  for (size_t i = 0; i < compare.size(); ++i) {
    check_run(compare[i].bits, compare[i].plan, join(path, "compare") + "." + std::to_string(i));
  }
  require(device == "auto" || device == "cpu" || device == "cuda", path, "device",
          "must be auto, cpu or cuda, got '" + device + "'");
  output.validate(join(path, "output"));
  dist.validate(join(path, "dist"));
  require(threads >= 0 && threads <= config::max_threads(), path, "threads",
          fmt::format("must be in 0..{} (4 per hardware thread, at least 64; 0: torch's default), got {}",
                      config::max_threads(), threads));
  std::set<int64_t> seen;
  for (const int64_t s : seeds) {
    require(s >= 0, path, "seeds", "values must be >= 0, got " + std::to_string(s));
    require(seen.insert(s).second, path, "seeds", "seed " + std::to_string(s) + " is listed twice");
  }
  require(seeds.size() <= 1000, path, "seeds", "at most 1000 seeds");
}

std::vector<RunConfig> JobConfig::runs() const {
  if (!compare.empty()) return compare;
  RunConfig r;
  r.bits = quant.bits;
  r.plan = quant.plan;
  r.name = fmt::format("w{}_{}", quant.bits,
                       is_plan_method(quant.plan) ? quant.plan : std::filesystem::path(quant.plan).stem().string());
  return {r};
}

}  // namespace train
}  // namespace mnq
