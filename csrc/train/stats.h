// Statistics of the comparison table (no torch): the Wilson interval of one accuracy, and the paired tests of
// two classifiers evaluated on the same test images in the same order.
//
// Pairing: image i is right or wrong under A and under B, which gives the 2×2 table
//   a = both right,  b = A right and B wrong,  c = A wrong and B right,  d = both wrong  (n = a + b + c + d),
// and top-1(A) − top-1(B) = (b − c) / n. Only the discordant images b, c carry evidence about the difference, and
// because both models see the same images, the paired analysis is much sharper than comparing two independent
// Wilson intervals (which ignores that most images are right, or wrong, under both).
#pragma once

#include <cstdint>
#include <vector>

namespace mnq {
namespace train {

struct Interval {
  double lo = 0, hi = 0;
};

constexpr double kZ95 = 1.959963984540054;  // the 97.5 % normal quantile: two-sided 95 %

// Wilson score interval for a proportion p observed on n trials:
//   (p + z²/2n ± z·sqrt(p(1−p)/n + z²/4n²)) / (1 + z²/n).
Interval wilson_interval(double p, int64_t n, double z = kZ95);

// The paired 2×2 table above.
struct PairCounts {
  int64_t a = 0, b = 0, c = 0, d = 0;
  int64_t n() const { return a + b + c + d; }
};
// Counts from per-image hits (1: right) of A and B, same length and order (throws std::invalid_argument otherwise).
PairCounts pair_counts(const std::vector<uint8_t>& hits_a, const std::vector<uint8_t>& hits_b);

// Exact McNemar test of H0 "A and B are equally accurate": given the m = b + c discordant images, b ~ Binomial(m, ½)
// under H0, and the two-sided p-value is
//   p = min(1, 2·P(X ≤ min(b, c))),  X ~ Binomial(m, ½)
// (the distribution is symmetric, so this equals summing every outcome no likelier than the observed one, as
// scipy.stats.binomtest does). P(X ≤ k) is summed in log space: log P(X = k) = lgamma(m+1) − lgamma(k+1) −
// lgamma(m−k+1) − m·ln 2, then the smaller terms by the ratio P(X = i−1)/P(X = i) = i / (m − i + 1), relative to
// P(X = k); nothing under- or overflows for m in the millions. b = c = 0 gives p = 1.
double mcnemar_exact_p(int64_t b, int64_t c);

// 95 % interval of the paired difference Δ = p1 − p2 = (b − c)/n, with p1 = (a + b)/n, p2 = (a + c)/n: Newcombe's
// square-and-add interval for paired proportions (Newcombe 1998, Stat. Med. 17:2635, method 10), which combines
// the Wilson intervals (l1, u1) of p1 and (l2, u2) of p2 with their estimated correlation φ:
//   lo = Δ − sqrt((p1 − l1)² − 2φ(p1 − l1)(u2 − p2) + (u2 − p2)²)
//   hi = Δ + sqrt((p2 − l2)² − 2φ(p2 − l2)(u1 − p1) + (u1 − p1)²)
//   φ = C / sqrt((a+b)(c+d)(a+c)(b+d)),  C = ad − bc − n/2 if ad − bc > n/2; 0 if 0 ≤ ad − bc ≤ n/2; ad − bc if < 0
//   (φ = 0 when a margin is 0). Unlike the Wald interval Δ ± z·sqrt(b + c − (b − c)²/n)/n it keeps its coverage
// with few discordant images and never collapses to a point (b = c = 0).
Interval paired_difference_ci(const PairCounts& t, double z = kZ95);

// Holm–Bonferroni step-down adjustment of m p-values (family-wise error ≤ α when p_holm < α): with the p-values
// sorted ascending p_(1) ≤ … ≤ p_(m), p_holm(j) = max over i ≤ j of min(1, (m − i + 1)·p_(i)). Returned in the
// input order.
std::vector<double> holm_adjust(const std::vector<double>& p);

// ---- Pooled over seeds: several independent repetitions (strata) of the same paired comparison ----
//
// One 2×2 table of a Cochran–Mantel–Haenszel analysis: rows = group (1, 2), columns = outcome (1, 2).
struct Table2x2 {
  double n11 = 0, n12 = 0, n21 = 0, n22 = 0;
};

struct CmhResult {
  double statistic = 0;  // the CMH χ² statistic (1 degree of freedom)
  double p = 1;          // its asymptotic two-sided p-value, P(χ²₁ ≥ statistic)
  double odds_ratio = 1;  // the Mantel–Haenszel common odds ratio Σ n11·n22/n / Σ n12·n21/n (∞: denominator 0)
};

// The Cochran–Mantel–Haenszel test of "no association in any stratum" (common odds ratio 1) over K 2×2 tables
// (Mantel & Haenszel 1959; Agresti, Categorical Data Analysis, 3rd ed., §6.4.2):
//   CMH = (|Σ_k (n11_k − E_k)| − cc)² / Σ_k V_k,   E_k = n1+·n+1 / n,   V_k = n1+·n2+·n+1·n+2 / (n²(n − 1)),
// cc = ½ with the continuity correction (R's mantelhaen.test default), 0 without; strata with n < 2 or V_k = 0
// carry no information and add nothing. Σ V_k = 0 gives statistic 0, p 1.
CmhResult cmh_test(const std::vector<Table2x2>& strata, bool continuity_correction);

// P(χ²₁ ≥ x) = erfc(√(x/2)).
double chi2_1_sf(double x);

// Paired comparisons pooled over strata (seeds): stratum k contributes its paired table (a_k, b_k, c_k, d_k).
// Written as a CMH analysis with every *pair* (image, seed) its own stratum — rows model A / model B, columns
// right / wrong, two observations — the pairs where both models agree have V = 0, and each discordant pair has
// n11 − E = ±½ and V = ¼, so the CMH statistic is exactly McNemar's on the pooled discordant counts
//   CMH = (B − C)² / (B + C),  B = Σ b_k, C = Σ c_k,
// and the Mantel–Haenszel odds ratio is B / C (Agresti §11.1.4: McNemar's test is the CMH test of matched pairs;
// stratifying by seed keeps every pair inside its own seed). Its exact conditional form: under H0 (A and B
// exchangeable on every image, in every seed) each discordant pair is A's with probability ½ independently — the
// seeds' models are trained independently — so B ~ Binomial(B + C, ½) given B + C, and p_exact is
// mcnemar_exact_p(B, C). The comparison tables use p_exact (valid for few discordant pairs too; the two agree
// closely once B + C is in the tens).
struct PooledPairs {
  PairCounts total;       // Σ over strata of a, b, c, d
  double statistic = 0;   // CMH = (B − C)² / (B + C)  (0 when B + C = 0)
  double p_chi2 = 1;      // chi2_1_sf(statistic)
  double p_exact = 1;     // mcnemar_exact_p(B, C)
  double odds_ratio = 1;  // B / C (∞ when C = 0 < B; 1 when both are 0)
};
PooledPairs stratified_mcnemar(const std::vector<PairCounts>& strata);

}  // namespace train
}  // namespace mnq
