// The trainer end to end on a tiny ViT and a small synthetic Fashion-MNIST-shaped dataset: a two-epoch job
// (pretraining + QAT) writes its run folder and learns; a job stopped after an epoch and resumed ends with the
// same weights and metrics as an uninterrupted one; a NaN loss stops with a clear error and keeps the last
// good checkpoint; `plan: mixed` runs the analyzer; the learning-rate schedule and Wilson interval.
#include <torch/torch.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <functional>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "csrc/config/config.h"
#include "csrc/data/fashion_mnist.h"
#include "csrc/models/device.h"
#include "csrc/models/op_counter.h"
#include "csrc/models/plan.h"
#include "csrc/models/presets.h"
#include "csrc/models/weights.h"
#include "csrc/train/datasets.h"
#include "csrc/train/job.h"
#include "csrc/train/log.h"
#include "csrc/train/metrics.h"
#include "csrc/train/trainer.h"
#include "csrc/util/atomic_file.h"
#include "train_test_util.h"

using namespace mnq;
using namespace mnq::train;
using mnq_test::TempDir;

namespace {

JobConfig tiny_job(const std::string& data_dir, const std::string& out_dir) {
  JobConfig c;
  c.data.root = data_dir;
  c.data.batch_size = 16;
  c.data.eval_batch_size = 64;
  c.data.workers = 1;
  c.data.seed = 3;
  c.model.preset = "vit_mnist_tiny";
  c.model.pretrain.epochs = 2;
  c.model.pretrain.lr = 2e-3;
  c.model.pretrain.warmup_steps = 2;
  c.train.epochs = 2;
  c.train.lr = 1e-4;
  c.quant.calib_batches = 2;
  c.compare = {RunConfig{"ivit8", 8, "ivit"}};
  c.output.dir = out_dir;
  c.threads = 1;
  // The SPEC §8 augmentations (the defaults) off: these tests check learning and resuming on the plain data;
  // "every augmentation on" below resumes with them.
  c.data.randaugment = "";
  c.data.random_erasing = 0;
  c.model.drop_path = 0;
  for (TrainConfig* t : {&c.model.pretrain, &c.train}) t->mixup = t->cutmix = 0;
  return c;
}

// A split of write_synthetic_fashion's files, normalised with mean = std = 0.3.
std::shared_ptr<data::FashionMnist> synthetic_split(const std::string& root, const std::string& split) {
  return std::make_shared<data::FashionMnist>(root, split, std::vector<double>{0.3}, std::vector<double>{0.3});
}

// The setup of the single-stage tests: quiet log, one torch thread, a temporary folder with synthetic data.
struct SyntheticData {
  TempDir dir;
  std::shared_ptr<data::FashionMnist> train, test;
  SyntheticData(const std::string& tag, int64_t n_train, int64_t n_test, uint64_t seed) : dir(tag) {
    log::set_quiet(true);
    at::set_num_threads(1);
    mnq_test::write_synthetic_fashion(dir / "data", n_train, n_test, seed);
    train = synthetic_split(dir / "data", "train");
    test = synthetic_split(dir / "data", "test");
  }
};

std::map<std::string, at::Tensor> tensors(const std::string& path) {
  std::map<std::string, at::Tensor> out;
  for (auto& [k, v] : models::read_safetensors(path)) out[k] = v;
  return out;
}

}  // namespace

