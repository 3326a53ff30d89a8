// Log-Int-Softmax entry points (SPEC §2.3): validation, host constants, backend choice; CPU, CUDA and Meta
// registration.
#include "csrc/ops/log_int_softmax.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <torch/library.h>

#include "csrc/checks.h"
#include "csrc/dispatch.h"
#include "csrc/ops/backend.h"
#include "csrc/ops/qat.h"
#include "csrc/ops/iexp.h"
#include "csrc/rowwise.h"

namespace mnq {
namespace ops {
namespace backend {
namespace {

// Codes are uint8, so 2^bits − 1 ≤ 255.
void check_args(const char* op, double scale, int64_t bits) {
  check_iexp_scale(op, scale);
  check_int_arg(op, "bits", bits, 2, 8);
}

void check_input(const char* op, const char* name, const at::Tensor& in, bool qat) {
  if (qat) {
    check_float_tensor(op, name, in);
  } else {
    check_int_tensor(op, name, in);
  }
  check_device_supported(op, name, in);
  check_min_dim(op, name, in, 1);
}

kernels::LogIntSoftmaxParams params_of(const at::Tensor& in, double scale, int64_t bits) {
  const Rows r = rows_of(in);
  return kernels::LogIntSoftmaxParams{r.rows, r.cols, kernels::log_int_softmax_consts(scale, static_cast<int>(bits)),
                                      INT32_MIN, INT32_MAX};
}

std::tuple<at::Tensor, at::Tensor> log_int_softmax_meta(const at::Tensor& q, double scale, int64_t bits) {
  check_args("log_int_softmax", scale, bits);
  return {at::empty(q.sizes(), q.options().dtype(at::kByte)), at::empty(q.sizes(), q.options().dtype(at::kBool))};
}

std::tuple<at::Tensor, at::Tensor> log_int_softmax_qat_meta(const at::Tensor& x, const at::Tensor& scale,
                                                            int64_t bits) {
  check_int_arg("log_int_softmax_qat", "bits", bits, 2, 8);
  scale_arg("log_int_softmax_qat", "scale", scale, x);
  return {at::empty(x.sizes(), x.options()), at::empty({}, x.options().dtype(at::kDouble))};
}

// The QAT output's scale: values 2^−code are integers on the scale of the smallest code, 2^−(2^bits − 1).
double out_scale_of(int64_t bits) { return std::ldexp(1.0, -static_cast<int>((int64_t{1} << bits) - 1)); }

}  // namespace

std::tuple<at::Tensor, at::Tensor> log_int_softmax(const at::Tensor& q, double scale, int64_t bits) {
  const char* op = "log_int_softmax";
  check_input(op, "q", q, false);
  check_args(op, scale, bits);
  const at::Tensor qc = q.contiguous();
  at::Tensor code = at::empty(q.sizes(), q.options().dtype(at::kByte));
  at::Tensor mask = at::empty(q.sizes(), q.options().dtype(at::kBool));
  const kernels::LogIntSoftmaxParams p = params_of(qc, scale, bits);
  if (p.rows == 0) return {code, mask};
  [[maybe_unused]] const bool check = needs_range_check(qc.scalar_type(), p.lo, p.hi);  // CUDA builds only
  const bool ok = qc.is_cuda() ? MNQ_CUDA_CALL(op, cuda::log_int_softmax(qc, code, mask, p, check))
                               : cpu::log_int_softmax(qc, code, mask, p);
  if (!ok) fail_range(op, "q", p.lo, p.hi, false);
  return {code, mask};
}

std::tuple<at::Tensor, at::Tensor> log_int_softmax_qat(const at::Tensor& x, const at::Tensor& scale_t,
                                                       int64_t bits) {
  const char* op = "log_int_softmax_qat";
  check_input(op, "x", x, true);
  const at::Tensor s = scale_arg(op, "scale", scale_t, x);
  const at::Tensor xc = x.contiguous();
  at::Tensor value = at::empty(x.sizes(), x.options());
  const at::Tensor s_out = at::full({}, out_scale_of(bits), s.options());
  if (const double* dev = device_scale(s)) {  // CUDA: constants from the device scale, NaN policy in the kernel
    check_int_arg(op, "bits", bits, 2, 8);
    const Rows r = rows_of(xc);
    const kernels::LogIntSoftmaxParams p{r.rows, r.cols, {}, INT32_MIN, INT32_MAX, dev, static_cast<int>(bits)};
    if (p.rows > 0) MNQ_CUDA_CALL(op, cuda::log_int_softmax_qat(xc, value, p, 0.0));
    return {value, s_out};
  }
  const double scale = scale_value(s);
  check_args(op, scale, bits);
  const kernels::LogIntSoftmaxParams p = params_of(xc, scale, bits);
  if (p.rows == 0) return {value, s_out};
  const double inv_scale = 1.0 / scale;
  run_qat(xc, value, inv_scale, p.lo, p.hi, true,
          [&](const at::Tensor& i, const at::Tensor& o) {
            return i.is_cuda() ? MNQ_CUDA_CALL(op, cuda::log_int_softmax_qat(i, o, p, inv_scale))
                               : cpu::log_int_softmax_qat(i, o, p, inv_scale);
          });
  return {value, s_out};
}

TORCH_LIBRARY_IMPL(mnq, CPU, m) {
  m.impl("log_int_softmax", &log_int_softmax);
  m.impl("log_int_softmax_qat", &log_int_softmax_qat);
}
TORCH_LIBRARY_IMPL(mnq, CUDA, m) {
  m.impl("log_int_softmax", &log_int_softmax);
  m.impl("log_int_softmax_qat", &log_int_softmax_qat);
}
TORCH_LIBRARY_IMPL(mnq, Meta, m) {
  m.impl("log_int_softmax", &log_int_softmax_meta);
  m.impl("log_int_softmax_qat", &log_int_softmax_qat_meta);
}

}  // namespace backend
}  // namespace ops
}  // namespace mnq
