// The trainer's crash consistency on tiny jobs: a job stopped after an epoch (plain, with every SPEC §8
// augmentation, or by a time budget) and resumed ends with the uninterrupted run's weights and metrics; a NaN or
// diverging loss stops the stage at once and keeps the last good checkpoint and best.
#include "train_job_fixtures.h"

using namespace mnq;
using namespace mnq::train;
using mnq_test::SyntheticData;
using mnq_test::synthetic_split;
using mnq_test::TempDir;
using mnq_test::tensors;
using mnq_test::tiny_job;

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
  CHECK(cut.state.history.back().epoch == Approx(1.0 / 6));
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

