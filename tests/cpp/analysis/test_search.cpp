// The plan search (csrc/analysis/search.h) on a tiny random-weight ViT: it never returns a plan worse on its own
// objective than any start plan, it stays within its evaluation budget, its trajectory's best only falls, its
// score is the objective recomputed independently, and a repeated search gives the same plan.
#include <ATen/ATen.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "csrc/analysis/analyzer.h"
#include "csrc/analysis/search.h"

using namespace mnq;
using namespace mnq::analysis;

namespace {

BatchSource batches(int64_t count, int64_t size, uint64_t seed) {
  auto data = std::make_shared<std::vector<at::Tensor>>();
  at::manual_seed(seed);
  for (int64_t i = 0; i < count; ++i) data->push_back(at::rand({size, 1, 28, 28}) * 2 - 1);
  return BatchSource{count, [data](int64_t i) { return (*data)[size_t(i)]; }};
}

// KL(p_FP ‖ p_Q) of one plan, computed here from scratch (its own calibration and float64 loop over images).
double reference_kl(const models::Model& fp, int64_t bits, const models::Plan& plan, const BatchSource& calib,
                    int64_t n, const BatchSource& holdout) {
  models::Model q = calibrated_model(fp, bits, plan, "reference", calib, n);
  at::NoGradGuard no_grad;
  double sum = 0;
  int64_t images = 0;
  for (int64_t i = 0; i < holdout.num_batches; ++i) {
    const at::Tensor p = at::softmax(fp.forward(holdout.batch(i)).to(at::kDouble), -1);
    const at::Tensor lq = at::log_softmax(q.forward(holdout.batch(i)).to(at::kDouble), -1);
    for (int64_t r = 0; r < p.size(0); ++r, ++images) {
      for (int64_t c = 0; c < p.size(1); ++c) {
        const double pc = p[r][c].item<double>();
        if (pc > 0) sum += pc * (std::log(pc) - lq[r][c].item<double>());
      }
    }
  }
  return sum / double(images);
}

}  // namespace

TEST_CASE("search: never worse than its start plans, within budget, reproducible", "[analysis][search]") {
  at::manual_seed(7);
  models::Model fp = models::create_fp("vit_mnist_tiny");
  fp.module->eval();
  const BatchSource calib = batches(2, 16, 1), holdout = batches(2, 16, 2);
  AnalyzerConfig cfg;
  cfg.calib_batches = 2;
  cfg.progress = false;
  cfg.search_evaluations = 9;
  cfg.mode = "searched";   // as a job's: the analysis then scores the isolated mode too (analyze.isolated auto)
  const int64_t bits = 4;  // where the methods differ most
  const Report report = analyze(fp, bits, cfg, calib);
  REQUIRE(report.isolated);
  const SearchResult r = search_plan(fp, bits, cfg, calib, holdout, report);

  CHECK(r.evaluations <= cfg.search_evaluations);
  CHECK(r.evaluations >= 4);  // the three uniform plans and the paper plan at least (isolated may equal one)
  CHECK(r.holdout_images == 32);
  REQUIRE(r.starts.size() == 5);  // uniform ivit, ibert, fqvit, paper, isolated
  for (const auto& [name, score] : r.starts) {
    INFO(name);
    CHECK(r.score <= score);
  }
  // The trajectory: every evaluation in order, its running best non-increasing and ending at the result.
  double best = INFINITY;
  for (const SearchStep& s : r.trajectory) {
    CHECK(s.best <= best);
    CHECK(s.best <= s.score);
    best = s.best;
  }
  CHECK(best == r.score);
  // Every mixable layer is named, with a method its op type may use (or the uniform start's).
  const auto layers = models::mixable_layers("vit_mnist_tiny");
  CHECK(r.plan.entries().size() == layers.size());
  // The score is the objective itself, recomputed independently.
  CHECK(reference_kl(fp, bits, r.plan, calib, 2, holdout) == Approx(r.score).epsilon(1e-9));
  // Deterministic: the same inputs give the same plan and score.
  const SearchResult again = search_plan(fp, bits, cfg, calib, holdout, report);
  CHECK(again.plan == r.plan);
  CHECK(again.score == r.score);

  // A budget below the number of start plans stops there, still returning the best one it evaluated.
  cfg.search_evaluations = 2;
  const SearchResult small = search_plan(fp, bits, cfg, calib, holdout, report);
  CHECK(small.evaluations <= 2);
  CHECK(small.score == std::min(small.starts[0].second, small.starts[1].second));

  // The report: written atomically as JSON with the trajectory.
  const std::string path = (std::filesystem::temp_directory_path() / "mnq_search_test.json").string();
  r.write_json(path);
  std::ifstream in(path);
  const nlohmann::json j = nlohmann::json::parse(in);
  CHECK(j.at("trajectory").size() == r.trajectory.size());
  CHECK(j.at("objective") == "kl_fp");
  std::filesystem::remove(path);
}

TEST_CASE("search: bad input is a clear error", "[analysis][search]") {
  at::manual_seed(0);
  models::Model fp = models::create_fp("vit_mnist_tiny");
  const BatchSource calib = batches(1, 4, 1);
  AnalyzerConfig cfg;
  cfg.calib_batches = 1;
  cfg.progress = false;
  const Report report = analyze(fp, 8, cfg, calib);
  CHECK_THROWS_WITH(search_plan(fp, 8, cfg, calib, BatchSource{}, report), Catch::Contains("held-out set"));
  CHECK_THROWS_WITH(search_plan(fp, 6, cfg, calib, calib, report), Catch::Contains("the report is of"));
  REQUIRE_FALSE(report.isolated);  // mode paper, analyze.isolated auto: its isolated plan would be a start plan
  CHECK_THROWS_WITH(search_plan(fp, 8, cfg, calib, calib, report), Catch::Contains("the report has no isolated scores"));
  cfg.search_evaluations = 0;
  CHECK_THROWS_WITH(search_plan(fp, 8, cfg, calib, calib, report), Catch::Contains("search_evaluations"));
}
