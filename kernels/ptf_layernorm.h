// FQ-ViT Power-of-Two-Factor LayerNorm (SPEC §4.3; FQ-ViT, Lin et al., IJCAI 2022): integer row statistics
// over channels brought to one scale by left shifts, then a per-element 8-bit multiplier M, shift N and bias B.
//
// Row of 16-bit codes q on per-channel scales s·2^α[c] (α ∈ {0..3}), C ≤ 2^16, output on scale S_next:
//   x    = q · 2^sh[c], sh[c] = α[c] − α_min ∈ [0, 3]   # common scale s' = s·2^α_min; |x| ≤ 2^18
//   sx   = Σx ; sxx = Σx²                               # |sx| ≤ 2^34, sxx ≤ 2^52 (int64)
//   var  = C·sxx − sx²                                  # = C²·Var(x) ∈ [0, 2^68]: 128-bit
//   std  = max(isqrt(var), 1)                           # ≤ 2^34, exact in float64
//   per element, in float64 from exact integers (the same expressions, in the same order, as the reference;
//   the build disables FMA contraction so host and device round identically):
//   A    = (C·γ[c]) / (std·S_next)                      # C·γ[c] is computed on the host (one float64 product)
//   N    = clamp(7 − floor(log2|A|), 0, 31), 31 if A = 0 # floor(log2) from the float64 exponent field
//   M    = clamp(floor(|A|·2^N), 0, 255)                # |A|·2^N is exact (a power-of-two scaling)
//   B    = round(((β[c] − (sx·γ[c]) / std) / S_next)·2^N)   # half to even
//   out  = round((sign(A)·M·x + B) / 2^N)               # half to even, int64
// CUDA evaluates the element formula as written (ptf_out); the CPU through a division-free form certified equal
// to it element by element (ptf_layernorm_fast.h), falling back to ptf_out where it cannot certify.
//
// Bound on B (checked on the host, csrc/ops/ptf_layernorm.cpp). B/2^N = β/S_next − (sx/C)·A with |sx/C| ≤ 2^18,
// and |A|·2^N < 2^8 unless N = 0, where |A| ≤ C·|γ|/S_next (std ≥ 1). Hence
//   |B| ≤ 2^31·|β|/S_next + 2^18·max(2^8, C·|γ|/S_next) + 1/2,
// which the host requires to be ≤ 2^61; then |M·x| < 2^26 keeps |sign(A)·M·x + B| < 2^62 in int64.
// (The mean term is not bounded by √C·|γ| as the normalized value (x − μ)/σ is: |μ|/σ is unbounded when a row
// has a large mean and a small spread, so the bound uses |μ| ≤ max|x| instead.)
#pragma once

#include <cstring>

#include "layernorm_common.h"

