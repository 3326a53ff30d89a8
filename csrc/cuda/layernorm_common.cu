// CUDA: the LayerNorm QAT paths' device constants (kernels/layernorm_common.cuh, kernels/ptf_layernorm.cuh) on the
// current stream.
#include "csrc/cuda/launch.h"
#include "csrc/ops/layernorm_common.h"
#include "csrc/ops/ptf_layernorm.h"
#include "kernels/layernorm_common.cuh"
#include "kernels/ptf_layernorm.cuh"

namespace mnq {
namespace ops {
namespace cuda {

void ln_affine_consts(const char* op, const at::Tensor& gamma, const at::Tensor& beta, const at::Tensor& bias_int,
                      const at::Tensor& s_out) {
  run_on_device(op, gamma, [&](cudaStream_t stream) {
    kernels::launch_ln_affine_consts(gamma.data_ptr<double>(), beta.data_ptr<double>(), gamma.numel(),
                                     bias_int.data_ptr<int64_t>(), s_out.data_ptr<double>(), stream);
    return true;
  });
}

void ptf_layernorm_consts(const at::Tensor& alpha, const at::Tensor& gamma, const at::Tensor& beta,
                          const at::Tensor& s_base, const at::Tensor& s_next, const at::Tensor& shift,
                          const at::Tensor& values) {
  run_on_device("ptf_layernorm_qat", gamma, [&](cudaStream_t stream) {
    kernels::launch_ptf_layernorm_consts(alpha.data_ptr<int64_t>(), gamma.data_ptr<double>(), beta.data_ptr<double>(),
                                         s_base.data_ptr<double>(), s_next.data_ptr<double>(), gamma.numel(),
                                         shift.data_ptr<int32_t>(), values.data_ptr<double>(), stream);
    return true;
  });
}

}  // namespace cuda
}  // namespace ops
}  // namespace mnq
