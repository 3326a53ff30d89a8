// mnq::quant_linear (SPEC §1): the fake-quant Linear's forward, computed exactly in integers.
//
//   q_a[m, k] = clamp(round(x[m, k] / S_a), −2^31, 2^31 − 1)      x's codes: x is a quantizer's output, on S_a's grid
//   q_w[n, k] = clamp(round(W[n, k] / S_w[n]), …)                 the fake-quant weight's codes (b bits)
//   S_out[n]  = S_a·S_w[n]                                          (float64)
//   q_b[n]    = clamp(round(bias[n] / S_out[n]), …)                the bias on 32 bits (SPEC §1)
//   y[m, n]   = fl32(fl64(Σ_k q_a[m, k]·q_w[n, k] + q_b[n]) · S_out[n])
//
// round(v / S) is the quantizer's (kernels/quant.h quantize_code: rint of the float64 quotient). The float GEMM on
// the dequantized values that the fake-quant layers ran before rounds every product and partial sum in float32 in
// the BLAS library's order; this is the integer product itself, as the integer engine (csrc/deploy) computes it,
// and on the CPU an int8 × int8 GEMM (VNNI) instead of a float32 one: ~8× less GEMM time on the bench's shapes.
//
// Paths (the same values on each; tests/python/test_quant_linear.py compares them bit for bit):
// - CPU, every code of x and W within int8 (activations and weights of ≤ 8 bits, x on its grid): x's codes by the
//   certified vector quantizer (csrc/cpu/quant_simd.h, int32) narrowed to int8, at::_int_mm (oneDNN; int32
//   accumulators, exact: |Σ| ≤ K·2^14 < 2^31 for K < 2^17, checked), and the fused epilogue of
//   csrc/cpu/quant_linear.cpp (y from the int32 sums, the float64 bias codes and S_out, one pass).
// - Otherwise (wider codes, NaN in x, another device): float64 codes and one float64 GEMM, exact while every
//   partial sum stays below 2^53 (K·max|q_a|·max|q_w| < 2^53: any codes of ≤ 16 bits with K < 2^22); NaN in x or
//   the bias gives NaN in the outputs it reaches. No value is read back to the host on CUDA.
// Autograd (csrc/autograd/linear.cpp): the straight-through gradient of the float product x·Wᵀ + bias, i.e. the
// gradient F.linear(x, W, bias) would give (SPEC §1 STE): grad_x = g·W, grad_W = gᵀ·x, grad_bias = Σ g.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>

namespace mnq {
namespace ops {

namespace backend {
// The CPU / CUDA kernel of the op (call it through csrc/ops.h's ops::quant_linear, which also takes autograd).
at::Tensor quant_linear(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& weight,
                        const at::Tensor& weight_scale, const std::optional<at::Tensor>& bias);
}  // namespace backend

namespace cpu {
// y[m, n] = fl32(fl64(acc[m, n] + qb[n]) · s[n]) for the contiguous int32 acc [M, N] into the contiguous float32 y,
// which may be acc's own memory (each value is read before its slot is written). qb holds integers (float64,
// |qb| ≤ 2^31); rows in parallel.
void quant_linear_epilogue(const at::Tensor& acc, const double* qb, const double* s, const at::Tensor& y);
// out[i] = round(x[i] / s) (the quantizer's code, csrc/cpu/quant_simd.h quantize_span) as int8, chunks of an L1
// buffer in parallel; false when one lies outside [−128, 127] or x[i] has no code (NaN): then out is not all written.
bool activation_codes(const float* x, double s, int64_t n, int8_t* out);
// The fake-quant weight's codes: out[n·K + k] = round(w[n·K + k] / s[n]) (the quantizer's rounding), rows in
// parallel, AVX-512 when isa() has it; false when one lies outside [−128, 127] (or is NaN): then out is not all
// written.
bool weight_codes(const float* w, const double* s, int64_t N, int64_t K, int8_t* out);
}  // namespace cpu

}  // namespace ops
}  // namespace mnq