TEST_CASE("train: a two-epoch job writes its run folder and learns", "[train]") {
  log::set_quiet(true);
  TempDir dir("trainjob");
  mnq_test::write_synthetic_fashion(dir / "data", 640, 100, 11);
  const JobConfig c = tiny_job(dir / "data", dir / "run");
  // A job pins full FP32 whatever it started with (a plan or a QAT run must not depend on TF32 GEMMs/convs).
  at::globalContext().setAllowTF32CuDNN(true);
  at::globalContext().setFloat32MatmulPrecision("medium");
  REQUIRE(!models::full_fp32_pinned());
  const JobResult r = run_job(c, {false, -1, true});
  CHECK(models::full_fp32_pinned());
  CHECK_THAT(util::read_file(dir / "run/train.log"), Catch::Contains("full FP32 (TF32 off in cuBLAS and cuDNN"));
  REQUIRE(r.finished);
  REQUIRE(r.rows.size() == 2);
  CHECK(r.rows[0].name == "fp");
  CHECK(r.rows[1].name == "ivit8");
  CHECK(r.rows[1].bits == 8);
  CHECK(r.rows[0].metrics.n == 100);
  CHECK(r.rows[0].epochs == 2);
  // Ten square positions are easy: far above chance (10 %) after two short epochs.
  CHECK(r.rows[0].metrics.top1 > 0.3);
  CHECK(r.rows[1].metrics.top1 > 0.3);
  for (const char* f : {"config.yaml", "train.log", "results.md", "results.json", "fp/model.safetensors",
                        "fp/checkpoint.safetensors", "fp/metrics.csv", "fp/metrics.jsonl", "ivit8/plan.yaml",
                        "ivit8/model.safetensors", "ivit8/best.safetensors", "ivit8/metrics.csv"}) {
    INFO(f);
    CHECK(std::filesystem::exists(dir / ("run/" + std::string(f))));
  }
  for (const RunResult& row : r.rows) {
    INFO(row.name);
    REQUIRE(row.metrics.hits.size() == 100);
    CHECK(std::count(row.metrics.hits.begin(), row.metrics.hits.end(), 1) == std::lround(100 * row.metrics.top1));
  }
  const auto json = nlohmann::json::parse(util::read_file(dir / "run/results.json"));
  const auto& runs = json.at("runs");
  REQUIRE(runs.size() == 2);
  CHECK(runs[1]["top1"].get<double>() == r.rows[1].metrics.top1);
  CHECK(runs[1]["top1_ci95"][0].get<double>() < runs[1]["top1"].get<double>());
  REQUIRE(json.at("comparisons").size() == 1);  // ivit8 vs fp
  const auto& vs_fp = json["comparisons"][0];
  CHECK(vs_fp["available"] == true);
  CHECK(vs_fp["both_right"].get<int64_t>() + vs_fp["only_a_right"].get<int64_t>() ==
        std::lround(100 * r.rows[1].metrics.top1));
  const std::string md = util::read_file(dir / "run/results.md");
  CHECK_THAT(md, Catch::Contains("| ivit8 | 8 | ivit |") && Catch::Contains("Test images: 100"));
  CHECK_THAT(md, Catch::Contains("## Paired comparisons") && Catch::Contains("| ivit8 | fp |") &&
                     Catch::Contains("- W8: best ivit8"));
  const std::string csv = util::read_file(dir / "run/ivit8/metrics.csv");
  CHECK(std::count(csv.begin(), csv.end(), '\n') == 3);  // header + 2 epochs
  CHECK(util::read_file(dir / "run/ivit8/plan.yaml").find("all: ivit") != std::string::npos);

  // A second run of the job reuses the pretrained FP model (its stage is finished) and redoes the QAT run.
  const JobResult again = run_job(c, {false, -1, true});
  CHECK(again.rows[0].metrics.top1 == r.rows[0].metrics.top1);
  CHECK(again.rows[0].wall_s == r.rows[0].wall_s);
  CHECK(again.rows[1].metrics.top1 == r.rows[1].metrics.top1);
  CHECK(again.rows[0].metrics.hits == r.rows[0].metrics.hits);
  CHECK(again.rows[1].metrics.hits == r.rows[1].metrics.hits);

  // A run folder of an older version has no per-image results in its checkpoints: resuming it still writes the
  // table, with the paired test reported as unavailable.
  models::NamedTensors old;
  for (auto& [k, v] : models::read_safetensors(dir / "run/fp/checkpoint.safetensors")) {
    if (k != "eval.hits") old.emplace_back(k, v);
  }
  models::write_safetensors(dir / "run/fp/checkpoint.safetensors", old);
  const JobResult resumed = run_job(c, {true, -1, true});
  REQUIRE(resumed.finished);
  CHECK(resumed.rows[0].metrics.hits.empty());
  CHECK(resumed.rows[0].metrics.top1 == r.rows[0].metrics.top1);
  CHECK(resumed.rows[1].metrics.hits == r.rows[1].metrics.hits);
  CHECK_THAT(util::read_file(dir / "run/results.md"), Catch::Contains("| ivit8 | fp |") &&
                                                    Catch::Contains("n/a (fp has no per-image results") &&
                                                    Catch::Contains("vs FP the test is unavailable"));
  CHECK(nlohmann::json::parse(util::read_file(dir / "run/results.json"))["comparisons"][0]["p"].is_null());
}

