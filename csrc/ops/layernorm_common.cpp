// Host helpers shared by the LayerNorm entry points (SPEC §4): checks, affine constants, the common driver.
#include "csrc/ops/layernorm_common.h"

#include <ATen/ops/empty.h>

#include <cmath>

#include "csrc/checks.h"
#include "csrc/cpu/layernorm_simd.h"
#include "csrc/dispatch.h"
#include "csrc/ops/qat.h"
#include "csrc/rowwise.h"

namespace mnq {
namespace ops {

void check_ln_input(const char* op, const char* name, const at::Tensor& in, bool qat) {
  if (qat) {
    check_float_tensor(op, name, in);
  } else {
    check_int_tensor(op, name, in);
  }
  check_min_dim(op, name, in, 1);
  TORCH_CHECK_VALUE(in.size(-1) <= kernels::kLnMaxCols, op, ": the last dim of ", name, " (the normalized one) ",
                    "must be at most ", kernels::kLnMaxCols, ", got ", in.size(-1));
}

void check_ln_eps(const char* op, double eps) {
  TORCH_CHECK_VALUE(std::isfinite(eps) && eps >= 0, op, ": eps must be finite and non-negative, got ", eps);
}

void check_ln_scale(const char* op, const char* name, double scale) {
  check_scale(op, name, scale);
  TORCH_CHECK_VALUE(std::isfinite(1.0 / scale), op, ": ", name,
                    " must have a finite reciprocal (scale > 1/DBL_MAX ≈ 5.6e-309), got ", scale);
}

void check_ln_affine_args(const char* op, const at::Tensor& in, const at::Tensor& weight, const at::Tensor& bias) {
  const int64_t cols = in.size(-1);
  check_channel_vector(op, "weight", weight, cols);
  check_channel_vector(op, "bias", bias, cols);
  check_same_device(op, "weight", weight, in, "the input");
  check_same_device(op, "bias", bias, in, "the input");
}

HostValues::HostValues(const at::Tensor& t) {
  if (t.device().is_cpu() && t.is_contiguous() && t.scalar_type() == at::kFloat) {
    f_ = t.const_data_ptr<float>();
  } else if (t.device().is_cpu() && t.is_contiguous() && t.scalar_type() == at::kDouble) {
    d_ = t.const_data_ptr<double>();
  } else {
    copy_ = t.detach().to(at::kCPU, at::kDouble).contiguous();
    d_ = copy_.const_data_ptr<double>();
  }
}

LnAffine ln_affine(const char* op, const at::Tensor& weight, const at::Tensor& bias) {
  const int64_t cols = weight.size(0);
  const HostValues gp(weight), bp(bias);
  const at::TensorOptions host = at::TensorOptions().dtype(at::kDouble);
  at::Tensor bias_int = at::empty({cols}, host.dtype(at::kLong));
  at::Tensor s_out = at::empty({cols}, host);
  int64_t* bip = bias_int.data_ptr<int64_t>();
  double* sp = s_out.data_ptr<double>();
  const double sy = kernels::ln_sy(cols);
  if (cpu::ln_affine_consts(gp.f32(), gp.f64(), bp.f32(), bp.f64(), cols, sy, bip, sp)) {
    return LnAffine{bias_int.to(weight.device()), s_out.to(weight.device())};
  }
  for (int64_t c = 0; c < cols; ++c) {  // a channel was rejected: the checks, to name the first one
    TORCH_CHECK_VALUE(std::isfinite(gp[c]) && gp[c] != 0.0, op, ": weight must be finite and nonzero (the integer ",
                      "LayerNorm folds it into S_out = Sy·weight and bias_int = floor((bias/weight)/Sy)), got weight[",
                      c, "] = ", gp[c]);
    const kernels::LnAffineChannel a = kernels::ln_affine_channel(gp[c], bp[c], sy);
    TORCH_CHECK_VALUE(a.ok, op, ": bias must give |floor((bias/weight)/Sy)| ≤ 2^62 with Sy = ",
                      "sqrt(C)/2^30 (|bias/weight| ≤ 2^32·sqrt(C), so the int64 output cannot overflow), got bias[", c,
                      "] = ", bp[c], " with weight[", c, "] = ", gp[c]);
  }
  TORCH_CHECK(false, op, ": internal error: the affine constants were rejected, yet every channel passes its check");
}

namespace {

// The common tail: the backend on contiguous input with the affine constants given.
std::tuple<at::Tensor, at::Tensor> run_with(const char* op, const at::Tensor& in, double scale, const LnAffine& aff,
                                            bool qat, int64_t lo, int64_t hi, const AffineLnBackends& backends) {
  const char* name = qat ? "x" : "q";
  const at::Tensor inc = in.contiguous();
  at::Tensor out = at::empty(in.sizes(), in.options().dtype(qat ? at::kFloat : at::kLong));
  const Rows r = rows_of(inc);
  if (r.rows == 0) return {out, aff.s_out};
  const kernels::LnParams p{r.rows, r.cols, lo, hi, aff.bias_int.data_ptr<int64_t>()};
  const double inv_scale = 1.0 / scale;
  const QatRun backend = [&](const at::Tensor& i, const at::Tensor& o) {
    if (i.is_cuda()) {
      if (backends.cuda == nullptr) fail_no_cuda(op);
      return backends.cuda(i, o, p, inv_scale, aff.s_out, needs_range_check(i.scalar_type(), lo, hi));
    }
    return backends.cpu(i, o, p, inv_scale, aff.s_out);
  };
  run_checked(op, name, qat, inc, out, inv_scale, lo, hi, true, backend);
  return {out, aff.s_out};
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> run_affine_ln(const char* op, const at::Tensor& in, double scale,
                                                 const at::Tensor& weight, const at::Tensor& bias, bool qat, int64_t lo,
                                                 int64_t hi, const AffineLnBackends& backends) {
  const char* name = qat ? "x" : "q";
  check_ln_input(op, name, in, qat);
  check_device_supported(op, name, in);
  check_ln_scale(op, "scale", scale);
  check_ln_affine_args(op, in, weight, bias);
  return run_with(op, in, scale, ln_affine(op, weight, bias), qat, lo, hi, backends);
}

std::tuple<at::Tensor, at::Tensor> run_affine_ln_prepared(const char* op, const at::Tensor& in, double scale,
                                                          const LnAffine& aff, int64_t lo, int64_t hi,
                                                          const AffineLnBackends& backends) {
  check_ln_input(op, "q", in, false);
  check_device_supported(op, "q", in);
  check_ln_scale(op, "scale", scale);
  const int64_t cols = in.size(-1);
  for (const at::Tensor* t : {&aff.bias_int, &aff.s_out}) {
    TORCH_CHECK_VALUE(t->dim() == 1 && t->size(0) == cols && t->is_contiguous(), op,
                      ": prepared constants of shape [", cols, "] expected, got ", t->sizes());
    check_same_device(op, "the prepared constants", *t, in, "the input");
  }
  TORCH_CHECK_TYPE(aff.bias_int.scalar_type() == at::kLong && aff.s_out.scalar_type() == at::kDouble, op,
                   ": prepared constants must be int64 bias_int and float64 s_out (ln_affine's)");
  return run_with(op, in, scale, aff, false, lo, hi, backends);
}

namespace {

// The CUDA QAT path: the affine constants are computed on the device (kernels/layernorm_common.cuh) and the kernel
// takes 1/S from the scale's device memory and applies the NaN policy itself: nothing is read back.
std::tuple<at::Tensor, at::Tensor> run_affine_ln_device(const char* op, const at::Tensor& x, const at::Tensor& s,
                                                        const at::Tensor& weight, const at::Tensor& bias, int64_t lo,
                                                        int64_t hi, const AffineLnBackends& backends) {
  check_ln_input(op, "x", x, true);
  check_ln_affine_args(op, x, weight, bias);
  if (backends.cuda == nullptr) fail_no_cuda(op);  // a CPU-only build
  const int64_t cols = x.size(-1);
  const at::Tensor g = weight.detach().to(at::kDouble).contiguous();
  const at::Tensor b = bias.detach().to(at::kDouble).contiguous();
  const at::Tensor bias_int = at::empty({cols}, g.options().dtype(at::kLong));
  const at::Tensor s_out = at::empty({cols}, g.options());
  MNQ_CUDA_CALL(op, (cuda::ln_affine_consts(op, g, b, bias_int, s_out), true));
  const at::Tensor xc = x.contiguous();
  at::Tensor out = at::empty(x.sizes(), x.options());
  const Rows r = rows_of(xc);
  if (r.rows == 0) return {out, s_out};
  const kernels::LnParams p{r.rows, r.cols, lo, hi, bias_int.data_ptr<int64_t>(), s.data_ptr<double>()};
  backends.cuda(xc, out, p, 0.0, s_out, false);
  return {out, s_out};
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> run_affine_ln_qat(const char* op, const at::Tensor& x, const at::Tensor& scale,
                                                     const at::Tensor& weight, const at::Tensor& bias, double eps,
                                                     int64_t lo, int64_t hi, const AffineLnBackends& backends) {
  check_ln_eps(op, eps);
  check_float_tensor(op, "x", x);
  const at::Tensor s = scale_arg(op, "scale", scale, x);
  if (device_scale(s) != nullptr) return run_affine_ln_device(op, x, s, weight, bias, lo, hi, backends);
  return run_affine_ln(op, x, scale_value(s), weight, bias, true, lo, hi, backends);
}

std::tuple<at::Tensor, at::Tensor> affine_ln_meta(const char* op, const at::Tensor& in, const double* scale,
                                                  const at::Tensor& weight, const at::Tensor& bias, bool qat) {
  check_ln_input(op, qat ? "x" : "q", in, qat);
  if (scale != nullptr) check_ln_scale(op, "scale", *scale);
  check_ln_affine_args(op, in, weight, bias);
  return {at::empty(in.sizes(), in.options().dtype(qat ? at::kFloat : at::kLong)),
          at::empty({in.size(-1)}, in.options().dtype(at::kDouble))};
}

}  // namespace ops
}  // namespace mnq
