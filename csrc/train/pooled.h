// The results of a job repeated over seeds (`seeds: [...]`, seeds.h): every run per seed, its mean and spread
// across seeds, and the paired comparisons pooled over seeds — for every quantized run against FP and every pair
// of runs with the same bits, the stratified McNemar test (the Cochran–Mantel–Haenszel test of paired binary data
// with the seed as stratum, stats.h stratified_mcnemar) on the per-image hits of all seeds, Holm–Bonferroni over
// the table. "Significant" then means: across the seeds' independently trained models, on the same test images.
// Written as <output.dir>/results.md and results.json ({"seeds", "runs", "comparisons", "summary", "method"}),
// which, like a single job's, hold only what the config and the seeds determine (no wall times in the JSON).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "csrc/train/results.h"
#include "csrc/train/stats.h"

namespace mnq {
namespace train {

// One seed's job: its seed and its results rows (FP first, then the runs reached, as JobResult::rows).
struct SeedRows {
  int64_t seed = 0;
  std::vector<RunResult> rows;
};

// One row of the pooled table: a run (or FP) over the seeds.
struct PooledRun {
  std::string name, plan;
  int64_t bits = 0;
  std::vector<std::optional<RunResult>> per_seed;  // in the order of the seeds; nullopt: not reached in that seed
  int64_t seeds_done = 0;                          // seeds with a finished row
  double mean_top1 = 0, sd_top1 = 0, min_top1 = 0, max_top1 = 0;  // over the finished seeds (sd: n − 1; 0 for one)
  double mean_top5 = 0, mean_loss = 0;
};
// Rows in the order of the first seed's (FP first), then any name only later seeds have.
std::vector<PooledRun> pooled_runs(const std::vector<SeedRows>& seeds);

struct PooledComparison {
  std::string a, b;  // run names; A the one with the higher mean top-1 (or the run, vs FP)
  int64_t bits = 0;
  bool vs_fp = false;
  bool available = false;     // at least one seed where both rows have per-image hits on the same test images
  std::string unavailable;    // why not
  std::vector<int64_t> seeds;       // the strata used
  std::vector<double> deltas;       // top-1(A) − top-1(B) per stratum
  double delta = 0;                 // pooled (ΣB − ΣC) / Σn (the mean of `deltas` when every seed has n images)
  Interval ci;                      // Newcombe's paired 95 % interval on the pooled counts
  PooledPairs test;                 // stratified McNemar / CMH
  double p_holm = 1;
  bool significant = false;
};
std::vector<PooledComparison> pooled_comparisons(const std::vector<SeedRows>& seeds, double alpha = 0.05);

std::string pooled_markdown(const std::vector<SeedRows>& seeds);
std::string pooled_json(const std::vector<SeedRows>& seeds);
// Writes <dir>/results.md and <dir>/results.json atomically.
void write_pooled_results(const std::string& dir, const std::vector<SeedRows>& seeds);

}  // namespace train
}  // namespace mnq
