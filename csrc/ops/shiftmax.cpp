// Shiftmax entry points (SPEC §2.2): validation, host constants, backend choice; CPU, CUDA and Meta registration.
#include "csrc/ops/shiftmax.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
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

void check_int_args(const char* op, int64_t out_bits, int64_t n) {
  check_int_arg(op, "out_bits", out_bits, 2, 16);
  check_int_arg(op, "n", n, 1, 30);
}

void check_args(const char* op, double scale, int64_t out_bits, int64_t n) {
  check_scale(op, "scale", scale);
  check_int_args(op, out_bits, n);
  // The row maximum alone gives e = |x0|·2^n; at 2^31 − 1 the row sum saturates and the output is no longer a
  // distribution on b_out bits. Documented range: ceil(1/scale)·2^n < 2^31 − 1 (n = 15: scale > 1/65535).
  TORCH_CHECK_VALUE(kernels::shiftmax_scale_ok(scale, static_cast<int>(n)), op, ": scale ", scale,
                    " is too small for n = ", n, " (Shiftmax needs ceil(1/scale)·2^n < 2^31 − 1)");
}

double out_scale_of(int64_t out_bits) { return std::ldexp(1.0, -static_cast<int>(out_bits - 1)); }

// dev_scale (CUDA QAT, qat.h device_scale): the kernel computes the constants from it and applies the NaN policy
// itself; `scale` is then unused and nothing is read back.
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
  const double out_scale = out_scale_of(out_bits);
  if (dev_scale != nullptr) {
    const kernels::ShiftmaxParams p{r.rows,    r.cols,   {}, INT32_MIN, INT32_MAX, dev_scale, static_cast<int>(out_bits),
                                    static_cast<int>(n)};
    MNQ_CUDA_CALL(op, cuda::shiftmax(inc, out, p, 0.0, out_scale, false));
    return out;
  }
  const kernels::ShiftmaxParams p{r.rows, r.cols, kernels::shiftmax_consts(scale, static_cast<int>(out_bits),
                                                                          static_cast<int>(n)),
                                  INT32_MIN, INT32_MAX};
  const double inv_scale = 1.0 / scale;
  const bool check = needs_range_check(inc.scalar_type(), p.lo, p.hi);
  const QatRun backend = [&](const at::Tensor& i, const at::Tensor& o) {
    return i.is_cuda() ? MNQ_CUDA_CALL(op, cuda::shiftmax(i, o, p, inv_scale, out_scale, check))
                       : cpu::shiftmax(i, o, p, inv_scale, out_scale);
  };
  run_checked(op, name, qat, inc, out, inv_scale, p.lo, p.hi, true, backend);
  return out;
}

std::tuple<at::Tensor, double> shiftmax_meta(const at::Tensor& q, double scale, int64_t out_bits, int64_t n) {
  check_args("shiftmax", scale, out_bits, n);
  return {at::empty(q.sizes(), q.options().dtype(at::kInt)), out_scale_of(out_bits)};
}

std::tuple<at::Tensor, at::Tensor> shiftmax_qat_meta(const at::Tensor& x, const at::Tensor& scale, int64_t out_bits,
                                                     int64_t n) {
  check_int_args("shiftmax_qat", out_bits, n);
  scale_arg("shiftmax_qat", "scale", scale, x);
  return {at::empty(x.sizes(), x.options()), at::empty({}, x.options().dtype(at::kDouble))};
}

}  // namespace

std::tuple<at::Tensor, double> shiftmax(const at::Tensor& q, double scale, int64_t out_bits, int64_t n) {
  return {run("shiftmax", q, scale, out_bits, n, false), out_scale_of(out_bits)};
}

std::tuple<at::Tensor, at::Tensor> shiftmax_qat(const at::Tensor& x, const at::Tensor& scale, int64_t out_bits,
                                                int64_t n) {
  const char* op = "shiftmax_qat";
  check_float_tensor(op, "x", x);
  const at::Tensor s = scale_arg(op, "scale", scale, x);
  const double* dev = device_scale(s);
  return {run(op, x, dev ? 0.0 : scale_value(s), out_bits, n, true, dev),
          at::full({}, out_scale_of(out_bits), s.options())};
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

}  // namespace backend
}  // namespace ops
}  // namespace mnq
