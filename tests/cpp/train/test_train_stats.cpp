// The statistics of the comparison table (csrc/train/stats.h, comparisons.h): exact McNemar p-values against
// scipy.stats.binomtest (values below computed with scipy 1.17: binomtest(b, b + c, 0.5).pvalue), Holm's
// adjustment, Newcombe's paired interval against a published value, and the "Paired comparisons" section of
// results.md / results.json for constructed rows, including rows without per-image results; the tests pooled over
// seeds (CMH against published examples, stratified McNemar as the CMH test of matched pairs, pooled.h's table).
#include <torch/torch.h>  // first: Catch2 then redefines c10's CHECK macro

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "csrc/train/comparisons.h"
#include "csrc/train/pooled.h"
#include "csrc/train/results.h"
#include "csrc/train/stats.h"

using namespace mnq::train;

namespace {

RunResult row(const std::string& name, int64_t bits, const std::vector<uint8_t>& hits) {
  RunResult r;
  r.name = name;
  r.bits = bits;
  r.plan = bits ? "ivit" : "-";
  r.metrics.n = int64_t(hits.size());
  r.metrics.hits = hits;
  int64_t right = 0;
  for (const uint8_t h : hits) right += h;
  r.metrics.top1 = double(right) / double(hits.size());
  r.finished = true;
  return r;
}

std::vector<uint8_t> flip(std::vector<uint8_t> hits, int64_t from, int64_t to) {
  for (int64_t i = from; i < to; ++i) hits[size_t(i)] ^= 1;
  return hits;
}

}  // namespace

TEST_CASE("stats: exact McNemar p-values match scipy.stats.binomtest", "[train][stats]") {
  CHECK(mcnemar_exact_p(0, 6) == Approx(0.03125).epsilon(1e-12));
  CHECK(mcnemar_exact_p(6, 0) == Approx(0.03125).epsilon(1e-12));
  CHECK(mcnemar_exact_p(10, 10) == 1.0);
  CHECK(mcnemar_exact_p(0, 0) == 1.0);
  CHECK(mcnemar_exact_p(1, 0) == 1.0);
  CHECK(mcnemar_exact_p(3, 12) == Approx(0.03515625).epsilon(1e-12));
  CHECK(mcnemar_exact_p(25, 5) == Approx(0.0003249142318964005).epsilon(1e-10));
  CHECK(mcnemar_exact_p(40, 62) == Approx(0.037066767438560584).epsilon(1e-10));
  CHECK(mcnemar_exact_p(1, 20) == Approx(2.09808349609375e-05).epsilon(1e-10));
  CHECK(mcnemar_exact_p(0, 60) == Approx(1.734723475976807e-18).epsilon(1e-10));
  CHECK(mcnemar_exact_p(230, 270) == Approx(0.08103234960921356).epsilon(1e-9));
  // Test sets of tens of thousands of images: the log-space sum stays accurate far into the tail.
  CHECK(mcnemar_exact_p(5000, 5200) == Approx(0.04878796312682234).epsilon(1e-8));
  CHECK(mcnemar_exact_p(12000, 12500) == Approx(0.0014321425048026506).epsilon(1e-8));
  CHECK(mcnemar_exact_p(24000, 26000) == Approx(3.857469951030655e-19).epsilon(1e-7));
  CHECK(mcnemar_exact_p(0, 5000) == 0.0);  // 2^-4999 is below the smallest double
  CHECK_THROWS_AS(mcnemar_exact_p(-1, 3), std::invalid_argument);
}

TEST_CASE("stats: Holm-Bonferroni adjustment", "[train][stats]") {
  // Sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → step-down maximum 0.06.
  const std::vector<double> adj = holm_adjust({0.01, 0.04, 0.03, 0.005});
  REQUIRE(adj.size() == 4);
  CHECK(adj[0] == Approx(0.03));
  CHECK(adj[1] == Approx(0.06));
  CHECK(adj[2] == Approx(0.06));
  CHECK(adj[3] == Approx(0.02));
  CHECK((holm_adjust({0.5, 0.9}) == std::vector<double>{1.0, 1.0}));  // capped at 1
  CHECK((holm_adjust({0.2}) == std::vector<double>{0.2}));
  CHECK(holm_adjust({}).empty());
}

