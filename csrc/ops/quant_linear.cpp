// mnq::quant_linear: argument checks, the CPU int8 path and the float64 path (see quant_linear.h).
#include "csrc/ops/quant_linear.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <cmath>

#include "csrc/checks.h"
#include "csrc/ops/int_product.h"

namespace mnq {
namespace ops {
namespace backend {
namespace {

constexpr const char* kOp = "quant_linear";

// The checks that need no device (the Meta kernel's too): dtypes, shapes, which arguments are given.
void check_shapes(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& weight,
                  const at::Tensor& weight_scale, const std::optional<at::Tensor>& bias) {
  check_float_tensor(kOp, "x", x);
  TORCH_CHECK_VALUE(x.dim() >= 1, kOp, ": x must have at least 1 dimension (features last), got shape ", x.sizes());
  check_float_tensor(kOp, "weight", weight);
  const int64_t K = x.size(-1);
  TORCH_CHECK_VALUE(weight.dim() == 2 && weight.size(1) == K, kOp, ": weight must have shape [out_features, ", K,
                    "] (x's last dim is ", K, "), got ", weight.sizes());
  const int64_t N = weight.size(0);
  check_scale_arg(kOp, "scale", scale, 1, "[] (per tensor)");
  check_scale_arg(kOp, "weight_scale", weight_scale, N, "[out_features]");
  TORCH_CHECK_VALUE(weight_scale.dim() == 1 || N == 1, kOp, ": weight_scale must be 1-D [", N, "], got ",
                    weight_scale.sizes());
  if (bias.has_value() && bias->defined()) {
    TORCH_CHECK_TYPE(at::isFloatingType(bias->scalar_type()), kOp, ": bias must be a floating-point tensor, got ",
                     bias->scalar_type());
    TORCH_CHECK_VALUE(bias->dim() == 1 && bias->size(0) == N, kOp, ": bias must have shape [", N, "], got ",
                      bias->sizes());
  }
}

void check_args(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& weight, const at::Tensor& weight_scale,
                const std::optional<at::Tensor>& bias) {
  check_shapes(x, scale, weight, weight_scale, bias);
  check_device_supported(kOp, "x", x);
  check_same_device(kOp, "weight", weight, x, "x");
  check_scales_device(kOp, x, "x", {&scale, &weight_scale});
  if (bias.has_value() && bias->defined()) check_same_device(kOp, "bias", *bias, x, "x");
}

// Any device: float64 codes, one float64 GEMM (exact: quant_linear.h), the bias codes, the product with S_out.
at::Tensor generic(const at::Tensor& x, const at::Tensor& s_a, const at::Tensor& weight, const at::Tensor& s_w,
                   const at::Tensor& s_out, const std::optional<at::Tensor>& bias) {
  at::Tensor acc = at::matmul(codes64(x, s_a), codes64(weight, s_w.unsqueeze(1)).t());
  if (bias.has_value() && bias->defined()) acc.add_(codes64(*bias, s_out));
  return acc.mul_(s_out).to(at::kFloat);
}

// Rows per block of the CPU int8 path. A product whose int32 sums exceed 2 MiB (about a core's L2) is made in blocks
// of rows whose sums take ~256 KiB (at least 64 rows): each block's codes, GEMM and epilogue in turn, so that the
// epilogue reads the sums from L2 instead of memory; smaller products in one piece (the GEMM's own threads). On the
// Intel host of 2026-12-08 (1 thread): with the analyzer's Linears ([3200, 64] @ [64, 192] and [64, 256]) blocked the
// whole analysis took 2.07–2.12 s against 2.12–2.31 s (five alternated runs, −5%; the model's quantized forward 35.7 →
// 32 ms), fc1 at batch 8 −5%; at 2 threads both the same. fc1 at batch 1 (1.2 MiB of sums) in blocks was 20% slower at
// 2 threads (four single-threaded GEMMs of 64 rows against one two-threaded one), hence the threshold.
int64_t block_rows(int64_t M, int64_t N) {
  constexpr int64_t kWhole = int64_t{2} << 20, kBlock = int64_t{256} << 10;
  if (4 * M * N <= kWhole) return M;
  return std::max<int64_t>(64, kBlock / (4 * N));
}

// The CPU int8 path, or an undefined tensor when a code does not fit int8 (or x has NaN): the caller takes generic.
// Values are read through data_ptr, not item(): nothing here is a device read (the CPU's own memory).
at::Tensor cpu_int8(const at::Tensor& x, const at::Tensor& s_a, const at::Tensor& weight, const at::Tensor& s_w,
                    const at::Tensor& s_out, const std::optional<at::Tensor>& bias) {
  const int64_t K = x.size(-1), N = weight.size(0), M = K == 0 ? 0 : x.numel() / K;
  if (M == 0 || K == 0 || K >= (int64_t(1) << 17)) return at::Tensor();  // int32 sums: K·2^14 < 2^31
  const at::Tensor wc = weight.contiguous();
  at::Tensor qw = at::empty({N, K}, x.options().dtype(at::kChar));  // _int_mm takes its transposed view as [K, N]
  if (!cpu::weight_codes(wc.data_ptr<float>(), s_w.data_ptr<double>(), N, K, qw.data_ptr<int8_t>())) {
    return at::Tensor();
  }
  const at::Tensor xc = x.reshape({M, K}).contiguous();
  at::Tensor qa = at::empty({M, K}, x.options().dtype(at::kChar));
  const at::Tensor qb = bias.has_value() && bias->defined() ? codes64(*bias, s_out).contiguous()
                                                            : at::zeros({N}, s_out.options());
  // The codes of rows [r0, r0 + n) and their int32 product; undefined when a code does not fit int8 (or NaN).
  auto product = [&](int64_t r0, int64_t n) {
    if (!cpu::activation_codes(xc.data_ptr<float>() + r0 * K, *s_a.data_ptr<double>(), n * K,
                               qa.data_ptr<int8_t>() + r0 * K)) {
      return at::Tensor();
    }
    return at::_int_mm(qa.narrow(0, r0, n), qw.t());
  };
  const int64_t rows = block_rows(M, N);
  if (rows >= M) {
    const at::Tensor acc = product(0, M);
    if (!acc.defined()) return acc;
    // In place: each float32 output takes its int32 sum's four bytes (one buffer fewer per call).
    const at::Tensor y = acc.view(at::kFloat);
    cpu::quant_linear_epilogue(acc, qb.data_ptr<double>(), s_out.data_ptr<double>(), y);
    return y.view(with_last_dim(x, N));
  }
  // Blocks of rows: each block's codes, its int32 product and the epilogue in turn, so that the block's sums are
  // read back from L2 rather than memory (blocks in parallel, each GEMM on one thread).
  at::Tensor y = at::empty({M, N}, x.options().dtype(at::kFloat));
  std::atomic<bool> ok{true};
  const int64_t blocks = (M + rows - 1) / rows;
  at::parallel_for(0, blocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1 && ok.load(std::memory_order_relaxed); ++b) {
      const int64_t r0 = b * rows, n = std::min(rows, M - r0);
      const at::Tensor acc = product(r0, n);
      if (!acc.defined()) {
        ok = false;
        return;
      }
      cpu::quant_linear_epilogue(acc, qb.data_ptr<double>(), s_out.data_ptr<double>(), y.narrow(0, r0, n));
    }
  });
  if (!ok) return at::Tensor();
  return y.view(with_last_dim(x, N));
}

}  // namespace

at::Tensor quant_linear(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& weight,
                        const at::Tensor& weight_scale, const std::optional<at::Tensor>& bias) {
  check_args(x, scale, weight, weight_scale, bias);
  const at::Tensor s_a = scale.detach().to(x.device(), at::kDouble).reshape({});
  const at::Tensor s_w = weight_scale.detach().to(x.device(), at::kDouble).reshape({-1}).contiguous();
  const at::Tensor s_out = (s_a * s_w).contiguous();
  if (x.is_cpu()) {
    check_scale(kOp, "scale", *s_a.data_ptr<double>());
    const double* sw = s_w.data_ptr<double>();
    for (int64_t n = 0; n < s_w.numel(); ++n) {
      TORCH_CHECK_VALUE(std::isfinite(sw[n]) && sw[n] > 0, kOp, ": weight_scale must hold finite positive scales, got ",
                        sw[n], " at output channel ", n);
    }
    const at::Tensor y = cpu_int8(x, s_a, weight, s_w, s_out, bias);
    if (y.defined()) return y;
  }
  return generic(x.reshape({-1, x.size(-1)}), s_a, weight, s_w, s_out, bias).reshape(with_last_dim(x, weight.size(0)));
}

namespace {
at::Tensor quant_linear_meta(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& weight,
                             const at::Tensor& weight_scale, const std::optional<at::Tensor>& bias) {
  check_shapes(x, scale, weight, weight_scale, bias);
  return at::empty(with_last_dim(x, weight.size(0)), x.options());
}
}  // namespace

TORCH_LIBRARY_IMPL(mnq, CPU, m) { m.impl("quant_linear", &quant_linear); }
TORCH_LIBRARY_IMPL(mnq, CUDA, m) { m.impl("quant_linear", &quant_linear); }
TORCH_LIBRARY_IMPL(mnq, Meta, m) { m.impl("quant_linear", &quant_linear_meta); }

}  // namespace backend
}  // namespace ops
}  // namespace mnq
