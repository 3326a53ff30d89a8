// mnq::quant_matmul: argument checks, the CPU kernel's call and the float64 path (see quant_matmul.h).
#include "csrc/ops/quant_matmul.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <cmath>

#include "csrc/checks.h"
#include "csrc/ops/int_product.h"

namespace mnq {
namespace ops {
namespace backend {
namespace {

constexpr const char* kOp = "quant_matmul";
constexpr int64_t kMaxTileWords = int64_t{1} << 21;

// The checks that need no device (the Meta kernel's too): dtypes and shapes.
void check_shapes(const at::Tensor& a, const at::Tensor& scale_a, const at::Tensor& b, const at::Tensor& scale_b) {
  check_float_tensor(kOp, "a", a);
  check_float_tensor(kOp, "b", b);
  TORCH_CHECK_VALUE(a.dim() >= 2, kOp, ": a must have at least 2 dimensions ([..., M, K]), got shape ", a.sizes());
  TORCH_CHECK_VALUE(b.dim() == a.dim() && b.sizes().slice(0, b.dim() - 2) == a.sizes().slice(0, a.dim() - 2), kOp,
                    ": b must have a's batch dims [..., K, N] (no broadcasting), got a ", a.sizes(), " and b ",
                    b.sizes());
  TORCH_CHECK_VALUE(b.size(-2) == a.size(-1), kOp, ": b's rows (dim -2) must equal a's columns (K = ", a.size(-1),
                    "), got a ", a.sizes(), " and b ", b.sizes());
  check_scale_arg(kOp, "scale_a", scale_a, 1, "[] (per tensor)");
  check_scale_arg(kOp, "scale_b", scale_b, 1, "[] (per tensor)");
}

void check_args(const at::Tensor& a, const at::Tensor& scale_a, const at::Tensor& b, const at::Tensor& scale_b) {
  check_shapes(a, scale_a, b, scale_b);
  check_device_supported(kOp, "a", a);
  check_same_device(kOp, "b", b, a, "a");
  check_scales_device(kOp, a, "a", {&scale_a, &scale_b});
}

// Any device: float64 codes, one float64 (batched) GEMM (exact: quant_matmul.h), the product with S_out.
at::Tensor generic(const at::Tensor& a, const at::Tensor& s_a, const at::Tensor& b, const at::Tensor& s_b,
                   const at::Tensor& s_out) {
  return at::matmul(codes64(a, s_a), codes64(b, s_b)).mul_(s_out).to(at::kFloat);
}

// The CPU kernel (csrc/cpu/quant_matmul.cpp) into an output laid out as quant_matmul.h says, or an undefined tensor
// when a product falls outside its float32 form (the caller takes generic).
at::Tensor cpu_kernel(const at::Tensor& a, double sa, const at::Tensor& b, double sb, double so) {
  const int64_t d = a.dim(), M = a.size(-2), K = a.size(-1), N = b.size(-1);
  at::Tensor out;
  if (d == 4 && b.stride(-1) == 1 && b.stride(1) < b.stride(2)) {
    out = at::empty({a.size(0), M, a.size(1), N}, a.options()).permute({0, 2, 1, 3});
  } else {
    out = at::empty(with_last_dim(a, N), a.options());
  }
  if (out.numel() == 0) return out;
  if (K == 0) return out.zero_();
  cpu::QuantMatmulArgs p;
  p.a = a.data_ptr<float>();
  p.b = b.data_ptr<float>();
  p.out = out.data_ptr<float>();
  p.nbatch = static_cast<int>(d - 2);
  for (int i = 0; i < p.nbatch; ++i) {
    p.batch[i] = a.size(i);
    p.a_bs[i] = a.stride(i);
    p.b_bs[i] = b.stride(i);
    p.o_bs[i] = out.stride(i);
  }
  p.M = M, p.K = K, p.N = N;
  p.a_sm = a.stride(-2), p.a_sk = a.stride(-1), p.b_sk = b.stride(-2), p.b_sn = b.stride(-1);
  p.o_sm = out.stride(-2);
  p.s_a = sa, p.s_b = sb, p.s_out = so;
  return cpu::quant_matmul(p) ? out : at::Tensor();
}

}  // namespace

at::Tensor quant_matmul(const at::Tensor& a, const at::Tensor& scale_a, const at::Tensor& b,
                        const at::Tensor& scale_b) {
  check_args(a, scale_a, b, scale_b);
  const at::Tensor s_a = scale_a.detach().to(a.device(), at::kDouble).reshape({});
  const at::Tensor s_b = scale_b.detach().to(a.device(), at::kDouble).reshape({});
  const at::Tensor s_out = s_a * s_b;
  if (a.is_cpu()) {
    // Values through data_ptr, not item(): the CPU's own memory, no device read.
    const double sa = *s_a.data_ptr<double>(), sb = *s_b.data_ptr<double>(), so = *s_out.data_ptr<double>();
    check_scale(kOp, "scale_a", sa);
    check_scale(kOp, "scale_b", sb);
    // The CPU kernel packs one product's codes per thread: products of more than kMaxTileWords codes (8 MiB; the
    // attention's are ~0.1 MiB) take the float64 path instead.
    const int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
    const int64_t words = M * ((K + 15) / 16 * 16) + K * ((N + 15) / 16 * 16);
    if (a.dim() - 2 <= cpu::QuantMatmulArgs::kMaxBatchDims && words <= kMaxTileWords && std::isfinite(so) && so > 0) {
      const at::Tensor out = cpu_kernel(a, sa, b, sb, so);
      if (out.defined()) return out;
    }
  }
  return generic(a, s_a, b, s_b, s_out);
}

namespace {
at::Tensor quant_matmul_meta(const at::Tensor& a, const at::Tensor& scale_a, const at::Tensor& b,
                             const at::Tensor& scale_b) {
  check_shapes(a, scale_a, b, scale_b);
  return at::empty(with_last_dim(a, b.size(-1)), a.options());
}
}  // namespace

TORCH_LIBRARY_IMPL(mnq, CPU, m) { m.impl("quant_matmul", &quant_matmul); }
TORCH_LIBRARY_IMPL(mnq, CUDA, m) { m.impl("quant_matmul", &quant_matmul); }
TORCH_LIBRARY_IMPL(mnq, Meta, m) { m.impl("quant_matmul", &quant_matmul_meta); }

}  // namespace backend
}  // namespace ops
}  // namespace mnq