TEST_CASE("train: stopping and resuming gives the uninterrupted result", "[train]") {
  log::set_quiet(true);
  TempDir dir("trainresume");
  mnq_test::write_synthetic_fashion(dir / "data", 192, 64, 12);
  const JobResult full = run_job(tiny_job(dir / "data", dir / "full"), {false, -1, true});
  REQUIRE(full.finished);

  const JobConfig c = tiny_job(dir / "data", dir / "parts");
  const JobResult p1 = run_job(c, {false, 1, true});  // stops inside pretraining
  CHECK(!p1.finished);
  const JobResult p2 = run_job(c, {true, 2, true});  // finishes pretraining, one QAT epoch
  CHECK(!p2.finished);
  REQUIRE(p2.rows.size() == 2);
  CHECK(p2.rows[1].epochs == 1);
  const JobResult p3 = run_job(c, {true, -1, true});
  REQUIRE(p3.finished);
  REQUIRE(p3.rows.size() == full.rows.size());
  for (size_t i = 0; i < full.rows.size(); ++i) {
    INFO(full.rows[i].name);
    CHECK(p3.rows[i].metrics.top1 == full.rows[i].metrics.top1);
    CHECK(p3.rows[i].metrics.top5 == full.rows[i].metrics.top5);
    CHECK(p3.rows[i].metrics.loss == full.rows[i].metrics.loss);
    CHECK(p3.rows[i].metrics.hits.size() == 64);
    CHECK(p3.rows[i].metrics.hits == full.rows[i].metrics.hits);  // the FP row's come from its checkpoint
  }
  // The paired comparisons (no wall times in them) are the same, number for number.
  const auto paired = [](const std::string& md) { return md.substr(md.find("## Paired comparisons")); };
  CHECK(paired(util::read_file(dir / "parts/results.md")) == paired(util::read_file(dir / "full/results.md")));
  const auto a = tensors(dir / "full/ivit8/model.safetensors"), b = tensors(dir / "parts/ivit8/model.safetensors");
  REQUIRE(a.size() == b.size());
  for (const auto& [k, v] : a) {
    INFO(k);
    REQUIRE(b.count(k));
    CHECK(at::equal(v, b.at(k)));
  }

  // A resume whose job changed what a stage was trained for is refused before anything is written; the run folder
  // keeps describing what it holds. A temporary file of a killed writer is removed when the job (re)starts.
  const std::string config_yaml = util::read_file(dir / "parts/config.yaml");
  const std::string plan_yaml = util::read_file(dir / "parts/ivit8/plan.yaml");
  JobConfig other = c;
  other.compare[0].bits = 6;
  CHECK_THROWS_WITH(run_job(other, {true, -1, true}),
                    Catch::Contains("ivit8/checkpoint.safetensors: was trained for bits = 8, this job asks for 6"));
  other = c;
  other.compare[0].plan = "ibert";
  CHECK_THROWS_WITH(run_job(other, {true, -1, true}),
                    Catch::Contains("was trained for plan.all = \"ivit\", this job asks for \"ibert\""));
  other = c;
  other.model.drop_path = 0.2;
  CHECK_THROWS_WITH(run_job(other, {true, -1, true}),
                    Catch::Contains("fp/checkpoint.safetensors: was trained for model.drop_path = 0.0, this job "
                                    "asks for 0.2; resume refused"));
  CHECK(util::read_file(dir / "parts/config.yaml") == config_yaml);
  CHECK(util::read_file(dir / "parts/ivit8/plan.yaml") == plan_yaml);
  const std::string stale = dir / "parts/ivit8/.model.safetensors.tmp99999999";
  util::write_file_atomic(stale, "partial");
  REQUIRE(run_job(c, {true, -1, true}).finished);
  CHECK(!std::filesystem::exists(stale));
  CHECK_THAT(util::read_file(dir / "parts/train.log"), Catch::Contains("removed 1 temporary file(s) left in"));
}

