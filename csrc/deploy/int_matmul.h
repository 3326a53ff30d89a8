// Exact integer matrix products of the deploy engine (every Linear / Conv / attention matmul).
//
// int_mm (Linear, Conv): at::_int_mm (int8 × int8 → int32; oneDNN VNNI on CPU, cuBLASLt on CUDA).
// int_bmm (attention) on the CPU: kernels/int_gemm.h per (batch, head), int32 (or int64) accumulators, batches in
// parallel — the matrices are small and many, where a library call per batch costs more than its arithmetic.
// int_bmm on CUDA (any device but the CPU): one float64 batched GEMM of the integer operands, exact because every
// product and partial sum is an integer below 2^53 (checked: K·max|a|·128 < 2^53). int_mm of a left operand wider
// than 8 bits (softmax outputs: 16-bit codes, I-BERT's up to 2^16, LIS's 2^15) runs as int_bmm. On CUDA _int_mm's
// shape rules (M > 16, K and N positive multiples of 8, row-major contiguous operands) are checked before each call;
// where they fail (the head: N = classes; Swin's patch embedding: K = 4) the product is a float64 GEMM, exact as
// above (|Σ| ≤ K·2^14).
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

// The device path of int_bmm (any device; tests run it on the CPU): one float64 bmm, int32 or int64 as the CPU's.
at::Tensor int_bmm_f64(const at::Tensor& a, IntRange range, const at::Tensor& b);
// at::_int_mm's CUDA shape rules for a [M, K] @ b [K, N]: M > 16, K and N positive multiples of 8.
bool int_mm_shapes_ok(int64_t M, int64_t K, int64_t N);

}  // namespace deploy
}  // namespace mnq
