// ShiftGELU entry points (SPEC §3.2): validation, host constants, backend choice; CPU, CUDA and Meta registration.
#include "csrc/ops/shift_gelu.h"

#include <ATen/ops/empty.h>
#include <ATen/TensorOperators.h>
#include <torch/library.h>

#include <cmath>

#include "csrc/checks.h"
#include "csrc/dispatch.h"
#include "csrc/ops/backend.h"
#include "csrc/ops/qat.h"
#include "csrc/rowwise.h"

namespace mnq {
namespace ops {
namespace backend {
namespace {

// Declared input range: 16-bit codes. ShiftGELU is fed by an 8-bit QuantAct (SPEC §6); 16 bits keep q − max_row(q)
// within shift_exp's argument bound and the output q·sig within int32 (|out| < 2^30, kernels/shift_gelu.h).
constexpr int64_t kLo = -32768;
constexpr int64_t kHi = 32767;

void check_int_args(const char* op, int64_t out_bits, int64_t n) {
  check_int_arg(op, "out_bits", out_bits, 2, 16);
  check_int_arg(op, "n", n, 1, 30);
}

void check_args(const char* op, double scale, int64_t out_bits, int64_t n) {
  check_scale(op, "scale", scale);
  check_int_args(op, out_bits, n);
  // e1 at the row maximum is |x0|·2^n; beyond 2^31 − 1 the saturated sum no longer normalises it and the sigmoid
  // leaves its out_bits (kernels/shift_gelu.h). n = 23: scale ≥ 1/(255·1.702) ≈ 2.3041e-3.
  TORCH_CHECK_VALUE(kernels::shift_gelu_scale_ok(scale, static_cast<int>(n)), op, ": scale ", scale,
                    " is outside the range of ShiftGELU for n = ", n,
                    " (needs ceil(1/(1.702·scale))·2^n ≤ 2^31 − 1 and 1.702·scale finite)");
}

// S_out = S · 2^−(out_bits − 1): for a double or a float64 tensor (the same IEEE product).
template <class S>
S out_scale_of(const S& scale, int64_t out_bits) {
  return scale * std::ldexp(1.0, -static_cast<int>(out_bits - 1));
}

// dev_scale (CUDA QAT, qat.h device_scale): the kernel computes the constants and S_out from it and applies the NaN
// policy itself; `scale` is then unused and nothing is read back.
at::Tensor run(const char* op, const at::Tensor& in, double scale, int64_t out_bits, int64_t n, bool qat,
               const double* dev_scale = nullptr) {
  const char* name = qat ? "x" : "q";
  if (qat) {
    check_float_tensor(op, name, in);
  } else {
    check_int_tensor(op, name, in);
  }
  check_device_supported(op, name, in);
  check_min_dim(op, name, in, 1);
  if (dev_scale != nullptr) {
    check_int_args(op, out_bits, n);
  } else {
    check_args(op, scale, out_bits, n);
  }
  const at::Tensor inc = in.contiguous();
  at::Tensor out = at::empty(in.sizes(), in.options().dtype(qat ? at::kFloat : at::kInt));
  const Rows r = rows_of(inc);
  if (r.rows == 0) return out;
  if (dev_scale != nullptr) {
    const kernels::ShiftGeluParams p{r.rows, r.cols, {}, kLo, kHi, dev_scale, static_cast<int>(out_bits),
                                     static_cast<int>(n)};
    MNQ_CUDA_CALL(op, cuda::shift_gelu(inc, out, p, 0.0, 0.0, false));
    return out;
  }
  const kernels::ShiftGeluParams p{
      r.rows, r.cols, kernels::shift_gelu_consts(scale, static_cast<int>(out_bits), static_cast<int>(n)), kLo, kHi};
  const double out_scale = out_scale_of(scale, out_bits);
  const double inv_scale = 1.0 / scale;
  const bool check = needs_range_check(inc.scalar_type(), p.lo, p.hi);
  const QatRun backend = [&](const at::Tensor& i, const at::Tensor& o) {
    return i.is_cuda() ? MNQ_CUDA_CALL(op, cuda::shift_gelu(i, o, p, inv_scale, out_scale, check))
                       : cpu::shift_gelu(i, o, p, inv_scale, out_scale);
  };
  run_checked(op, name, qat, inc, out, inv_scale, p.lo, p.hi, true, backend);
  return out;
}

std::tuple<at::Tensor, double> shift_gelu_meta(const at::Tensor& q, double scale, int64_t out_bits, int64_t n) {
  check_args("shift_gelu", scale, out_bits, n);
  return {at::empty(q.sizes(), q.options().dtype(at::kInt)), out_scale_of(scale, out_bits)};
}

std::tuple<at::Tensor, at::Tensor> shift_gelu_qat_meta(const at::Tensor& x, const at::Tensor& scale,
                                                       int64_t out_bits, int64_t n) {
  check_int_args("shift_gelu_qat", out_bits, n);
  scale_arg("shift_gelu_qat", "scale", scale, x);
  return {at::empty(x.sizes(), x.options()), at::empty({}, x.options().dtype(at::kDouble))};
}

}  // namespace

std::tuple<at::Tensor, double> shift_gelu(const at::Tensor& q, double scale, int64_t out_bits, int64_t n) {
  return {run("shift_gelu", q, scale, out_bits, n, false), out_scale_of(scale, out_bits)};
}

std::tuple<at::Tensor, at::Tensor> shift_gelu_qat(const at::Tensor& x, const at::Tensor& scale, int64_t out_bits,
                                                  int64_t n) {
  const char* op = "shift_gelu_qat";
  check_float_tensor(op, "x", x);
  const at::Tensor s = scale_arg(op, "scale", scale, x);
  const double* dev = device_scale(s);
  return {run(op, x, dev ? 0.0 : scale_value(s), out_bits, n, true, dev), out_scale_of(s, out_bits)};
}

TORCH_LIBRARY_IMPL(mnq, CPU, m) {
  m.impl("shift_gelu", &shift_gelu);
  m.impl("shift_gelu_qat", &shift_gelu_qat);
}
TORCH_LIBRARY_IMPL(mnq, CUDA, m) {
  m.impl("shift_gelu", &shift_gelu);
  m.impl("shift_gelu_qat", &shift_gelu_qat);
}
TORCH_LIBRARY_IMPL(mnq, Meta, m) {
  m.impl("shift_gelu", &shift_gelu_meta);
  m.impl("shift_gelu_qat", &shift_gelu_qat_meta);
}

}  // namespace backend
}  // namespace ops
}  // namespace mnq