TEST_CASE("train: with every SPEC §8 augmentation on, stopping and resuming gives the uninterrupted result",
          "[train]") {
  log::set_quiet(true);
  TempDir dir("trainaug");
  mnq_test::write_synthetic_fashion(dir / "data", 96, 32, 16);
  auto job = [&](const std::string& out) {
    JobConfig c = tiny_job(dir / "data", dir / out);
    const JobConfig defaults;  // the SPEC §8 recipe
    c.data.randaugment = defaults.data.randaugment;
    c.data.random_erasing = defaults.data.random_erasing;
    c.model.drop_path = 0.3;  // larger than SPEC's 0.1: some samples of the 4 blocks are dropped
    c.model.pretrain.mixup = c.train.mixup = defaults.train.mixup;
    c.model.pretrain.cutmix = c.train.cutmix = defaults.train.cutmix;
    return c;
  };
  const JobResult full = run_job(job("full"), {false, -1, true});
  REQUIRE(full.finished);
  const std::string yaml = util::read_file(dir / "full/config.yaml");
  CHECK_THAT(yaml, Catch::Contains("randaugment: rand-m9-mstd0.5-inc1") && Catch::Contains("drop_path: 0.3") &&
                       Catch::Contains("cutmix: 1"));
  const JobConfig c = job("parts");
  CHECK(!run_job(c, {false, 1, true}).finished);  // inside pretraining
  CHECK(!run_job(c, {true, 2, true}).finished);   // pretraining done, one QAT epoch
  const JobResult rest = run_job(c, {true, -1, true});
  REQUIRE(rest.finished);
  for (size_t i = 0; i < full.rows.size(); ++i) {
    INFO(full.rows[i].name);
    CHECK(rest.rows[i].metrics.top1 == full.rows[i].metrics.top1);
    CHECK(rest.rows[i].metrics.loss == full.rows[i].metrics.loss);
  }
  const auto a = tensors(dir / "full/ivit8/model.safetensors"), b = tensors(dir / "parts/ivit8/model.safetensors");
  REQUIRE(a.size() == b.size());
  for (const auto& [k, v] : a) {
    INFO(k);
    CHECK(at::equal(v, b.at(k)));
  }
  // The augmentations changed the training: the FP weights differ from a run without them.
  const JobResult plain = run_job(tiny_job(dir / "data", dir / "plain"), {false, -1, true});
  REQUIRE(plain.finished);
  CHECK(!at::equal(tensors(dir / "plain/fp/model.safetensors").at("head.weight"),
                   tensors(dir / "full/fp/model.safetensors").at("head.weight")));
}

TEST_CASE("train: a time budget stops mid-epoch; resuming without it gives the uninterrupted result", "[train]") {
  log::set_quiet(true);
  at::set_num_threads(1);  // as tiny_job: the tests share a small machine (see configs/fashion_mnist.yaml)
  TempDir dir("trainbudget");
  mnq_test::write_synthetic_fashion(dir / "data", 96, 32, 15);
  auto train_set = synthetic_split(dir / "data", "train");
  auto val_set = synthetic_split(dir / "data", "test");
  const data::Loader train(train_set, {16, true, true, 1, 2, 4});
  const data::Loader val(val_set, {32, false, false, 0, 2, 4});
  TrainConfig cfg;
  cfg.epochs = 2;
  cfg.lr = 1e-3;
  auto fresh = [] {
    at::manual_seed(0);
    return models::create_fp("vit_mnist_tiny");
  };
  const models::Model a = fresh();
  const StageResult full = fit(a, cfg, train, val, {"a", dir / "a", false, -1});
  REQUIRE(full.state.finished);

  const models::Model b = fresh();
  TrainConfig budget = cfg;
  budget.time_budget_s = 1e-9;  // spent after the first step
  const StageResult cut = fit(b, budget, train, val, {"b", dir / "b", false, -1});
  CHECK(cut.state.finished);
  CHECK(cut.state.budget_spent);
  CHECK(cut.state.epoch == 0);
  CHECK(cut.state.batch == 1);
  CHECK(cut.state.history.back().at("epoch").get<double>() == Approx(1.0 / 6));
  // The same budget again: nothing left to do. No budget: continue from batch 2 of epoch 1.
  CHECK(fit(b, budget, train, val, {"b", dir / "b", true, -1}).state.batch == 1);
  const models::Model c = fresh();
  const StageResult rest = fit(c, cfg, train, val, {"b", dir / "b", true, -1});
  REQUIRE(rest.state.finished);
  CHECK(rest.state.step == full.state.step);
  CHECK(rest.final.top1 == full.final.top1);
  CHECK(rest.final.loss == full.final.loss);
  const auto wa = tensors(dir / "a/model.safetensors"), wc = tensors(dir / "b/model.safetensors");
  for (const auto& [k, v] : wa) {
    INFO(k);
    CHECK(at::equal(v, wc.at(k)));
  }
}

