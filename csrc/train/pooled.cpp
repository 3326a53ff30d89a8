#include "csrc/train/pooled.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "csrc/train/comparisons.h"  // kAlpha
#include "csrc/util/atomic_file.h"

namespace mnq {
namespace train {
namespace {

bool has_hits(const RunResult& r) { return r.metrics.n > 0 && int64_t(r.metrics.hits.size()) == r.metrics.n; }

std::string pct(double f) { return fmt::format("{:.2f}", 100 * f); }
std::string pts(double f) { return fmt::format("{:+.2f}", 100 * f); }
std::string p_text(double p) {
  if (p <= 0) return "< 1e-300";
  return p < 1e-4 ? fmt::format("{:.1e}", p) : fmt::format("{:.4f}", p);
}

PooledComparison compare(const PooledRun& a, const PooledRun& b, const std::vector<SeedRows>& seeds, bool vs_fp) {
  PooledComparison c;
  c.a = a.name;
  c.b = b.name;
  c.bits = a.bits;
  c.vs_fp = vs_fp;
  std::vector<PairCounts> strata;
  for (size_t k = 0; k < seeds.size(); ++k) {
    const auto& ra = a.per_seed[k];
    const auto& rb = b.per_seed[k];
    if (!ra || !rb || !has_hits(*ra) || !has_hits(*rb) || ra->metrics.n != rb->metrics.n) continue;
    strata.push_back(pair_counts(ra->metrics.hits, rb->metrics.hits));
    c.seeds.push_back(seeds[k].seed);
    c.deltas.push_back(double(strata.back().b - strata.back().c) / double(strata.back().n()));
  }
  if (strata.empty()) {
    c.unavailable = "no seed with per-image results of both on the same test images";
    c.delta = a.mean_top1 - b.mean_top1;
    return c;
  }
  c.available = true;
  c.test = stratified_mcnemar(strata);
  c.delta = double(c.test.total.b - c.test.total.c) / double(c.test.total.n());
  c.ci = paired_difference_ci(c.test.total);
  return c;
}

}  // namespace

std::vector<PooledRun> pooled_runs(const std::vector<SeedRows>& seeds) {
  std::vector<PooledRun> out;
  for (size_t k = 0; k < seeds.size(); ++k) {
    for (const RunResult& r : seeds[k].rows) {
      auto it = std::find_if(out.begin(), out.end(), [&](const PooledRun& p) { return p.name == r.name; });
      if (it == out.end()) {
        PooledRun p;
        p.name = r.name;
        p.plan = r.plan;
        p.bits = r.bits;
        p.per_seed.resize(seeds.size());
        out.push_back(std::move(p));
        it = out.end() - 1;
      }
      if (r.finished) it->per_seed[k] = r;
    }
  }
  for (PooledRun& p : out) {
    std::vector<double> top1;
    for (const auto& r : p.per_seed) {
      if (!r) continue;
      top1.push_back(r->metrics.top1);
      p.mean_top5 += r->metrics.top5;
      p.mean_loss += r->metrics.loss;
    }
    p.seeds_done = int64_t(top1.size());
    if (top1.empty()) continue;
    const double n = double(top1.size());
    for (const double t : top1) p.mean_top1 += t / n;
    p.mean_top5 /= n;
    p.mean_loss /= n;
    double ss = 0;
    for (const double t : top1) ss += (t - p.mean_top1) * (t - p.mean_top1);
    p.sd_top1 = top1.size() > 1 ? std::sqrt(ss / (n - 1)) : 0.0;
    p.min_top1 = *std::min_element(top1.begin(), top1.end());
    p.max_top1 = *std::max_element(top1.begin(), top1.end());
  }
  return out;
}

std::vector<PooledComparison> pooled_comparisons(const std::vector<SeedRows>& seeds, double alpha) {
  const std::vector<PooledRun> runs = pooled_runs(seeds);
  std::vector<PooledComparison> out;
  if (runs.size() < 2 || runs.front().bits != 0) return out;
  std::vector<int64_t> widths;
  for (size_t i = 1; i < runs.size(); ++i) {
    if (std::find(widths.begin(), widths.end(), runs[i].bits) == widths.end()) widths.push_back(runs[i].bits);
  }
  for (const int64_t bits : widths) {
    std::vector<const PooledRun*> group;
    for (size_t i = 1; i < runs.size(); ++i) {
      if (runs[i].bits == bits) group.push_back(&runs[i]);
    }
    for (const PooledRun* r : group) out.push_back(compare(*r, runs.front(), seeds, true));
    for (size_t i = 0; i < group.size(); ++i) {
      for (size_t j = i + 1; j < group.size(); ++j) {
        const bool swap = group[j]->mean_top1 > group[i]->mean_top1;  // the better one first: Δ ≥ 0
        out.push_back(compare(swap ? *group[j] : *group[i], swap ? *group[i] : *group[j], seeds, false));
      }
    }
  }
  std::vector<double> p;
  for (const PooledComparison& c : out) {
    if (c.available) p.push_back(c.test.p_exact);
  }
  const std::vector<double> adjusted = holm_adjust(p);
  size_t k = 0;
  for (PooledComparison& c : out) {
    if (!c.available) continue;
    c.p_holm = adjusted[k++];
    c.significant = c.p_holm < alpha;
  }
  return out;
}

// One sentence per bit-width: the run with the best mean top-1 and how it compares with every other run.
static std::vector<std::pair<int64_t, std::string>> pooled_summary(const std::vector<PooledRun>& runs,
                                                                    const std::vector<PooledComparison>& cmp) {
  std::vector<std::pair<int64_t, std::string>> out;
  for (size_t i = 1; i < runs.size(); ++i) {
    const int64_t bits = runs[i].bits;
    if (std::any_of(out.begin(), out.end(), [&](const auto& s) { return s.first == bits; })) continue;
    const PooledRun* best = &runs[i];
    for (size_t j = i + 1; j < runs.size(); ++j) {
      if (runs[j].bits == bits && runs[j].mean_top1 > best->mean_top1) best = &runs[j];
    }
    std::string text = fmt::format("W{}: best mean top-1 {} ({} %)", bits, best->name, pct(best->mean_top1));
    for (const PooledComparison& c : cmp) {
      if (c.bits != bits || c.vs_fp || c.a != best->name) continue;
      text += c.available ? fmt::format("; vs {} {} points, {} (p_holm {})", c.b, pts(c.delta),
                                        c.significant ? "significant" : "not significant", p_text(c.p_holm))
                          : fmt::format("; vs {} unavailable", c.b);
    }
    out.emplace_back(bits, text + ".");
  }
  return out;
}

std::string pooled_markdown(const std::vector<SeedRows>& seeds) {
  const std::vector<PooledRun> runs = pooled_runs(seeds);
  const std::vector<PooledComparison> cmp = pooled_comparisons(seeds, kAlpha);
  std::string head = "| run | bits | plan |", rule = "|---|---|---|";
  for (const SeedRows& s : seeds) {
    head += fmt::format(" top-1 % seed {} |", s.seed);
    rule += "---|";
  }
  std::string md = head + " mean top-1 % ± sd | min–max | mean top-5 % | mean loss |\n" + rule + "---|---|---|---|\n";
  for (const PooledRun& r : runs) {
    md += fmt::format("| {} | {} | {} |", r.name, r.bits ? std::to_string(r.bits) : "32 (FP)", r.plan);
    for (const auto& s : r.per_seed) md += s ? " " + pct(s->metrics.top1) + " |" : " – |";
    if (r.seeds_done == 0) {
      md += " – | – | – | – |\n";
      continue;
    }
    md += fmt::format(" {} ± {} | {}–{} | {} | {:.4f} |\n", pct(r.mean_top1), pct(r.sd_top1), pct(r.min_top1),
                      pct(r.max_top1), pct(r.mean_top5), r.mean_loss);
  }
  md += fmt::format(
      "\nSeeds: {} (each a whole job in seed<s>/, with its own results.md). sd: sample standard deviation over the "
      "seeds; – : not (yet) finished in that seed.\n\n## Paired comparisons pooled over seeds\n\n",
      seeds.size());
  if (cmp.empty()) return md + "No quantized runs yet.\n";
  md +=
      "| A | B | Δ top-1 points [95% CI] | Δ per seed | B (only A right) | C (only B right) | CMH χ² | p | p_holm | "
      "significant |\n|---|---|---|---|---|---|---|---|---|---|\n";
  int64_t tests = 0;
  for (const PooledComparison& c : cmp) {
    if (!c.available) {
      md += fmt::format("| {} | {} | {} | n/a | n/a | n/a | n/a | n/a | n/a | n/a ({}) |\n", c.a, c.b, pts(c.delta),
                        c.unavailable);
      continue;
    }
    ++tests;
    std::string per_seed;
    for (size_t k = 0; k < c.deltas.size(); ++k) per_seed += (k ? ", " : "") + pts(c.deltas[k]);
    md += fmt::format("| {} | {} | {} [{}, {}] | {} | {} | {} | {:.2f} | {} | {} | {} |\n", c.a, c.b, pts(c.delta),
                      pts(c.ci.lo), pts(c.ci.hi), per_seed, c.test.total.b, c.test.total.c, c.test.statistic,
                      p_text(c.test.p_exact), p_text(c.p_holm), c.significant ? "**yes**" : "no");
  }
  md += fmt::format(
      "\nStratified McNemar test (the Cochran–Mantel–Haenszel test of paired binary data, the seed as stratum): "
      "B and C count over all seeds the (image, seed) pairs only A, only B gets right; CMH χ² = (B − C)²/(B + C); "
      "p: its exact conditional form, B ~ Binomial(B + C, ½) under H0; Δ = (B − C)/Σn with Newcombe's paired 95 % "
      "interval on the pooled counts; p_holm: Holm–Bonferroni over the {} test{} of this table; significant: "
      "p_holm < {}.\n\n",
      tests, tests == 1 ? "" : "s", kAlpha);
  for (const auto& [bits, text] : pooled_summary(runs, cmp)) md += "- " + text + "\n";
  return md;
}

std::string pooled_json(const std::vector<SeedRows>& seeds) {
  const std::vector<PooledRun> runs = pooled_runs(seeds);
  const std::vector<PooledComparison> cmp = pooled_comparisons(seeds, kAlpha);
  nlohmann::json seed_list = nlohmann::json::array(), run_list = nlohmann::json::array();
  for (const SeedRows& s : seeds) seed_list.push_back(s.seed);
  for (const PooledRun& r : runs) {
    nlohmann::json per_seed = nlohmann::json::array();
    for (size_t k = 0; k < seeds.size(); ++k) {
      const auto& s = r.per_seed[k];
      if (!s) continue;
      const Interval ci = wilson_interval(s->metrics.top1, s->metrics.n);
      per_seed.push_back({{"seed", seeds[k].seed},
                          {"top1", s->metrics.top1},
                          {"top1_ci95", {ci.lo, ci.hi}},
                          {"top5", s->metrics.top5},
                          {"loss", s->metrics.loss},
                          {"test_images", s->metrics.n}});
    }
    run_list.push_back({{"name", r.name},
                        {"bits", r.bits},
                        {"plan", r.plan},
                        {"seeds_done", r.seeds_done},
                        {"per_seed", std::move(per_seed)},
                        {"mean_top1", r.mean_top1},
                        {"sd_top1", r.sd_top1},
                        {"min_top1", r.min_top1},
                        {"max_top1", r.max_top1},
                        {"mean_top5", r.mean_top5},
                        {"mean_loss", r.mean_loss}});
  }
  nlohmann::json cmp_list = nlohmann::json::array();
  for (const PooledComparison& c : cmp) {
    nlohmann::json j = {{"a", c.a}, {"b", c.b}, {"bits", c.bits}, {"vs_fp", c.vs_fp}, {"available", c.available},
                        {"delta_top1", c.delta}};
    if (!c.available) {
      j["unavailable"] = c.unavailable;
    } else {
      j["seeds"] = c.seeds;
      j["delta_top1_per_seed"] = c.deltas;
      j["delta_top1_ci95"] = {c.ci.lo, c.ci.hi};
      j["only_a_right"] = c.test.total.b;
      j["only_b_right"] = c.test.total.c;
      j["cmh_chi2"] = c.test.statistic;
      j["p_chi2"] = c.test.p_chi2;
      j["p"] = c.test.p_exact;
      j["odds_ratio_mh"] = std::isfinite(c.test.odds_ratio) ? nlohmann::json(c.test.odds_ratio) : nlohmann::json("inf");
      j["p_holm"] = c.p_holm;
      j["significant"] = c.significant;
    }
    cmp_list.push_back(std::move(j));
  }
  nlohmann::json summary = nlohmann::json::array();
  for (const auto& [bits, text] : pooled_summary(runs, cmp)) summary.push_back({{"bits", bits}, {"text", text}});
  nlohmann::json out = {
      {"seeds", std::move(seed_list)},
      {"runs", std::move(run_list)},
      {"comparisons", std::move(cmp_list)},
      {"summary", std::move(summary)},
      {"method",
       {{"test", "stratified McNemar = Cochran-Mantel-Haenszel on paired binary data, seed as stratum; p exact "
                 "conditional (binomial on the pooled discordant pairs)"},
        {"ci", "Newcombe square-and-add interval for paired proportions on the pooled counts (95 %)"},
        {"correction", "Holm-Bonferroni over every available test"},
        {"alpha", kAlpha}}}};
  return out.dump(2) + "\n";
}

void write_pooled_results(const std::string& dir, const std::vector<SeedRows>& seeds) {
  util::write_file_atomic(dir + "/results.md", pooled_markdown(seeds));
  util::write_file_atomic(dir + "/results.json", pooled_json(seeds));
}

}  // namespace train
}  // namespace mnq
