// Seeds as a job key (csrc/train/seeds.h) and the pooled paired tests over seeds (stats.h cmh_test,
// stratified_mcnemar; pooled.h): the CMH test against published worked examples, the stratified McNemar test as
// the CMH test of its matched pairs, the pooled table of constructed rows, and a tiny two-seed job (each seed's
// folder the single-seed job of that seed; stopped and resumed per seed to the same results).
#include "train_job_fixtures.h"

#include "csrc/train/pooled.h"
#include "csrc/train/seeds.h"
#include "csrc/train/stats.h"

using namespace mnq;
using namespace mnq::train;
using mnq_test::TempDir;
using mnq_test::tiny_job;

TEST_CASE("stats: Cochran-Mantel-Haenszel test against R's published example", "[train][stats]") {
  // R's ?mantelhaen.test example "Penicillin and rabbits" (Agresti 1990, Categorical Data Analysis, p. 233;
  // R Core, stats::mantelhaen.test documentation): 5 penicillin levels; rows delay none / 1.5 h, columns cured /
  // died. R prints "Mantel-Haenszel X-squared = 3.9286, df = 1, p-value = 0.04747" (continuity corrected).
  // Cross-checked once with statsmodels 0.15 StratifiedTable.test_null_odds: 3.928571428571429, p 0.047472255142918196;
  // uncorrected 5.6571428571428575, p 0.01738442035206622; oddsratio_pooled 7.0.
  const std::vector<Table2x2> rabbits = {{0, 6, 0, 5}, {3, 3, 0, 6}, {6, 0, 2, 4}, {5, 1, 6, 0}, {2, 0, 5, 0}};
  const CmhResult corrected = cmh_test(rabbits, true);
  CHECK(corrected.statistic == Approx(3.9286).epsilon(1e-4));
  CHECK(corrected.p == Approx(0.04747).epsilon(2e-4));
  CHECK(corrected.statistic == Approx(3.928571428571429).epsilon(1e-12));
  CHECK(corrected.p == Approx(0.047472255142918196).epsilon(1e-9));
  CHECK(cmh_test(rabbits, false).p == Approx(0.01738442035206622).epsilon(1e-9));
  // By hand: Σ(n11 − E) = 0 + 1.5 + 2 − 0.5 + 0 = 3, ΣV = 972/1584 + 1152/1584 + 396/1584 = 1.590909…
  const CmhResult plain = cmh_test(rabbits, false);
  CHECK(plain.statistic == Approx(9.0 / (2520.0 / 1584.0)).epsilon(1e-12));
  CHECK(plain.odds_ratio == Approx(3.5 / 0.5).epsilon(1e-12));  // Σ n11·n22/n = 3.5, Σ n12·n21/n = 0.5
  CHECK(cmh_test({}, false).p == 1.0);
  CHECK_THROWS_AS(cmh_test({{-1, 0, 0, 0}}, false), std::invalid_argument);
}

TEST_CASE("stats: stratified McNemar is the CMH test of the matched pairs", "[train][stats]") {
  // Agresti (2007), An Introduction to Categorical Data Analysis, 2nd ed., Table 8.1 (presidential approval, two
  // surveys of the same 1600 people): 794 approve both, 150 approve then disapprove, 86 the reverse, 570 neither;
  // McNemar z = (86 − 150)/√(86 + 150) = −4.17, z² = 17.36 (statsmodels' mcnemar(exact=False, correction=False):
  // 17.35593220338983, p 3.099293441045215e-05).
  const PooledPairs one = stratified_mcnemar({{794, 150, 86, 570}});
  CHECK(one.statistic == Approx(17.3559).epsilon(1e-4));
  CHECK(std::sqrt(one.statistic) == Approx(4.17).epsilon(1e-3));
  CHECK(one.statistic == Approx(17.35593220338983).epsilon(1e-12));
  CHECK(one.p_chi2 == Approx(3.099293441045215e-05).epsilon(1e-8));
  CHECK(one.odds_ratio == Approx(150.0 / 86.0));

  // Several strata: the CMH test with every pair its own 2×2 stratum (rows A / B, columns right / wrong) gives
  // exactly (B − C)²/(B + C) and the MH odds ratio B/C of the pooled discordant counts.
  const std::vector<PairCounts> strata = {{50, 7, 3, 10}, {40, 9, 2, 5}, {61, 4, 6, 9}};
  std::vector<Table2x2> pairs;
  for (const PairCounts& t : strata) {
    for (int64_t i = 0; i < t.a; ++i) pairs.push_back({1, 0, 1, 0});
    for (int64_t i = 0; i < t.b; ++i) pairs.push_back({1, 0, 0, 1});
    for (int64_t i = 0; i < t.c; ++i) pairs.push_back({0, 1, 1, 0});
    for (int64_t i = 0; i < t.d; ++i) pairs.push_back({0, 1, 0, 1});
  }
  const PooledPairs pooled = stratified_mcnemar(strata);
  const CmhResult cmh = cmh_test(pairs, false);
  CHECK(pooled.total.b == 20);
  CHECK(pooled.total.c == 11);
  CHECK(pooled.statistic == Approx(81.0 / 31.0).epsilon(1e-12));
  CHECK(cmh.statistic == Approx(pooled.statistic).epsilon(1e-12));
  CHECK(cmh.odds_ratio == Approx(pooled.odds_ratio).epsilon(1e-12));
  CHECK(pooled.p_exact == Approx(mcnemar_exact_p(20, 11)).epsilon(1e-15));
  // Pooling is not averaging p-values: three strata each far from significant can be significant together.
  const std::vector<PairCounts> weak(3, PairCounts{100, 14, 6, 20});
  CHECK(mcnemar_exact_p(14, 6) > 0.1);
  CHECK(stratified_mcnemar(weak).p_exact < 0.01);
}