TEST_CASE("train: the training loop reads no value back per step; losses are read back in batches", "[train]") {
  // An FP model (its layers read nothing back) trained and evaluated for one epoch of 12 steps: the loss, the
  // top-1 hits and the evaluation's metrics stay on the device until one copy per read-back (not counted: a
  // copy, not a scalar read). Before, every step read its loss and hits back (two device syncs on a GPU).
  const SyntheticData d("trainreads", 192, 64, 16);
  const TempDir& dir = d.dir;
  const auto& train_set = d.train;
  const auto& val_set = d.test;
  at::manual_seed(0);
  const models::Model m = models::create_fp("vit_mnist_tiny");
  TrainConfig cfg;
  cfg.epochs = 1;
  cfg.lr = 1e-3;
  const data::Loader train(train_set, {16, true, true, 0, 2, 5});
  const data::Loader val(val_set, {32, false, false, 0, 2, 5});
  StageResult r;
  {
    models::OpCounter reads;
    r = fit(m, cfg, train, val, {"fp", dir / "stage", false, -1});
    CHECK(reads.count() == 0);
  }
  REQUIRE(r.state.finished);
  // The totals read back in batches are the per-step values: the logged loss is finite and the hits consistent.
  const auto& h = r.state.history.back();
  CHECK(h.at("epoch").get<double>() == 1.0);
  CHECK(std::isfinite(h.at("train_loss").get<double>()));
  const double hits = h.at("train_top1").get<double>() * 192;  // 12 steps of 16 images, every one counted once
  CHECK(std::abs(hits - std::round(hits)) < 1e-9);
  CHECK(r.final.hits.size() == 64);
  CHECK(std::count(r.final.hits.begin(), r.final.hits.end(), 1) == std::lround(64 * r.final.top1));
}

TEST_CASE("train: a NaN loss stops the stage and keeps the last good checkpoint", "[train]") {
  log::set_quiet(true);
  at::set_num_threads(1);
  TempDir dir("trainnan");
  mnq_test::write_synthetic_fashion(dir / "data", 64, 32, 13);
  auto good = synthetic_split(dir / "data", "train");
  auto val = synthetic_split(dir / "data", "test");
  // NaN images: a mean of NaN poisons every pixel.
  auto poisoned =
      std::make_shared<data::FashionMnist>(dir / "data", "train", std::vector<double>{NAN}, std::vector<double>{0.3});
  at::manual_seed(0);
  const models::Model m = models::create_fp("vit_mnist_tiny");
  TrainConfig cfg;
  cfg.epochs = 1;
  cfg.lr = 1e-3;
  const data::Loader vl(val, {64, false, false, 0, 2, 0});
  fit(m, cfg, data::Loader(good, {32, true, true, 0, 2, 0}), vl, {"fp", dir / "stage", false, -1});
  cfg.epochs = 2;
  CHECK_THROWS_WITH(fit(m, cfg, data::Loader(poisoned, {32, true, true, 0, 2, 0}), vl, {"fp", dir / "stage", true, -1}),
                    Catch::Contains("loss is NaN") && Catch::Contains("epoch 2 batch 1") &&
                        Catch::Contains("checkpoint.safetensors (epoch 1"));
  torch::optim::AdamW opt(m.module->parameters());
  CHECK(load_checkpoint(dir / "stage/checkpoint.safetensors", *m.module, opt, {nullptr, 2, 32}).epoch == 1);
}

