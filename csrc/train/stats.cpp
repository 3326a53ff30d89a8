#include "csrc/train/stats.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>

namespace mnq {
namespace train {

Interval wilson_interval(double p, int64_t n, double z) {
  if (n <= 0) return {0, 1};
  const double nn = double(n), z2 = z * z;
  const double denom = 1 + z2 / nn;
  const double center = (p + z2 / (2 * nn)) / denom;
  const double half = z / denom * std::sqrt(p * (1 - p) / nn + z2 / (4 * nn * nn));
  return {std::max(0.0, center - half), std::min(1.0, center + half)};
}

PairCounts pair_counts(const std::vector<uint8_t>& hits_a, const std::vector<uint8_t>& hits_b) {
  if (hits_a.size() != hits_b.size()) {
    throw std::invalid_argument("pair_counts: " + std::to_string(hits_a.size()) + " and " +
                                std::to_string(hits_b.size()) + " per-image results (not the same test images)");
  }
  PairCounts t;
  for (size_t i = 0; i < hits_a.size(); ++i) {
    const bool ra = hits_a[i] != 0, rb = hits_b[i] != 0;
    (ra ? (rb ? t.a : t.b) : (rb ? t.c : t.d)) += 1;
  }
  return t;
}

double mcnemar_exact_p(int64_t b, int64_t c) {
  if (b < 0 || c < 0) throw std::invalid_argument("mcnemar_exact_p: negative count");
  const int64_t m = b + c, k = std::min(b, c);
  if (2 * k >= m) return 1.0;  // b = c: the observed split is the likeliest one
  const double md = double(m);
  const double log_pk =
      std::lgamma(md + 1) - std::lgamma(double(k) + 1) - std::lgamma(double(m - k) + 1) - md * std::log(2.0);
  // P(X ≤ k) / P(X = k) = Σ_{i ≤ k} P(X = i)/P(X = k): terms shrink as i falls (k < m/2), so stop once they no
  // longer change the sum.
  double sum = 1, term = 1;
  for (int64_t i = k; i > 0; --i) {
    term *= double(i) / double(m - i + 1);
    sum += term;
    if (term < 1e-17 * sum) break;
  }
  return std::min(1.0, 2 * std::exp(log_pk + std::log(sum)));
}

Interval paired_difference_ci(const PairCounts& t, double z) {
  const int64_t n = t.n();
  if (n <= 0) return {-1, 1};
  const double nd = double(n);
  const double p1 = double(t.a + t.b) / nd, p2 = double(t.a + t.c) / nd, delta = p1 - p2;
  const Interval w1 = wilson_interval(p1, n, z), w2 = wilson_interval(p2, n, z);
  // Products of counts in double: the four margins multiplied overflow int64 past n ≈ 55 000.
  const double e = double(t.a + t.b), f = double(t.c + t.d), g = double(t.a + t.c), h = double(t.b + t.d);
  double phi = 0;
  if (e > 0 && f > 0 && g > 0 && h > 0) {
    const double cross = double(t.a) * double(t.d) - double(t.b) * double(t.c);
    const double corrected = cross > nd / 2 ? cross - nd / 2 : (cross >= 0 ? 0.0 : cross);
    phi = corrected / std::sqrt(e * f * g * h);
  }
  const double dl1 = p1 - w1.lo, du1 = w1.hi - p1, dl2 = p2 - w2.lo, du2 = w2.hi - p2;
  const double lo = delta - std::sqrt(std::max(0.0, dl1 * dl1 - 2 * phi * dl1 * du2 + du2 * du2));
  const double hi = delta + std::sqrt(std::max(0.0, dl2 * dl2 - 2 * phi * dl2 * du1 + du1 * du1));
  return {std::max(-1.0, lo), std::min(1.0, hi)};
}

std::vector<double> holm_adjust(const std::vector<double>& p) {
  const size_t m = p.size();
  std::vector<size_t> order(m);
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t i, size_t j) { return p[i] < p[j]; });
  std::vector<double> out(m);
  double running = 0;  // the step-down maximum keeps the adjusted values in the order of the raw ones
  for (size_t r = 0; r < m; ++r) {
    running = std::max(running, std::min(1.0, double(m - r) * p[order[r]]));
    out[order[r]] = running;
  }
  return out;
}


double chi2_1_sf(double x) { return x <= 0 ? 1.0 : std::erfc(std::sqrt(x / 2)); }

CmhResult cmh_test(const std::vector<Table2x2>& strata, bool continuity_correction) {
  double dev = 0, var = 0, or_num = 0, or_den = 0;
  for (const Table2x2& t : strata) {
    if (t.n11 < 0 || t.n12 < 0 || t.n21 < 0 || t.n22 < 0) throw std::invalid_argument("cmh_test: negative count");
    const double n = t.n11 + t.n12 + t.n21 + t.n22;
    if (n < 2) continue;  // one observation: no variance
    const double r1 = t.n11 + t.n12, r2 = t.n21 + t.n22, c1 = t.n11 + t.n21, c2 = t.n12 + t.n22;
    dev += t.n11 - r1 * c1 / n;
    var += r1 * r2 * c1 * c2 / (n * n * (n - 1));
    or_num += t.n11 * t.n22 / n;
    or_den += t.n12 * t.n21 / n;
  }
  CmhResult r;
  r.odds_ratio = or_den > 0 ? or_num / or_den : (or_num > 0 ? INFINITY : 1.0);
  if (var <= 0) return r;
  const double d = std::max(0.0, std::abs(dev) - (continuity_correction ? 0.5 : 0.0));
  r.statistic = d * d / var;
  r.p = chi2_1_sf(r.statistic);
  return r;
}

PooledPairs stratified_mcnemar(const std::vector<PairCounts>& strata) {
  PooledPairs r;
  for (const PairCounts& t : strata) {
    if (t.a < 0 || t.b < 0 || t.c < 0 || t.d < 0) throw std::invalid_argument("stratified_mcnemar: negative count");
    r.total.a += t.a;
    r.total.b += t.b;
    r.total.c += t.c;
    r.total.d += t.d;
  }
  const double b = double(r.total.b), c = double(r.total.c);
  if (b + c > 0) r.statistic = (b - c) * (b - c) / (b + c);
  r.p_chi2 = chi2_1_sf(r.statistic);
  r.p_exact = mcnemar_exact_p(r.total.b, r.total.c);
  r.odds_ratio = c > 0 ? b / c : (b > 0 ? INFINITY : 1.0);
  return r;
}

}  // namespace train
}  // namespace mnq
