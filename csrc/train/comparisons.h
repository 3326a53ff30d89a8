// Which differences of the comparison table are significant: paired tests (stats.h) of the models evaluated on
// the same test images in the same order, for every quantized run against FP and every pair of runs with the same
// bits, with the family-wise error of all these tests held at α by Holm–Bonferroni. Rendered as results.md's
// "Paired comparisons" section (a table and one sentence per bit-width) and results.json's "comparisons".
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "csrc/train/results.h"
#include "csrc/train/stats.h"

namespace mnq {
namespace train {

constexpr double kAlpha = 0.05;  // family-wise error rate of the table's tests

struct Comparison {
  std::string a, b;          // row names; Δ = top-1(a) − top-1(b)
  int64_t bits = 0;          // the bit-width of the group (a's)
  bool vs_fp = false;        // b is the FP model (else a and b are runs with the same bits, a the more accurate)
  bool available = false;    // both rows have per-image results on the same test images
  std::string unavailable;   // why not, when !available
  PairCounts counts;         // a: both right, b: only A right, c: only B right, d: both wrong
  double delta = 0;          // top-1(a) − top-1(b) = (b − c)/n
  Interval ci;               // Newcombe's paired 95 % interval of delta
  double p = 1;              // exact McNemar
  double p_holm = 1;         // Holm–Bonferroni over every available test of the table
  bool significant = false;  // p_holm < kAlpha
};

// rows[0] is the FP model (RunResult::bits == 0), the runs follow. Grouped by bit-width in order of first
// appearance: each run vs FP, then every pair of runs of that width. Tests that cannot be done (hits missing or of
// another length) are listed as unavailable and left out of the Holm family.
std::vector<Comparison> paired_comparisons(const std::vector<RunResult>& rows, double alpha = kAlpha);

struct BitsSummary {
  int64_t bits = 0;
  std::string best;  // the run with the best top-1 at these bits (the first one on ties)
  std::string text;  // one sentence: whether `best` is significantly better than each other run, and vs FP
};
std::vector<BitsSummary> comparison_summary(const std::vector<RunResult>& rows, const std::vector<Comparison>& cmp);

// The "Paired comparisons" section of results.md (table, explanation, one line per bit-width).
std::string comparisons_markdown(const std::vector<RunResult>& rows, const std::vector<Comparison>& cmp);
// {"method": …, "comparisons": [...], "summary": [...]} of results.json (unavailable numbers are null).
nlohmann::json comparisons_json(const std::vector<RunResult>& rows, const std::vector<Comparison>& cmp);

}  // namespace train
}  // namespace mnq