// Divergence (trainer.h): an exploding loss (an FP model at lr 10) or a far too large step after which an op
// refuses the blown-up scales (fqvit at lr 1e30: the weights' norm grew by ~1e31 in one step) stops the stage with
// the divergence error before the epoch is evaluated or saved: checkpoint, best and metrics stay the last good
// epoch's, byte for byte, and no final weights are written.
TEST_CASE("train: a diverging run stops at once and keeps the last good checkpoint and best", "[train]") {
  const SyntheticData d("traindiverge", 64, 32, 17);
  const TempDir& dir = d.dir;
  const data::Loader train(d.train, {16, true, true, 0, 2, 7});
  const data::Loader val(d.test, {32, false, false, 0, 2, 7});
  struct Case {
    std::string name;
    std::function<models::Model()> make;
    double lr;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"fp", [] { return models::create_fp("vit_mnist_tiny"); }, 10.0, "the training loss exploded to"},
      // the loss explodes, or the next forward's softmax refuses its scale, whichever shows first
      {"ibert", [] { return models::create_quant("vit_mnist_tiny", {8, models::Plan::uniform("ibert")}); }, 10.0,
       "Try a lower lr"},
      {"fqvit", [] { return models::create_quant("vit_mnist_tiny", {8, models::Plan::uniform("fqvit")}); }, 1e30,
       "the weights' norm grew ×"},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    at::manual_seed(0);
    const models::Model m = c.make();
    const std::string stage = dir / c.name;
    TrainConfig cfg;
    cfg.epochs = 1;
    cfg.lr = 1e-4;
    cfg.mixup = cfg.cutmix = 0;
    REQUIRE(fit(m, cfg, train, val, {c.name, stage, false, -1}).state.finished);
    std::map<std::string, std::string> before;
    for (const char* f : {"checkpoint.safetensors", "best.safetensors", "metrics.csv", "metrics.jsonl"}) {
      before[f] = util::read_file(stage + "/" + f);
    }
    std::filesystem::remove(stage + "/model.safetensors");
    cfg.epochs = 3;
    cfg.lr = c.lr;
    CHECK_THROWS_WITH(fit(m, cfg, train, val, {c.name, stage, true, -1}),
                      Catch::StartsWith(c.name + ": diverged at epoch 2 batch ") && Catch::Contains(c.says) &&
                          Catch::Contains("the last good checkpoint is " + stage + "/checkpoint.safetensors (epoch 1"));
    for (const auto& [f, bytes] : before) {
      INFO(f);
      CHECK(util::read_file(stage + "/" + f) == bytes);
    }
    CHECK(!std::filesystem::exists(stage + "/model.safetensors"));
  }
  CHECK(divergence_bound(10) == Approx(10 * std::log(10.0)));
  CHECK(divergence_bound(1) == Approx(10 * std::log(2.0)));
}

TEST_CASE("train: plan mixed runs the analyzer once per bit-width and trains the mixed models", "[train]") {
  log::set_quiet(true);
  TempDir dir("trainmixed");
  mnq_test::write_synthetic_fashion(dir / "data", 64, 32, 14);
  JobConfig c = tiny_job(dir / "data", dir / "run");
  c.model.pretrain.epochs = 1;
  c.analyze.calib_batches = 2;
  c.analyze.progress = false;
  c.analyze.mode = "paper";
  c.compare = {RunConfig{"mixed6", 6, "mixed"}, RunConfig{"ivit6", 6, "ivit"}, RunConfig{"iso6", 6, "mixed_isolated"}};
  const JobResult r = run_job(c, {false, -1, true});
  REQUIRE(r.finished);
  REQUIRE(r.rows.size() == 4);  // FP, mixed6, ivit6, iso6
  const models::Plan plan = models::Plan::load(dir / "run/plans/mixed_w6.yaml");
  CHECK(models::Plan::load(dir / "run/mixed6/plan.yaml") == plan);
  CHECK(models::Plan::load(dir / "run/plans/mixed_paper_w6.yaml") == plan);  // analyze.mode paper
  // mixed_isolated: the isolated ranking of the same analysis (one report per bit-width).
  const auto report = nlohmann::json::parse(std::ifstream(dir / "run/plans/mixed_w6_report.json"));
  const models::Plan isolated = models::Plan::load(dir / "run/plans/mixed_isolated_w6.yaml");
  CHECK(models::Plan::load(dir / "run/iso6/plan.yaml") == isolated);
  const auto iso_methods = isolated.resolve(models::vit_layer_names(models::vit_preset(c.model.preset)));
  for (const auto& layer : report.at("layers")) {
    INFO(layer.dump());
    CHECK(iso_methods.at(layer.at("layer").get<std::string>()) == layer.at("chosen_isolated").get<std::string>());
  }
  const auto methods = plan.resolve(models::vit_layer_names(models::vit_preset(c.model.preset)));
  for (const auto& [layer, method] : methods) {
    INFO(layer);
    if (*models::layer_op_type(layer) == models::OpType::kGelu) CHECK(method != "fqvit");  // not a GELU candidate
  }
  CHECK(std::filesystem::exists(dir / "run/plans/mixed_w6_report.csv"));
  CHECK(std::filesystem::exists(dir / "run/plans/mixed_w6_report.json"));
}

