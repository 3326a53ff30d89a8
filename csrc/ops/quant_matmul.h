// mnq::quant_matmul (SPEC §1): the fake-quant MatMul of two quantized tensors (the attention's q@kᵀ and attn@v),
// computed exactly in integers.
//
//   q_a[..., m, k] = clamp(round(a[..., m, k] / S_a), −2^31, 2^31 − 1)    a's codes: a is a quantizer's output
//   q_b[..., k, n] = clamp(round(b[..., k, n] / S_b), …)                   b's codes (per-tensor scales both)
//   S_out          = S_a·S_b                                                (float64)
//   y[..., m, n]   = fl32(fl64(Σ_k q_a[..., m, k]·q_b[..., k, n]) · S_out)
//
// round(v / S) is the quantizer's (kernels/quant.h quantize_code: rint of the float64 quotient), as in
// mnq::quant_linear (csrc/ops/quant_linear.h). a and b have equal batch dims (no broadcasting).
//
// Paths (the same values on each; tests/python/test_quant_matmul.py compares them bit for bit with the int64
// reference):
// - CPU (csrc/cpu/quant_matmul.cpp): per product (one batch index) the codes of a's tile and of b's tile (read
//   through their strides: the attention's permuted q / k / v views and kᵀ need no copy) by the certified vector
//   quantizer (csrc/cpu/quant_simd.h), as float32 integers in a packed buffer, and a register-blocked float32 FMA
//   micro-kernel. Exact in any summation order when every product and partial sum is an integer of magnitude
//   below 2^24: checked per tile as max_m Σ_k |q_a[m, k]| · max |q_b| < 2^24 (attention at 8 bits: q@kᵀ
//   16·128·128 = 2^18 for head dim 16; the softmax output's rows sum to ≤ ~2^16, times 8-bit v: < 2^24). A tile
//   outside the bound (wide codes, NaN, codes at the certified quantizer's clamp ±2^18) makes the kernel return
//   false, and the whole call takes the float64 path below.
// - Other devices (CUDA), and on the CPU calls with a tile outside the bound, products of more than 2^21 codes (the
//   kernel's per-thread buffer) or more than 6 batch dims: float64 codes (NaN stays NaN) and one float64 batched
//   GEMM, exact while every partial sum stays below 2^53 (codes of ≤ 16 bits with K < 2^21 leave a margin); NaN in
//   a or b gives NaN in the outputs it reaches. No value is read back to the host.
// Output layout (CPU): a 4-D product [B, H, M, N] whose b is a head-interleaved view (b.stride(-1) = 1 and
// b.stride(1) < b.stride(2): v sliced from the qkv tensor [B, N, 3, H, hd]) is stored in [B, M, H, N] order, so
// that the attention's following o.transpose(1, 2).reshape(B, N, H·hd) is a view; every other result is
// contiguous. Values do not depend on it.
// Autograd (csrc/autograd/matmul.cpp): the straight-through gradient of the float product a @ b (SPEC §1 STE):
// grad_a = g @ bᵀ, grad_b = aᵀ @ g. The scales take no gradient.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace mnq {
namespace ops {

namespace backend {
// The CPU / CUDA kernel of the op (call it through csrc/ops.h's ops::quant_matmul, which also takes autograd).
at::Tensor quant_matmul(const at::Tensor& a, const at::Tensor& scale_a, const at::Tensor& b, const at::Tensor& scale_b);
}  // namespace backend

namespace cpu {
// One call of the CPU kernel: G = Π batch sizes products out[g] = a[g] @ b[g], a[g] [M, K], b[g] [K, N] and out[g]
// [M, N] addressed through strides (out's columns contiguous); batch index g decomposes over `batch` (row-major).
struct QuantMatmulArgs {
  static constexpr int kMaxBatchDims = 6;
  const float* a = nullptr;
  const float* b = nullptr;
  float* out = nullptr;
  int nbatch = 0;
  int64_t batch[kMaxBatchDims] = {}, a_bs[kMaxBatchDims] = {}, b_bs[kMaxBatchDims] = {}, o_bs[kMaxBatchDims] = {};
  int64_t M = 0, K = 0, N = 0;
  int64_t a_sm = 0, a_sk = 0, b_sk = 0, b_sn = 0, o_sm = 0;
  double s_a = 1.0, s_b = 1.0, s_out = 1.0;  // finite positive (checked by the caller)
};
// False when a product falls outside the float32 form (see above; the outputs are then partly written): the caller
// computes the call on its float64 path.
bool quant_matmul(const QuantMatmulArgs& p);
}  // namespace cpu

}  // namespace ops
}  // namespace mnq