namespace mnq {
namespace kernels {

constexpr i64 kPtfLo = -(i64(1) << 15);  // declared input range: 16-bit codes (PtfAct has ≤ 16 bits)
constexpr i64 kPtfHi = (i64(1) << 15) - 1;
static_assert(kPtfLo <= kLnInt16Lo && kPtfHi >= kLnInt16Hi, "LnIntIn skips the check for 16-bit codes");
constexpr int kPtfMaxShift = 3;                     // α ∈ {0, 1, 2, 3}
constexpr double kPtfMaxX = 262144.0;               // 2^18 ≥ |x| = |q|·2^sh
constexpr double kPtfMaxB = 2305843009213693952.0;  // 2^61

// The kernel interface (rows × cols, contiguous).
struct PtfParams {
  i64 rows;
  i64 cols;              // C, 1 ≤ C ≤ 2^16
  i64 lo, hi;            // declared input range
  const int32_t* shift;  // [cols] α[c] − α_min
  const double* cgamma;  // [cols] C·γ[c]
  const double* gamma;   // [cols] γ[c]
  const double* beta;    // [cols] β[c]
  double scale_next;     // S_next
  const double* dev_scale_next = nullptr;  // CUDA QAT: S_next in device memory (replaces scale_next); else nullptr
};

// The bound on |B| for the largest |β| and |γ| (see above): must be ≤ kPtfMaxB. Checked once per call, on the host
// or, for the CUDA QAT path, by ptf_layernorm_consts_kernel.
MNQ_HOST_DEVICE double ptf_b_bound(double max_abs_beta, double max_abs_gamma, i64 cols, double scale_next) {
  return 2147483648.0 * max_abs_beta / scale_next +
         kPtfMaxX * fmax(256.0, static_cast<double>(cols) * max_abs_gamma / scale_next) + 1.0;
}

// s_base's range (host check_args): an LN scale whose largest channel scale s_base·2^3 is finite.
MNQ_HOST_DEVICE bool ptf_s_base_ok(double s_base) {
  const double top = s_base * 8.0;
  return ln_scale_ok(s_base) && top - top == 0.0;
}

// The constants of channel c, after the checks (host_consts in csrc/ops/ptf_layernorm.cpp and the CUDA QAT path's
// ptf_layernorm_consts_kernel): shift[c] = α[c] − α_min; values [4, C], rows C·γ (the reference's `cols * g`), γ,
// β and the QAT input's 1/(s_base·2^α[c]).
// The QAT input's inverse scale 1/(s_base·2^α) of a channel with shift α ∈ {0..3}.
MNQ_HOST_DEVICE double ptf_inv_scale(i64 alpha, double s_base) {
  return 1.0 / (s_base * ldexp(1.0, static_cast<int>(alpha)));
}

// ptf_channel_consts with the channel's ptf_inv_scale given: the host computes the four possible values once per
// call instead of a libm ldexp and a division per channel (~2.5 µs of a 384-channel call).
MNQ_HOST_DEVICE void ptf_channel_consts_inv(i64 alpha, i64 alpha_min, double gamma, double beta, double inv_scale,
                                            i64 cols, i64 c, int32_t* shift, double* values) {
  shift[c] = static_cast<int32_t>(alpha - alpha_min);
  values[c] = static_cast<double>(cols) * gamma;
  values[cols + c] = gamma;
  values[2 * cols + c] = beta;
  values[3 * cols + c] = inv_scale;
}

MNQ_HOST_DEVICE void ptf_channel_consts(i64 alpha, i64 alpha_min, double gamma, double beta, double s_base, i64 cols,
                                        i64 c, int32_t* shift, double* values) {
  ptf_channel_consts_inv(alpha, alpha_min, gamma, beta, ptf_inv_scale(alpha, s_base), cols, c, shift, values);
}

// x = q·2^sh: the code on the row's common scale (sh ∈ [0, 3], |x| ≤ 2^18).
MNQ_HOST_DEVICE i64 ptf_x(i64 q, int32_t sh) { return q * (i64(1) << sh); }

// Per-row values of the element formula.
struct PtfRow {
  double sx;    // Σx (exact, |sx| ≤ 2^34)
  double stdv;  // std = max(isqrt(C·sxx − sx²), 1) (exact, ≤ 2^34)
  double den;   // std·S_next
};

MNQ_HOST_DEVICE PtfRow ptf_row(i64 sx, i64 sxx, i64 cols, double scale_next) {
  const i128 var = static_cast<i128>(cols) * sxx - static_cast<i128>(sx) * sx;  // ≥ 0 (Cauchy–Schwarz)
  const u64 r = isqrt128(static_cast<u128>(var));
  const double stdv = static_cast<double>(r < 1 ? 1 : r);
  return PtfRow{static_cast<double>(sx), stdv, stdv * scale_next};
}

// floor(log2 a) for a finite a > 0, from the IEEE-754 exponent field (subnormals from their leading bit):
// the frexp exponent minus one, without a libm call in the inner loop.
MNQ_HOST_DEVICE int floor_log2(double a) {
#if defined(__CUDA_ARCH__)
  const u64 bits = static_cast<u64>(__double_as_longlong(a));
#else
  u64 bits;
  std::memcpy(&bits, &a, sizeof bits);
#endif
  const int biased = static_cast<int>(bits >> 52) & 0x7ff;
  if (biased != 0) return biased - 1023;
  return bit_length(bits & ((u64(1) << 52) - 1)) - 1 - 1074;  // a = mantissa·2^−1074
}

// out for element x (already shifted to the common scale) of channel c.
MNQ_HOST_DEVICE i64 ptf_out(i64 x, i64 c, const PtfRow& row, const PtfParams& p) {
  const double a = p.cgamma[c] / row.den;
  const double abs_a = fabs(a);
  int n = 31;
  if (abs_a != 0.0) {
    const int e = 7 - floor_log2(abs_a);
    n = e < 0 ? 0 : (e > 31 ? 31 : e);
  }
  const double pw = static_cast<double>(i64(1) << n);  // 2^N, so ·pw is ldexp(·, N) (exact)
  const double mf = floor(abs_a * pw);
  const i64 m = mf > 255.0 ? 255 : static_cast<i64>(mf);
  const i64 sgn_m = a > 0 ? m : (a < 0 ? -m : 0);
  const double t = (p.beta[c] - (row.sx * p.gamma[c]) / row.stdv) / p.scale_next;
  const i64 b = static_cast<i64>(rint(t * pw));  // |B| ≤ 2^61 (host bound); rint rounds half to even
  return round_shr64(sgn_m * x + b, n);
}

}  // namespace kernels
}  // namespace mnq
