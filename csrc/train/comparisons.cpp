#include "csrc/train/comparisons.h"

#include <fmt/format.h>

#include <algorithm>

namespace mnq {
namespace train {
namespace {

// Why a row's per-image results cannot be used ("" when they can).
std::string missing_hits(const RunResult& r) {
  if (r.metrics.n <= 0) return r.name + " has no test images";
  if (r.metrics.hits.empty()) return r.name + " has no per-image results (run folder of an older version?)";
  if (int64_t(r.metrics.hits.size()) != r.metrics.n) {
    return fmt::format("{} has {} per-image results for {} test images", r.name, r.metrics.hits.size(), r.metrics.n);
  }
  return "";
}

Comparison compare(const RunResult& a, const RunResult& b, int64_t bits, bool vs_fp) {
  Comparison c;
  c.a = a.name;
  c.b = b.name;
  c.bits = bits;
  c.vs_fp = vs_fp;
  c.delta = a.metrics.top1 - b.metrics.top1;
  c.unavailable = missing_hits(a);
  if (c.unavailable.empty()) c.unavailable = missing_hits(b);
  if (c.unavailable.empty() && a.metrics.n != b.metrics.n) {
    c.unavailable = fmt::format("not the same test images ({} and {})", a.metrics.n, b.metrics.n);
  }
  if (!c.unavailable.empty()) return c;
  c.available = true;
  c.counts = pair_counts(a.metrics.hits, b.metrics.hits);
  c.delta = double(c.counts.b - c.counts.c) / double(c.counts.n());
  c.ci = paired_difference_ci(c.counts);
  c.p = mcnemar_exact_p(c.counts.b, c.counts.c);
  return c;
}

std::string format_p(double p) {
  if (p <= 0) return "< 1e-300";  // below the smallest double
  return p < 1e-4 ? fmt::format("{:.1e}", p) : fmt::format("{:.4f}", p);
}

std::string join(const std::vector<std::string>& parts, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? sep : "") + parts[i];
  return out;
}

std::string points(double fraction) { return fmt::format("{:+.2f}", 100 * fraction); }

}  // namespace

std::vector<Comparison> paired_comparisons(const std::vector<RunResult>& rows, double alpha) {
  std::vector<Comparison> out;
  if (rows.size() < 2) return out;
  const RunResult& fp = rows.front();
  std::vector<int64_t> widths;
  for (size_t i = 1; i < rows.size(); ++i) {
    if (std::find(widths.begin(), widths.end(), rows[i].bits) == widths.end()) widths.push_back(rows[i].bits);
  }
  for (const int64_t bits : widths) {
    std::vector<const RunResult*> group;
    for (size_t i = 1; i < rows.size(); ++i) {
      if (rows[i].bits == bits) group.push_back(&rows[i]);
    }
    for (const RunResult* r : group) out.push_back(compare(*r, fp, bits, true));
    for (size_t i = 0; i < group.size(); ++i) {
      for (size_t j = i + 1; j < group.size(); ++j) {
        // The more accurate run first, so Δ ≥ 0 reads "A is better by Δ".
        const bool swap = group[j]->metrics.top1 > group[i]->metrics.top1;
        out.push_back(compare(swap ? *group[j] : *group[i], swap ? *group[i] : *group[j], bits, false));
      }
    }
  }
  std::vector<double> p;
  for (const Comparison& c : out) {
    if (c.available) p.push_back(c.p);
  }
  const std::vector<double> adjusted = holm_adjust(p);
  size_t k = 0;
  for (Comparison& c : out) {
    if (!c.available) continue;
    c.p_holm = adjusted[k++];
    c.significant = c.p_holm < alpha;
  }
  return out;
}

std::vector<BitsSummary> comparison_summary(const std::vector<RunResult>& rows, const std::vector<Comparison>& cmp) {
  std::vector<BitsSummary> out;
  for (size_t i = 1; i < rows.size(); ++i) {
    const int64_t bits = rows[i].bits;
    if (std::any_of(out.begin(), out.end(), [&](const BitsSummary& s) { return s.bits == bits; })) continue;
    const RunResult* best = &rows[i];
    for (size_t j = i + 1; j < rows.size(); ++j) {
      if (rows[j].bits == bits && rows[j].metrics.top1 > best->metrics.top1) best = &rows[j];
    }
    BitsSummary s;
    s.bits = bits;
    s.best = best->name;
    std::vector<std::string> parts;
    for (const Comparison& c : cmp) {
      if (c.bits != bits || c.vs_fp || (c.a != best->name && c.b != best->name)) continue;
      const std::string& other = c.a == best->name ? c.b : c.a;
      if (!c.available) {
        parts.push_back(fmt::format("vs {} the test is unavailable", other));
      } else if (c.significant) {
        parts.push_back(fmt::format("significantly better than {} (p_holm {})", other, format_p(c.p_holm)));
      } else {
        parts.push_back(fmt::format("not significantly different from {} (p_holm {})", other, format_p(c.p_holm)));
      }
    }
    std::string text = fmt::format("W{}: best {} (top-1 {:.2f} %)", bits, best->name, 100 * best->metrics.top1);
    text += parts.empty() ? ", the only run at this width" : "; " + join(parts, ", ");
    for (const Comparison& c : cmp) {
      if (!c.vs_fp || c.a != best->name) continue;
      text += c.available ? fmt::format("; vs FP {} points, {} (p_holm {})", points(c.delta),
                                        c.significant ? "significant" : "not significant", format_p(c.p_holm))
                          : "; vs FP the test is unavailable";
    }
    s.text = text + ".";
    out.push_back(std::move(s));
  }
  return out;
}

std::string comparisons_markdown(const std::vector<RunResult>& rows, const std::vector<Comparison>& cmp) {
  std::string md = "\n## Paired comparisons\n\n";
  if (cmp.empty()) return md + "No quantized runs yet.\n";
  md +=
      "| A | B | Δ top-1 points [95% CI] | b (only A right) | c (only B right) | p | p_holm | significant |\n"
      "|---|---|---|---|---|---|---|---|\n";
  int64_t tests = 0;
  for (const Comparison& c : cmp) {
    if (!c.available) {
      md += fmt::format("| {} | {} | {} | n/a | n/a | n/a | n/a | n/a ({}) |\n", c.a, c.b, points(c.delta),
                        c.unavailable);
      continue;
    }
    ++tests;
    md += fmt::format("| {} | {} | {} [{}, {}] | {} | {} | {} | {} | {} |\n", c.a, c.b, points(c.delta),
                      points(c.ci.lo), points(c.ci.hi), c.counts.b, c.counts.c, format_p(c.p), format_p(c.p_holm),
                      c.significant ? "**yes**" : "no");
  }
  md += fmt::format(
      "\nBoth models of a row are evaluated on the same {} test images: b and c count the images only A, only B "
      "gets right, and Δ = top-1(A) − top-1(B) = (b − c)/n with Newcombe's paired 95 % interval. p: exact McNemar "
      "test (two-sided binomial test of b against b + c at ½); p_holm: Holm–Bonferroni over the {} test{} of this "
      "table; significant: p_holm < {}.\n\n",
      rows.front().metrics.n, tests, tests == 1 ? "" : "s", kAlpha);
  for (const BitsSummary& s : comparison_summary(rows, cmp)) md += "- " + s.text + "\n";
  return md;
}

nlohmann::json comparisons_json(const std::vector<RunResult>& rows, const std::vector<Comparison>& cmp) {
  nlohmann::json list = nlohmann::json::array();
  for (const Comparison& c : cmp) {
    nlohmann::json j = {{"a", c.a},
                        {"b", c.b},
                        {"bits", c.bits},
                        {"vs_fp", c.vs_fp},
                        {"available", c.available},
                        {"delta_top1", c.delta}};
    if (c.available) {
      j["both_right"] = c.counts.a;
      j["only_a_right"] = c.counts.b;
      j["only_b_right"] = c.counts.c;
      j["both_wrong"] = c.counts.d;
      j["delta_top1_ci95"] = {c.ci.lo, c.ci.hi};
      j["p"] = c.p;
      j["p_holm"] = c.p_holm;
      j["significant"] = c.significant;
    } else {
      for (const char* k : {"both_right", "only_a_right", "only_b_right", "both_wrong", "delta_top1_ci95", "p",
                            "p_holm", "significant"}) {
        j[k] = nullptr;
      }
      j["unavailable"] = c.unavailable;
    }
    list.push_back(std::move(j));
  }
  nlohmann::json summary = nlohmann::json::array();
  for (const BitsSummary& s : comparison_summary(rows, cmp)) {
    summary.push_back({{"bits", s.bits}, {"best", s.best}, {"text", s.text}});
  }
  return {{"method",
           {{"test", "exact McNemar (two-sided binomial on the discordant images)"},
            {"ci", "Newcombe square-and-add interval for paired proportions (95 %)"},
            {"correction", "Holm-Bonferroni over every available test"},
            {"alpha", kAlpha}}},
          {"comparisons", std::move(list)},
          {"summary", std::move(summary)}};
}

}  // namespace train
}  // namespace mnq
