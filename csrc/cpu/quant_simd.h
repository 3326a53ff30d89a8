// Vector paths of the symmetric quantizer (kernels/quant.h quantize_code), certified equal to it element by element.
//
// The definition is q = clamp(rint(x / S), lo, hi) with one float64 division per element, which no vector unit does
// at the speed of a float multiply-add. The vector paths compute p = fl32(x · r) in float32 with r = fl32(1/S)
// (16 lanes per AVX-512 vector) and certify, per element, that rounding p gives the definition's code; an element
// they cannot certify (about 2^−19 of them, plus NaN) is recomputed by quantize_code itself. So every path returns
// exactly the scalar definition's values.
//
// Error bound (u32 = 2^−24, u64 = 2^−53; 1/S within [2^−100, 2^100] so r is a normal float32, checked per call):
//   r = (1/S)(1 + e1), |e1| ≤ u32 + u64 (float64 quotient, then rounded to float32);  p = x·r·(1 + e2) + η with
//   |e2| ≤ u32 and |η| ≤ 2^−150 (float32 underflow). With v = x/S exactly, |p − v| ≤ 2^−22.99·|v| + 2^−150; the
//   definition's vd = fl64(x/S) has |vd − v| ≤ u64·|v| + 2^−1075. So |p − vd| ≤ E = 2^−22·|p| + 2^−140.
// Certification (bits ≤ 19, so lo − 1 ≥ −2^18 − 1 and hi + 1 ≤ 2^18):
//   p ≥ hi + 1 (also +inf): vd ≥ (hi + 1)(1 − 2^−22) − 2^−140 > hi + 1/2, so rint(vd) > hi and the code is hi;
//   p ≤ lo − 1 likewise gives lo. Otherwise |p| < 2^18 + 1 and rint(p) is the code if p is farther than E from
//   every half-integer (then vd lies on the same side of each, and is none). With a = |p − rint(p)| (exact: p and
//   rint(p) are within a factor 2 or rint(p) = 0) the distance is h = 1/2 − a, computed exactly when a ≥ 1/4
//   (Sterbenz) and to within 2^−26 when a < 1/4, where h > 1/4 > E anyway (|p| < 2^19). The test
//   fl(1/2 − a) ≥ fl(2^−21·|p| + 2^−60) therefore implies h > E (the margin rounded once, by an FMA, or twice: it
//   stays above E either way). NaN fails every test. (The AVX-512 and AVX2 paths clamp p to [lo, hi] first: p ≥ hi
//   gives vd ≥ p − E > hi − 1/2, so the code is hi, the clamped value's rint, and lo likewise; they test the margin
//   of the clamped value as fl(2^−21·|pc| + a) < 1/2, which implies 1/2 − a > 2^−21·|pc| > E.)
// Wider codes (bits ≥ 20, or any clamp range outside [−2^18, 2^18 − 1]) take the exact vector form instead: the
// definition's own float64 division and rint per lane (vdivpd, vroundpd: the same IEEE operations), then the clamp
// and the store, so it equals quantize_code with no certification (QuantSpan::exact). Other layouts than per tensor
// / per channel of the last dim use quantize_code.
#pragma once

#include <cstdint>

#include "csrc/cpu/fake_store_simd.h"
#include "csrc/cpu/isa.h"
#include "kernels/quant.h"

namespace mnq {
namespace ops {
namespace cpu {

// One element of the definition: the code (or, for fake quant, NaN) of x[i] at scale s; sets `bad` for an input
// without a code.
template <class Out>
inline void quantize_one(const float* x, double s, kernels::i64 lo, kernels::i64 hi, const Out& o, int64_t i,
                         int& bad) {
  kernels::i64 q = 0;
  const bool have = kernels::quantize_code(x[i], s, lo, hi, q);
  if (Out::kPropagatesNaN && !have) {
    o.store_nan(i);
  } else {
    o.store(i, q, s);
  }
  bad |= static_cast<int>(!have);
}

// A span of elements [i0, i0 + n) of one quantizer call. Scales: per_column: element i0 + j has scale s[j] and
// reciprocal r[j] (a row of a per-channel-last-dim tensor, n = C); else every element has s[0], r[0].
struct QuantSpan {
  const float* x;
  int64_t i0, n;
  const double* s;
  const float* r;  // fl32(1 / s)
  bool per_column;
  kernels::i64 lo, hi;
  // The exact float64 form (any scales, any lo ≤ hi within int32 for codes) instead of the certified float32 one.
  bool exact = false;
  // Fake quant, AVX-512, per tensor: the values from fake_store32 (its `ok` set) instead of FakeOut::store's float64
  // product per lane.
  FakeStore32 store32{};
};

// Whether the vector paths apply: bits ≤ 19 (the certification's range) and every 1/S in [2^−100, 2^100].
bool quantize_simd_ok(const double* s, int64_t count, kernels::i64 hi);
// The same for the clamp range [lo, hi] (lo ≥ −2^18, hi ≤ 2^18 − 1; else QuantSpan::exact applies).
bool quantize_simd_ok(const double* s, int64_t count, kernels::i64 lo, kernels::i64 hi);

// Quantizes one span on the given path (kScalar: quantize_one per element); returns nonzero when an input had no
// code (NaN; for fake quant it is stored as NaN). Requires quantize_simd_ok for the certified vector paths
// (sp.exact false).
int quantize_span(Isa path, const QuantSpan& sp, const kernels::CodeOut& out);
int quantize_span(Isa path, const QuantSpan& sp, const kernels::FakeOut& out);

// PtfAct's α errors (kernels/quant.h quant_sq_error at s_base·2^α, α = 0..3), AVX-512: err[c][α] += Σ_r over rows
// r in order of the squared error of x[r][c], for channels [c0, c1) of x [rows, C] (row-major). Eight channels per
// float64 vector, the definition's operations per lane in the same order (so the sums equal the scalar loop's), with
// one division per element instead of four: fl(x / (s·2^α)) = fl(x / s)·2^−α exactly while fl(x / s) is normal
// (a power-of-two factor commutes with rounding), and when it is not, both round to the code 0 (|x / s| < 2^−1021).
// Requires ptf_alpha_simd_ok(s_base). Returns false when the build or the CPU has no AVX-512 (nothing written).
bool ptf_alpha_error_avx512(const float* x, int64_t rows, int64_t C, int64_t c0, int64_t c1, double s_base,
                            kernels::i64 lo, kernels::i64 hi, double* err);
// Whether s_base allows it: s_base·8 finite and |x / s_base| finite for every float32 x (s_base ≥ 2^−894), so that
// no lane's quotient overflows where the definition's own quotient by s_base·2^α would not.
bool ptf_alpha_simd_ok(double s_base);

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
