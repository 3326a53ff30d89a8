// Exact integer matrix products of the deploy engine (every Linear / Conv / attention matmul).
//
// int_mm (Linear, Conv): at::_int_mm (int8 × int8 → int32; oneDNN VNNI on CPU, cuBLASLt on CUDA).
// int_bmm (attention) on the CPU: kernels/int_gemm.h per (batch, head), int32 (or int64) accumulators, batches in
// parallel — the matrices are small and many, where a library call per batch costs more than its arithmetic.
// int_bmm on CUDA, and int_mm with a left operand wider than 8 bits: at::_int_mm per digit. Operands wider
// than 8 bits (softmax outputs: 16-bit codes, I-BERT's up to 2^16, LIS's 2^15) are split into signed base-256
// digits a = Σ_j d_j·256^j, d_j ∈ [−128, 127]; each digit is one int8 product, exact in int32 (|Σ_K d·b| ≤
// K·2^14 < 2^31 for K < 2^17), and the partial products are combined exactly in int64. Where _int_mm's shape
// rules fail (CUDA: M > 16, K and N multiples of 8) the product runs as a float64 GEMM of the integer operands,
// exact because every partial sum is an integer below 2^53 (checked: K·max|a|·max|b| < 2^53).
#pragma once

#include <ATen/core/Tensor.h>

namespace mnq {
namespace deploy {

// The bounds of the left operand's integers, inclusive: codes of b bits are [−2^(b−1), 2^(b−1) − 1].
struct IntRange {
  int64_t lo, hi;
  static IntRange bits(int64_t b) { return {-(int64_t(1) << (b - 1)), (int64_t(1) << (b - 1)) - 1}; }
};

// Signed base-256 digits needed for integers in `r` (n digits cover [−(128·(256^n − 1)/255), 127·(256^n − 1)/255]).
int64_t digits_for(IntRange r);

// a: [M, K] integers in `range`; b: [K, N] int8 (any strides). Returns a @ b: int32 when a fits one digit, else
// int64.
at::Tensor int_mm(const at::Tensor& a, IntRange range, const at::Tensor& b);
// Batched: a [G, M, K], b [G, K, N] → [G, M, N] (the batches run in parallel).
at::Tensor int_bmm(const at::Tensor& a, IntRange range, const at::Tensor& b);

}  // namespace deploy
}  // namespace mnq
