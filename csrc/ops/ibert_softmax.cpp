// I-BERT softmax entry points (SPEC §2.1): validation, host constants, backend choice; CPU, CUDA and Meta
// registration.
#include "csrc/ops/ibert_softmax.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <torch/library.h>

#include <cmath>

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

void check_args(const char* op, double scale, int64_t out_bits) {
  check_iexp_scale(op, scale);
  check_int_arg(op, "out_bits", out_bits, 2, 16);
}

double out_scale_of(int64_t out_bits) { return std::ldexp(1.0, -static_cast<int>(out_bits)); }

// dev_scale (CUDA QAT, qat.h device_scale): the kernel computes the constants from it and applies the NaN policy
// itself; `scale` is then unused and nothing is read back.
at::Tensor run(const char* op, const at::Tensor& in, double scale, int64_t out_bits, bool qat,
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
    check_int_arg(op, "out_bits", out_bits, 2, 16);
  } else {
    check_args(op, scale, out_bits);
  }
  const at::Tensor inc = in.contiguous();
  at::Tensor out = at::empty(in.sizes(), in.options().dtype(qat ? at::kFloat : at::kInt));
  const Rows r = rows_of(inc);
  if (r.rows == 0) return out;
  if (dev_scale != nullptr) {
    const kernels::IbertSoftmaxParams p{r.rows, r.cols, {}, INT32_MIN, INT32_MAX, dev_scale, static_cast<int>(out_bits)};
    MNQ_CUDA_CALL(op, cuda::ibert_softmax(inc, out, p, 0.0, out_scale_of(out_bits), false));
    return out;
  }
  const kernels::IbertSoftmaxParams p{r.rows, r.cols,
                                      kernels::ibert_softmax_consts(scale, static_cast<int>(out_bits)), INT32_MIN,
                                      INT32_MAX};
  const double inv_scale = 1.0 / scale;
  const bool check = needs_range_check(inc.scalar_type(), p.lo, p.hi);
  const QatRun backend = [&](const at::Tensor& i, const at::Tensor& o) {
    return i.is_cuda() ? MNQ_CUDA_CALL(op, cuda::ibert_softmax(i, o, p, inv_scale, out_scale_of(out_bits), check))
                       : cpu::ibert_softmax(i, o, p, inv_scale, out_scale_of(out_bits));
  };
  run_checked(op, name, qat, inc, out, inv_scale, p.lo, p.hi, true, backend);
  return out;
}

std::tuple<at::Tensor, double> ibert_softmax_meta(const at::Tensor& q, double scale, int64_t out_bits) {
  check_args("ibert_softmax", scale, out_bits);
  return {at::empty(q.sizes(), q.options().dtype(at::kInt)), out_scale_of(out_bits)};
}

std::tuple<at::Tensor, at::Tensor> ibert_softmax_qat_meta(const at::Tensor& x, const at::Tensor& scale,
                                                          int64_t out_bits) {
  check_int_arg("ibert_softmax_qat", "out_bits", out_bits, 2, 16);
  scale_arg("ibert_softmax_qat", "scale", scale, x);
  return {at::empty(x.sizes(), x.options()), at::empty({}, x.options().dtype(at::kDouble))};
}

}  // namespace

std::tuple<at::Tensor, double> ibert_softmax(const at::Tensor& q, double scale, int64_t out_bits) {
  return {run("ibert_softmax", q, scale, out_bits, false), out_scale_of(out_bits)};
}

std::tuple<at::Tensor, at::Tensor> ibert_softmax_qat(const at::Tensor& x, const at::Tensor& scale, int64_t out_bits) {
  const char* op = "ibert_softmax_qat";
  check_float_tensor(op, "x", x);
  const at::Tensor s = scale_arg(op, "scale", scale, x);
  const double* dev = device_scale(s);
  return {run(op, x, dev ? 0.0 : scale_value(s), out_bits, true, dev), at::full({}, out_scale_of(out_bits), s.options())};
}

TORCH_LIBRARY_IMPL(mnq, CPU, m) {
  m.impl("ibert_softmax", &ibert_softmax);
  m.impl("ibert_softmax_qat", &ibert_softmax_qat);
}
TORCH_LIBRARY_IMPL(mnq, CUDA, m) {
  m.impl("ibert_softmax", &ibert_softmax);
  m.impl("ibert_softmax_qat", &ibert_softmax_qat);
}
TORCH_LIBRARY_IMPL(mnq, Meta, m) {
  m.impl("ibert_softmax", &ibert_softmax_meta);
  m.impl("ibert_softmax_qat", &ibert_softmax_qat_meta);
}

}  // namespace backend
}  // namespace ops
}  // namespace mnq