// The shipped full-size job (configs/imagenet_deit_tiny.yaml: DeiT-Tiny at 224, SPEC §8's recipe with every
// augmentation) on a generated two-class JPEG folder and a random FP checkpoint, only the paths, sizes and epochs
// overridden: it runs end to end, a uniform and a mixed run (the analyzer on DeiT), and writes its table.
TEST_CASE("train: the ImageNet recipe config runs on a tiny JPEG folder", "[train]") {
  log::set_quiet(true);
  TempDir dir("trainimagenet");
  for (const std::string split : {"train", "val"}) {
    for (const std::string cls : {"n01", "n02"}) {
      std::filesystem::create_directories(dir / (split + "/" + cls));
      for (int i = 0; i < (split == "train" ? 4 : 2); ++i) {
        std::vector<uint8_t> px(size_t(48 * 40 * 3));
        for (size_t j = 0; j < px.size(); ++j) {
          px[j] = uint8_t((cls == "n01" ? 40 : 200) + (j * 7 + size_t(i) * 13) % 50);
        }
        mnq_test::write_jpeg(dir / (split + "/" + cls + "/img" + std::to_string(i) + ".JPEG"), px, 48, 40, 3);
      }
    }
  }
  // As `mnq-train --config configs/imagenet_deit_tiny.yaml --set ...` (the checkpoint is written below, before
  // run_job checks it; from_text validates only after every override).
  at::manual_seed(0);
  models::save_weights(*models::create_fp("deit_tiny_patch16_224", {.num_classes = 2}).module, dir / "fp.safetensors");
  std::ifstream file(MNQ_SOURCE_DIR "/configs/imagenet_deit_tiny.yaml");
  JobConfig c = config::from_text<JobConfig>(
      std::string(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>()), "imagenet_deit_tiny.yaml",
      {"data.root=" + dir.path, "data.batch_size=4", "data.eval_batch_size=4", "data.workers=1",
       "model.num_classes=2", "model.checkpoint=" + (dir / "fp.safetensors"), "train.epochs=1",
       "analyze.calib_batches=1", "analyze.progress=false", "output.dir=" + (dir / "run"), "threads=1"});
  REQUIRE(c.data.randaugment == "rand-m9-mstd0.5-inc1");  // the recipe itself is kept
  REQUIRE(c.model.drop_path == 0.1);
  c.compare = {c.compare.at(1), c.compare.at(7)};  // w8_ivit, w6_mixed
  REQUIRE(c.compare[1].plan == "mixed");
  const JobResult r = run_job(c, {false, -1, true});
  REQUIRE(r.finished);
  REQUIRE(r.rows.size() == 3);  // fp, w8_ivit, w6_mixed
  for (const auto& row : r.rows) {
    INFO(row.name);
    CHECK(row.metrics.n == 4);
    CHECK(std::isfinite(row.metrics.loss));
  }
  CHECK(std::filesystem::exists(dir / "run/plans/mixed_w6.yaml"));
  CHECK(std::filesystem::exists(dir / "run/results.md"));
}

