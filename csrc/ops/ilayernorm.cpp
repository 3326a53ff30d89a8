// I-LayerNorm entry points (SPEC §4.1): declared input range 16-bit codes; CPU, CUDA and Meta registration.
// Validation, affine constants and backend choice are layernorm_common.cpp's run_affine_ln.
#include "csrc/ops/ilayernorm.h"

#include <torch/library.h>

#include "csrc/checks.h"
#include "csrc/ops/backend.h"
#include "csrc/ops/prepared.h"
#include "csrc/ops/layernorm_common.h"
#include "csrc/ops/qat.h"

namespace mnq {
namespace ops {
namespace backend {
namespace {

#ifdef MNQ_WITH_CUDA
constexpr AffineLnBackends kBackends{&cpu::ilayernorm, &cuda::ilayernorm};
#else
constexpr AffineLnBackends kBackends{&cpu::ilayernorm, nullptr};
#endif

std::tuple<at::Tensor, at::Tensor> ilayernorm_meta(const at::Tensor& q, double scale, const at::Tensor& weight,
                                                   const at::Tensor& bias) {
  return affine_ln_meta("ilayernorm", q, &scale, weight, bias, false);
}

std::tuple<at::Tensor, at::Tensor> ilayernorm_qat_meta(const at::Tensor& x, const at::Tensor& scale,
                                                       const at::Tensor& weight, const at::Tensor& bias, double eps) {
  check_ln_eps("ilayernorm_qat", eps);
  scale_arg("ilayernorm_qat", "scale", scale, x);
  return affine_ln_meta("ilayernorm_qat", x, nullptr, weight, bias, true);
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> ilayernorm(const at::Tensor& q, double scale, const at::Tensor& weight,
                                              const at::Tensor& bias) {
  return run_affine_ln("ilayernorm", q, scale, weight, bias, false, kernels::kIlnLo, kernels::kIlnHi, kBackends);
}

std::tuple<at::Tensor, at::Tensor> ilayernorm_qat(const at::Tensor& x, const at::Tensor& scale,
                                                  const at::Tensor& weight, const at::Tensor& bias, double eps) {
  return run_affine_ln_qat("ilayernorm_qat", x, scale, weight, bias, eps, kernels::kIlnLo, kernels::kIlnHi, kBackends);
}

std::tuple<at::Tensor, at::Tensor> ilayernorm_prepared(const at::Tensor& q, double scale, const LnAffine& aff) {
  return run_affine_ln_prepared("ilayernorm", q, scale, aff, kernels::kIlnLo, kernels::kIlnHi, kBackends);
}

TORCH_LIBRARY_IMPL(mnq, CPU, m) {
  m.impl("ilayernorm", &ilayernorm);
  m.impl("ilayernorm_qat", &ilayernorm_qat);
}
TORCH_LIBRARY_IMPL(mnq, CUDA, m) {
  m.impl("ilayernorm", &ilayernorm);
  m.impl("ilayernorm_qat", &ilayernorm_qat);
}
TORCH_LIBRARY_IMPL(mnq, Meta, m) {
  m.impl("ilayernorm", &ilayernorm_meta);
  m.impl("ilayernorm_qat", &ilayernorm_qat_meta);
}

}  // namespace backend
}  // namespace ops
}  // namespace mnq
