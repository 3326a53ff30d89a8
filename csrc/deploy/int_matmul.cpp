// Exact integer matrix products (see int_matmul.h).
#include "csrc/deploy/int_matmul.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/int_gemm.h"

namespace mnq {
namespace deploy {
namespace {

constexpr double kExactF64 = 9007199254740992.0;  // 2^53

// One int8 × int8 product, into `out` (int32 [M, N]).
void mm8(const at::Tensor& a, const at::Tensor& b, at::Tensor out) {
  if (a.is_cpu() || int_mm_shapes_ok(a.size(0), a.size(1), b.size(1))) {
    at::_int_mm_out(out, a.is_cpu() ? a : a.contiguous(), b.is_cpu() ? b : b.contiguous());
  } else {  // |Σ| ≤ K·2^14 < 2^53: the float64 GEMM of these integers is exact
    out.copy_(at::mm(a.to(at::kDouble), b.to(at::kDouble)));
  }
}

}  // namespace

bool int_mm_shapes_ok(int64_t M, int64_t K, int64_t N) { return M > 16 && K > 0 && K % 8 == 0 && N > 0 && N % 8 == 0; }

int64_t digits_for(IntRange r) {
  int64_t n = 1;
  int64_t lo = 128, hi = 127;  // the range of n signed digits: [−lo, hi]
  while (r.lo < -lo || r.hi > hi) {
    lo = lo * 256 + 128;
    hi = hi * 256 + 127;
    ++n;
  }
  return n;
}

// The CPU batched product: kernels/int_gemm.h per batch, batches in parallel, int32 accumulators when the bound
// K·max|a|·128 < 2^31 allows, else int64.
at::Tensor cpu_bmm(const at::Tensor& a_in, IntRange range, double a_max, const at::Tensor& b_in) {
  const int64_t G = a_in.size(0), M = a_in.size(1), K = a_in.size(2), N = b_in.size(2);
  const bool narrow_a = range.lo >= -128 && range.hi <= 127;
  const at::Tensor a = a_in.to(narrow_a ? at::kChar : at::kInt).contiguous();
  const at::Tensor b = b_in.contiguous();
  const bool acc32 = static_cast<double>(K) * a_max * 128.0 < 2147483648.0;
  at::Tensor c = at::empty({G, M, N}, a.options().dtype(acc32 ? at::kInt : at::kLong));
  const int8_t* bp = b.data_ptr<int8_t>();
  auto run = [&](auto* ap, auto* cp) {
    at::parallel_for(0, G, 1, [&](int64_t g0, int64_t g1) {
      for (int64_t g = g0; g < g1; ++g) kernels::int_gemm(ap + g * M * K, bp + g * K * N, cp + g * M * N, M, N, K);
    });
  };
  if (narrow_a && acc32) run(a.data_ptr<int8_t>(), c.data_ptr<int32_t>());
  if (narrow_a && !acc32) run(a.data_ptr<int8_t>(), c.data_ptr<int64_t>());
  if (!narrow_a && acc32) run(a.data_ptr<int32_t>(), c.data_ptr<int32_t>());
  if (!narrow_a && !acc32) run(a.data_ptr<int32_t>(), c.data_ptr<int64_t>());
  return c;
}

// Any other device (CUDA): one float64 batched GEMM of the integer operands. Exact: every product and every partial
// sum is an integer of magnitude ≤ K·max|a|·128 < 2^53 (checked), so each float64 operation of any summation order
// (FMA or not) is exact. One library call for all G = B·heads matrices, where _int_mm has no batched form and
// attention's N (tokens: 50, 197, 49) is no multiple of 8; the result has the CPU path's dtype.
at::Tensor int_bmm_f64(const at::Tensor& a, IntRange range, const at::Tensor& b) {
  const int64_t K = a.size(2);
  const double a_max = static_cast<double>(std::max(-range.lo, range.hi));
  TORCH_CHECK(static_cast<double>(K) * a_max * 128.0 < kExactF64, "int_bmm: K·max|a|·128 exceeds 2^53");
  const bool acc32 = static_cast<double>(K) * a_max * 128.0 < 2147483648.0;
  return at::bmm(a.to(at::kDouble), b.to(at::kDouble)).to(acc32 ? at::kInt : at::kLong);
}

at::Tensor int_bmm(const at::Tensor& a, IntRange range, const at::Tensor& b) {
  TORCH_CHECK(a.dim() == 3 && b.dim() == 3 && a.size(0) == b.size(0) && a.size(2) == b.size(1),
              "int_bmm: shapes ", a.sizes(), " and ", b.sizes(), " do not multiply");
  TORCH_CHECK(b.scalar_type() == at::kChar, "int_bmm: the right operand must be int8");
  TORCH_CHECK(a.device() == b.device(), "int_bmm: operands on ", a.device(), " and ", b.device());
  const int64_t K = a.size(2);
  const double a_max = static_cast<double>(std::max(-range.lo, range.hi));
  TORCH_CHECK(static_cast<double>(K) * a_max * 128.0 < kExactF64, "int_bmm: K·max|a|·128 exceeds 2^53");
  TORCH_CHECK(a_max < 2147483648.0, "int_bmm: the left operand must fit int32");
  return a.is_cpu() ? cpu_bmm(a, range, a_max, b) : int_bmm_f64(a, range, b);
}

at::Tensor int_mm(const at::Tensor& a, IntRange range, const at::Tensor& b) {
  TORCH_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(0), "int_mm: shapes ", a.sizes(), " and ",
              b.sizes(), " do not multiply");
  if (digits_for(range) == 1) {
    at::Tensor out = at::empty({a.size(0), b.size(1)}, a.options().dtype(at::kInt));
    mm8(a.scalar_type() == at::kChar ? a : a.to(at::kChar), b, out);
    return out;
  }
  return int_bmm(a.unsqueeze(0), range, b.unsqueeze(0)).squeeze(0);  // wider codes: exact batched paths
}

}  // namespace deploy
}  // namespace mnq