// The trainer on a GPU (runs in scripts/gpu_check.sh's ctest; a CPU machine reports it as skipped): pretraining,
// the analyzer and QAT on CUDA with every SPEC §8 augmentation (Mixup on the device, drop-path masks from the CPU
// generator), stopped and resumed. CUDA kernels are bit-exact, but cuBLAS/cuDNN float reductions need not be
// run-to-run identical, so the resumed run is compared with tolerances, and the CUDA FP weights are checked to
// evaluate on the CPU like on the GPU.
TEST_CASE("train: device cuda trains, analyzes and resumes on the GPU", "[train][cuda]") {
  if (!at::hasCUDA()) {
    WARN("no usable GPU: the CUDA trainer test is skipped");
    return;
  }
  log::set_quiet(true);
  TempDir dir("traincuda");
  mnq_test::write_synthetic_fashion(dir / "data", 96, 64, 17);
  auto job = [&](const std::string& out) {
    JobConfig c = tiny_job(dir / "data", dir / out);
    const JobConfig defaults;  // the SPEC §8 recipe
    c.device = "cuda";
    c.data.randaugment = defaults.data.randaugment;
    c.data.random_erasing = defaults.data.random_erasing;
    c.model.drop_path = 0.2;
    c.model.pretrain.mixup = c.train.mixup = defaults.train.mixup;
    c.model.pretrain.cutmix = c.train.cutmix = defaults.train.cutmix;
    c.analyze.calib_batches = 2;
    c.analyze.progress = false;
    c.compare = {RunConfig{"ivit8", 8, "ivit"}, RunConfig{"mixed6", 6, "mixed"}};
    return c;
  };
  const JobResult full = run_job(job("full"), {false, -1, true});
  REQUIRE(full.finished);
  REQUIRE(full.rows.size() == 3);
  for (const auto& row : full.rows) {
    INFO(row.name);
    CHECK(std::isfinite(row.metrics.loss));
    CHECK(row.metrics.hits.size() == 64);
  }
  const JobConfig c = job("parts");
  CHECK(!run_job(c, {false, 1, true}).finished);
  CHECK(!run_job(c, {true, 2, true}).finished);
  const JobResult rest = run_job(c, {true, -1, true});
  REQUIRE(rest.finished);
  for (size_t i = 0; i < full.rows.size(); ++i) {
    INFO(full.rows[i].name);
    CHECK(std::abs(rest.rows[i].metrics.top1 - full.rows[i].metrics.top1) <= 0.1);
    CHECK(std::abs(rest.rows[i].metrics.loss - full.rows[i].metrics.loss) <= 0.05 * full.rows[i].metrics.loss);
  }
  // The saved FP weights (written from the GPU) give the GPU's top-1 on the CPU, up to float reduction order.
  models::Model fp = models::create_fp(c.model.preset);
  models::load_weights(*fp.module, dir / "full/fp/model.safetensors");
  const auto splits = make_datasets(c.data, model_shape(c.model));
  const data::Loader val(splits.val, {64, false, false, 0, 1, 0});
  CHECK(std::abs(evaluate(fp, val, "cpu eval").top1 - full.rows[0].metrics.top1) <= 2.0 / 64);
}

TEST_CASE("train: device cuda without a GPU is a clear error", "[train]") {
  if (at::hasCUDA()) return;  // the CUDA path itself runs in scripts/gpu_check.sh's ctest
  log::set_quiet(true);
  TempDir dir("traindevice");
  mnq_test::write_synthetic_fashion(dir / "data", 64, 32, 14);
  JobConfig c = tiny_job(dir / "data", dir / "run");
  c.device = "cuda";
  CHECK_THROWS_WITH(run_job(c, {false, -1, true}), Catch::Contains("device") && Catch::Contains("no usable GPU"));
}

TEST_CASE("train: learning-rate schedule and Wilson interval", "[train]") {
  TrainConfig c;
  c.lr = 1e-3;
  c.lr_end_div = 15;
  CHECK(learning_rate(c, 0, 100) == Approx(1e-3));
  CHECK(learning_rate(c, 50, 100) == Approx((1e-3 + 1e-3 / 15) / 2));
  CHECK(learning_rate(c, 100, 100) == Approx(1e-3 / 15));
  c.warmup_steps = 10;
  CHECK(learning_rate(c, 0, 100) == Approx(1e-4));
  CHECK(learning_rate(c, 10, 100) == Approx(1e-3));
  const Interval w = wilson_interval(0.5, 100);
  CHECK(w.lo == Approx(0.4038).margin(1e-4));
  CHECK(w.hi == Approx(0.5962).margin(1e-4));
  const Interval z = wilson_interval(1.0, 50);
  CHECK(z.hi == 1.0);
  CHECK(z.lo == Approx(0.9287).margin(1e-4));
}