namespace {

RunResult hits_row(const std::string& name, int64_t bits, const std::vector<uint8_t>& hits) {
  RunResult r;
  r.name = name;
  r.bits = bits;
  r.plan = bits ? name : "-";
  r.metrics.n = int64_t(hits.size());
  r.metrics.hits = hits;
  int64_t right = 0;
  for (const uint8_t h : hits) right += h;
  r.metrics.top1 = double(right) / double(hits.size());
  r.finished = true;
  return r;
}

std::vector<uint8_t> pattern(int64_t n, int64_t wrong_from, int64_t wrong_to) {
  std::vector<uint8_t> h(size_t(n), 1);
  for (int64_t i = wrong_from; i < wrong_to; ++i) h[size_t(i)] = 0;
  return h;
}

}  // namespace

TEST_CASE("pooled: mean, spread and the stratified tests over seeds", "[train][stats]") {
  // Two seeds of 200 images: x loses images 0..20 and y images 10..40 in seed 0; in seed 1 x 0..10, y 0..30.
  std::vector<SeedRows> seeds = {
      {0, {hits_row("fp", 0, pattern(200, 0, 5)), hits_row("x", 4, pattern(200, 0, 20)),
           hits_row("y", 4, pattern(200, 10, 40))}},
      {1, {hits_row("fp", 0, pattern(200, 0, 5)), hits_row("x", 4, pattern(200, 0, 10)),
           hits_row("y", 4, pattern(200, 0, 30))}}};
  const auto runs = pooled_runs(seeds);
  REQUIRE(runs.size() == 3);
  CHECK(runs[1].mean_top1 == Approx((0.9 + 0.95) / 2));
  CHECK(runs[1].sd_top1 == Approx(std::sqrt(2 * 0.025 * 0.025)));
  CHECK(runs[1].min_top1 == Approx(0.9));
  CHECK(runs[2].max_top1 == Approx(0.85));
  const auto cmp = pooled_comparisons(seeds);
  REQUIRE(cmp.size() == 3);  // x vs fp, y vs fp, x vs y
  const PooledComparison& xy = cmp[2];
  CHECK(xy.a == "x");
  CHECK(xy.b == "y");
  // seed 0: only x right on 20..40 (20), only y right on 0..10 (10); seed 1: only x right on 10..30 (20), none.
  CHECK(xy.test.total.b == 40);
  CHECK(xy.test.total.c == 10);
  CHECK(xy.deltas == std::vector<double>{0.05, 0.10});
  CHECK(xy.delta == Approx(30.0 / 400.0));
  CHECK(xy.test.p_exact == Approx(mcnemar_exact_p(40, 10)));
  std::vector<double> raw;
  for (const auto& c : cmp) raw.push_back(c.test.p_exact);
  const auto holm = holm_adjust(raw);
  for (size_t i = 0; i < cmp.size(); ++i) CHECK(cmp[i].p_holm == holm[i]);
  const std::string md = pooled_markdown(seeds);
  CHECK_THAT(md, Catch::Contains("| x | 4 | x | 90.00 | 95.00 | 92.50 ± 3.54 | 90.00–95.00 |"));
  CHECK_THAT(md, Catch::Contains("W4: best mean top-1 x (92.50 %); vs y +7.50 points, significant"));
  const nlohmann::json j = nlohmann::json::parse(pooled_json(seeds));
  CHECK(j.at("seeds") == nlohmann::json({0, 1}));
  CHECK(j.at("runs")[1].at("per_seed").size() == 2);
  CHECK(j.at("comparisons")[2].at("only_a_right") == 40);
  // A run missing in one seed (not reached yet) is pooled over the seeds that have it.
  seeds[1].rows.pop_back();
  const auto partial = pooled_comparisons(seeds);
  CHECK(partial[2].seeds == std::vector<int64_t>{0});
  CHECK_THAT(pooled_markdown(seeds), Catch::Contains("| 85.00 ± 0.00 |"));
}

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
