// Seeds as a job key (csrc/jobs/seeds.h): a tiny two-seed job (each seed's folder the single-seed job of that
// seed; stopped and resumed per seed to the same pooled results), and `plan: searched` in a job. The pooled tests'
// statistics are in test_train_stats.cpp.
#include "train_job_fixtures.h"

#include "csrc/jobs/seeds.h"
#include "csrc/train/pooled.h"

using namespace mnq;
using namespace mnq::train;
using mnq_test::TempDir;
using mnq_test::tiny_job;

TEST_CASE("seeds: one job per seed, pooled, resumable per seed", "[train][seeds]") {
  log::set_quiet(true);
  TempDir dir("trainseeds");
  mnq_test::write_synthetic_fashion(dir / "data", 128, 48, 21);
  JobConfig c = tiny_job(dir / "data", dir / "multi");
  c.model.pretrain.epochs = 1;
  c.train.epochs = 1;
  c.compare = {RunConfig{"ivit8", 8, "ivit"}, RunConfig{"ibert8", 8, "ibert"}};
  c.seeds = {3, 5};
  const JobResult full = run_job(c, {false, -1, true});
  REQUIRE(full.finished);
  // Each seed's folder is exactly the single-seed job of that seed.
  JobConfig single = tiny_job(dir / "data", dir / "single5");
  single.model.pretrain.epochs = 1;
  single.train.epochs = 1;
  single.compare = c.compare;
  single.data.seed = 5;
  REQUIRE(run_job(single, {false, -1, true}).finished);
  CHECK(util::read_file(dir / "multi/seed5/results.json") == util::read_file(dir / "single5/results.json"));
  CHECK(util::read_file(dir / "multi/seed3/results.json") != util::read_file(dir / "multi/seed5/results.json"));
  const nlohmann::json pooled = nlohmann::json::parse(util::read_file(dir / "multi/results.json"));
  CHECK(pooled.at("seeds") == nlohmann::json({3, 5}));
  REQUIRE(pooled.at("runs").size() == 3);
  CHECK(pooled.at("runs")[2].at("per_seed").size() == 2);
  CHECK(pooled.at("comparisons").size() == 3);
  CHECK_THAT(util::read_file(dir / "multi/results.md"), Catch::Contains("## Paired comparisons pooled over seeds"));
  // seed_job: the single-seed config of a seed.
  const JobConfig s3 = seed_job(c, 3);
  CHECK(s3.data.seed == 3);
  CHECK(s3.seeds.empty());
  CHECK(s3.output.dir == dir / "multi/seed3");

  // Stopped after 4 epochs (seed 3's two stages and part of seed 5's), then resumed: the same pooled results.
  c.output.dir = dir / "parts";
  const JobResult p1 = run_job(c, {false, 4, true});
  CHECK(!p1.finished);
  CHECK(std::filesystem::exists(dir / "parts/seed5/fp"));
  const nlohmann::json partial = nlohmann::json::parse(util::read_file(dir / "parts/results.json"));
  CHECK(partial.at("runs")[1].at("seeds_done") == 1);
  const JobResult p2 = run_job(c, {true, -1, true});
  REQUIRE(p2.finished);
  CHECK(util::read_file(dir / "parts/results.json") == util::read_file(dir / "multi/results.json"));

  // Config errors name the key.
  c.seeds = {1, 1};
  CHECK_THROWS_WITH(c.validate(""), Catch::Contains("seeds") && Catch::Contains("listed twice"));
  c.seeds = {-2};
  CHECK_THROWS_WITH(c.validate(""), Catch::Contains("seeds"));
}

TEST_CASE("seeds: plan searched in a job runs the plan search once per bit-width", "[train][search]") {
  log::set_quiet(true);
  TempDir dir("trainsearched");
  mnq_test::write_synthetic_fashion(dir / "data", 96, 32, 23);
  JobConfig c = tiny_job(dir / "data", dir / "run");
  c.model.pretrain.epochs = 1;
  c.train.epochs = 1;
  c.analyze.calib_batches = 2;
  c.analyze.progress = false;
  c.analyze.search_evaluations = 7;
  c.analyze.search_holdout_batches = 1;
  c.compare = {RunConfig{"s8", 8, "searched"}, RunConfig{"m8", 8, "mixed"}};
  const JobResult r = run_job(c, {false, -1, true});
  REQUIRE(r.finished);
  const nlohmann::json search = nlohmann::json::parse(util::read_file(dir / "run/plans/searched_w8_search.json"));
  CHECK(search.at("evaluations").get<int64_t>() <= 7);
  const double best = search.at("score").get<double>();
  for (const auto& s : search.at("starts")) CHECK(best <= s.at("score").get<double>());
  CHECK(models::Plan::load(dir / "run/s8/plan.yaml") == models::Plan::load(dir / "run/plans/searched_w8.yaml"));
  // Too few training batches for calibration + held-out: a config error naming the key.
  c.analyze.search_holdout_batches = 100;
  c.output.dir = dir / "run2";
  CHECK_THROWS_WITH(run_job(c, {false, -1, true}), Catch::Contains("analyze.search_holdout_batches"));
}