TEST_CASE("stats: paired counts and Newcombe's interval", "[train][stats]") {
  const PairCounts t = pair_counts({1, 1, 0, 0, 1}, {1, 0, 1, 0, 0});
  CHECK(t.a == 1);
  CHECK(t.b == 2);
  CHECK(t.c == 1);
  CHECK(t.d == 1);
  CHECK_THROWS_AS(pair_counts({1, 0}, {1}), std::invalid_argument);
  // Cavo et al. 2012 (Fagerland, Lydersen & Laake, "Statistical analysis of contingency tables", ch. 8):
  // a = 59, b = 6, c = 16, d = 80: Δ = −0.0621, Newcombe square-and-add 95 % CI −0.1186 to −0.0046.
  const Interval ci = paired_difference_ci({59, 6, 16, 80});
  CHECK(ci.lo == Approx(-0.1186).margin(5e-5));
  CHECK(ci.hi == Approx(-0.0046).margin(5e-5));
  // Swapping A and B mirrors the interval.
  const Interval sw = paired_difference_ci({59, 16, 6, 80});
  CHECK(sw.lo == Approx(-ci.hi));
  CHECK(sw.hi == Approx(-ci.lo));
  // No discordant image: Δ = 0, and the interval still has a width (Wald's would be [0, 0]).
  const Interval zero = paired_difference_ci({90, 0, 0, 10});
  CHECK(zero.lo < 0);
  CHECK(zero.hi > 0);
  CHECK(zero.lo == Approx(-zero.hi));
  const Interval w = wilson_interval(0.5, 100);
  CHECK(w.lo == Approx(0.4038).margin(1e-4));
}

TEST_CASE("results: the paired comparisons mark the significant differences", "[train][stats]") {
  // 400 test images. FP gets the first 360 right. ivit8 loses 5 of them and gains 2 (b = 2, c = 5 vs FP:
  // p = 58/128); ibert8 loses 60 (p = 2^-59 vs FP) and is worse than ivit8 on 57 images, better on none
  // (p = 2^-56); w4 comes from an older run folder without per-image results.
  const std::vector<uint8_t> fp_hits = flip(std::vector<uint8_t>(400, 0), 0, 360);
  RunResult w4 = row("w4", 4, fp_hits);
  w4.metrics.hits.clear();
  const std::vector<RunResult> rows = {row("fp", 0, fp_hits), row("ivit8", 8, flip(flip(fp_hits, 0, 5), 360, 362)),
                                       row("ibert8", 8, flip(fp_hits, 0, 60)), w4};
  const std::vector<Comparison> cmp = paired_comparisons(rows);
  REQUIRE(cmp.size() == 4);  // W8: ivit8 vs fp, ibert8 vs fp, ivit8 vs ibert8; W4: w4 vs fp
  CHECK((cmp[0].a == "ivit8" && cmp[0].b == "fp" && cmp[0].vs_fp));
  CHECK((cmp[0].counts.b == 2 && cmp[0].counts.c == 5));
  CHECK(cmp[0].p == Approx(0.453125));
  CHECK(cmp[0].p_holm == Approx(0.453125));  // the largest of three: Holm multiplies it by 1
  CHECK(!cmp[0].significant);
  CHECK(cmp[0].delta == Approx(-3.0 / 400));
  CHECK((cmp[1].a == "ibert8" && cmp[1].counts.b == 0 && cmp[1].counts.c == 60));
  CHECK(cmp[1].p_holm == Approx(3 * 1.734723475976807e-18));
  CHECK(cmp[1].significant);
  CHECK((cmp[2].a == "ivit8" && cmp[2].b == "ibert8" && !cmp[2].vs_fp));  // the more accurate run first
  CHECK((cmp[2].counts.b == 57 && cmp[2].counts.c == 0));
  CHECK(cmp[2].p_holm == Approx(2 * 1.3877787807814457e-17));
  CHECK(cmp[2].significant);
  CHECK(cmp[2].ci.lo > 0);
  CHECK((cmp[3].a == "w4" && !cmp[3].available));
  CHECK_THAT(cmp[3].unavailable, Catch::Contains("no per-image results"));

  const std::string md = results_markdown(rows);
  CHECK_THAT(md, Catch::Contains("## Paired comparisons"));
  CHECK_THAT(md, Catch::Contains("| ivit8 | fp | -0.75 [") && Catch::Contains("| 2 | 5 | 0.4531 | 0.4531 | no |"));
  CHECK_THAT(
      md, Catch::Contains("| ibert8 | fp | -15.00 [") && Catch::Contains("| 0 | 60 | 1.7e-18 | 5.2e-18 | **yes** |"));
  CHECK_THAT(md, Catch::Contains("| ivit8 | ibert8 | +14.25 ["));
  CHECK_THAT(md, Catch::Contains("| w4 | fp | +0.00 | n/a | n/a | n/a | n/a | n/a (w4 has no per-image results"));
  CHECK_THAT(md, Catch::Contains("over the 3 tests"));
  CHECK_THAT(md, Catch::Contains("- W8: best ivit8 (top-1 89.25 %); significantly better than ibert8 (p_holm 2.8e-17); "
                                 "vs FP -0.75 points, not significant (p_holm 0.4531)."));
  CHECK_THAT(md, Catch::Contains("- W4: best w4 (top-1 90.00 %), the only run at this width; vs FP the test is "
                                 "unavailable."));

  const auto json = nlohmann::json::parse(results_json(rows));
  REQUIRE(json.at("runs").size() == 4);
  REQUIRE(json.at("comparisons").size() == 4);
  CHECK(json["comparisons"][1]["significant"] == true);
  CHECK(json["comparisons"][0]["only_a_right"] == 2);
  CHECK(json["comparisons"][3]["p"].is_null());
  CHECK(json["summary"][0]["best"] == "ivit8");
}

