// The statistics of the comparison table (csrc/train/stats.h, comparisons.h): exact McNemar p-values against
// scipy.stats.binomtest (values below computed with scipy 1.17: binomtest(b, b + c, 0.5).pvalue), Holm's
// adjustment, Newcombe's paired interval against a published value, and the "Paired comparisons" section of
// results.md / results.json for constructed rows, including rows without per-image results.
#include <torch/torch.h>  // first: Catch2 then redefines c10's CHECK macro

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "csrc/train/comparisons.h"
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
