// I-BERT LayerNorm entry points (SPEC §4.2): declared input range 22-bit codes; CPU, CUDA and Meta registration.
// Validation, affine constants and backend choice are layernorm_common.cpp's run_affine_ln.
#include "csrc/ops/ibert_layernorm.h"

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
constexpr AffineLnBackends kBackends{&cpu::ibert_layernorm, &cuda::ibert_layernorm};
#else
constexpr AffineLnBackends kBackends{&cpu::ibert_layernorm, nullptr};
#endif

std::tuple<at::Tensor, at::Tensor> ibert_layernorm_meta(const at::Tensor& q, double scale, const at::Tensor& weight,
                                                        const at::Tensor& bias) {
  return affine_ln_meta("ibert_layernorm", q, &scale, weight, bias, false);
}

std::tuple<at::Tensor, at::Tensor> ibert_layernorm_qat_meta(const at::Tensor& x, const at::Tensor& scale,
                                                            const at::Tensor& weight, const at::Tensor& bias,
                                                            double eps) {
  check_ln_eps("ibert_layernorm_qat", eps);
  scale_arg("ibert_layernorm_qat", "scale", scale, x);
  return affine_ln_meta("ibert_layernorm_qat", x, nullptr, weight, bias, true);
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> ibert_layernorm(const at::Tensor& q, double scale, const at::Tensor& weight,
                                                   const at::Tensor& bias) {
  return run_affine_ln("ibert_layernorm", q, scale, weight, bias, false, kernels::kIbertLnLo, kernels::kIbertLnHi,
                       kBackends);
}

std::tuple<at::Tensor, at::Tensor> ibert_layernorm_qat(const at::Tensor& x, const at::Tensor& scale,
                                                       const at::Tensor& weight, const at::Tensor& bias, double eps) {
  return run_affine_ln_qat("ibert_layernorm_qat", x, scale, weight, bias, eps, kernels::kIbertLnLo,
                           kernels::kIbertLnHi, kBackends);
}

std::tuple<at::Tensor, at::Tensor> ibert_layernorm_prepared(const at::Tensor& q, double scale, const LnAffine& aff) {
  return run_affine_ln_prepared("ibert_layernorm", q, scale, aff, kernels::kIbertLnLo, kernels::kIbertLnHi,
                                kBackends);
}

TORCH_LIBRARY_IMPL(mnq, CPU, m) {
  m.impl("ibert_layernorm", &ibert_layernorm);
  m.impl("ibert_layernorm_qat", &ibert_layernorm_qat);
}
TORCH_LIBRARY_IMPL(mnq, CUDA, m) {
  m.impl("ibert_layernorm", &ibert_layernorm);
  m.impl("ibert_layernorm_qat", &ibert_layernorm_qat);
}
TORCH_LIBRARY_IMPL(mnq, Meta, m) {
  m.impl("ibert_layernorm", &ibert_layernorm_meta);
  m.impl("ibert_layernorm_qat", &ibert_layernorm_qat_meta);
}

}  // namespace backend
}  // namespace ops
}  // namespace mnq