TEST_CASE("results: rows whose per-image results cannot be paired render as n/a", "[train][stats]") {
  const std::vector<uint8_t> hits = flip(std::vector<uint8_t>(100, 0), 0, 80);
  RunResult bad_length = row("w8", 8, hits);
  bad_length.metrics.hits.resize(99);  // disagrees with n
  RunResult other_set = row("w8b", 8, std::vector<uint8_t>(hits.begin(), hits.begin() + 90));
  const std::vector<RunResult> rows = {row("fp", 0, hits), bad_length, other_set};
  const std::vector<Comparison> cmp = paired_comparisons(rows);
  REQUIRE(cmp.size() == 3);
  for (const Comparison& c : cmp) CHECK(!c.available);
  CHECK_THAT(cmp[0].unavailable, Catch::Contains("99 per-image results for 100 test images"));
  CHECK_THAT(cmp[1].unavailable, Catch::Contains("not the same test images (90 and 100)"));
  const std::string md = results_markdown(rows);
  CHECK_THAT(md, Catch::Contains("over the 0 tests") && Catch::Contains("vs w8 the test is unavailable"));
  // Only the FP row (a job stopped in pretraining): the section says so.
  CHECK_THAT(results_markdown({rows[0]}), Catch::Contains("No quantized runs yet."));
}

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

std::vector<uint8_t> pattern(int64_t n, int64_t wrong_from, int64_t wrong_to) {
  std::vector<uint8_t> h(size_t(n), 1);
  for (int64_t i = wrong_from; i < wrong_to; ++i) h[size_t(i)] = 0;
  return h;
}

}  // namespace

TEST_CASE("pooled: mean, spread and the stratified tests over seeds", "[train][stats]") {
  // Two seeds of 200 images: x loses images 0..20 and y images 10..40 in seed 0; in seed 1 x 0..10, y 0..30.
  std::vector<SeedRows> seeds = {
      {0, {row("fp", 0, pattern(200, 0, 5)), row("x", 4, pattern(200, 0, 20)),
           row("y", 4, pattern(200, 10, 40))}},
      {1, {row("fp", 0, pattern(200, 0, 5)), row("x", 4, pattern(200, 0, 10)),
           row("y", 4, pattern(200, 0, 30))}}};
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
  CHECK_THAT(md, Catch::Contains("| x | 4 | ivit | 90.00 | 95.00 | 92.50 ± 3.54 | 90.00–95.00 |"));
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
