// Shiftmax entry points (SPEC §2.2): validation, host constants, backend choice; CPU, CUDA and Meta registration.
#include "csrc/ops/shiftmax.h"

#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <cmath>

#include "csrc/checks.h"
#include "csrc/dispatch.h"
#include "csrc/ops.h"
#include "csrc/rowwise.h"

namespace mnq {
namespace ops {
namespace {

void check_args(const char* op, double scale, int64_t out_bits, int64_t n) {
  check_scale(op, "scale", scale);
  check_int_arg(op, "out_bits", out_bits, 2, 16);
  check_int_arg(op, "n", n, 1, 30);
  // The row maximum alone gives e = |x0|·2^n; at 2^31 − 1 the row sum saturates and the output is no longer a
  // distribution on b_out bits. Documented range: ceil(1/scale)·2^n < 2^31 − 1 (n = 15: scale > 1/65535).
  const double x0 = std::floor(-1.0 / scale);
  TORCH_CHECK_VALUE(-x0 * std::ldexp(1.0, static_cast<int>(n)) < 2147483647.0, op, ": scale ", scale,
                    " is too small for n = ", n, " (Shiftmax needs ceil(1/scale)·2^n < 2^31 − 1)");
}

at::Tensor run(const char* op, const at::Tensor& in, double scale, int64_t out_bits, int64_t n, bool qat) {
  const char* name = qat ? "x" : "q";
  if (qat) {
    check_float_tensor(op, name, in);
  } else {
    check_int_tensor(op, name, in);
  }
  check_device_supported(op, name, in);
  check_min_dim(op, name, in, 1);
  check_args(op, scale, out_bits, n);
  const at::Tensor inc = in.contiguous();
  at::Tensor out = at::empty(in.sizes(), in.options().dtype(qat ? at::kFloat : at::kInt));
  const Rows r = rows_of(inc);
  if (r.rows == 0) return out;
  const kernels::ShiftmaxParams p{r.rows, r.cols, kernels::shiftmax_consts(scale, static_cast<int>(out_bits),
                                                                          static_cast<int>(n)),
                                  INT32_MIN, INT32_MAX};
  const double out_scale = std::ldexp(1.0, -static_cast<int>(out_bits - 1));
  const double inv_scale = 1.0 / scale;
  const bool check = needs_range_check(inc.scalar_type(), p.lo, p.hi);
  const bool ok = inc.is_cuda() ? MNQ_CUDA_CALL(op, cuda::shiftmax(inc, out, p, inv_scale, out_scale, check))
                                : cpu::shiftmax(inc, out, p, inv_scale, out_scale);
  if (!ok) fail_range(op, name, p.lo, p.hi, qat);
  return out;
}

std::tuple<at::Tensor, double> shiftmax_meta(const at::Tensor& q, double scale, int64_t out_bits, int64_t n) {
  check_args("shiftmax", scale, out_bits, n);
  return {at::empty(q.sizes(), q.options().dtype(at::kInt)), std::ldexp(1.0, -static_cast<int>(out_bits - 1))};
}

at::Tensor shiftmax_qat_meta(const at::Tensor& x, double scale, int64_t out_bits, int64_t n) {
  check_args("shiftmax_qat", scale, out_bits, n);
  return at::empty(x.sizes(), x.options());
}

}  // namespace

std::tuple<at::Tensor, double> shiftmax(const at::Tensor& q, double scale, int64_t out_bits, int64_t n) {
  return {run("shiftmax", q, scale, out_bits, n, false), std::ldexp(1.0, -static_cast<int>(out_bits - 1))};
}

at::Tensor shiftmax_qat(const at::Tensor& x, double scale, int64_t out_bits, int64_t n) {
  return run("shiftmax_qat", x, scale, out_bits, n, true);
}

TORCH_LIBRARY_IMPL(mnq, CPU, m) {
  m.impl("shiftmax", &shiftmax);
  m.impl("shiftmax_qat", &shiftmax_qat);
}
TORCH_LIBRARY_IMPL(mnq, CUDA, m) {
  m.impl("shiftmax", &shiftmax);
  m.impl("shiftmax_qat", &shiftmax_qat);
}
TORCH_LIBRARY_IMPL(mnq, Meta, m) {
  m.impl("shiftmax", &shiftmax_meta);
  m.impl("shiftmax_qat", &shiftmax_qat_meta);
}

}  // namespace ops
}  // namespace mnq
