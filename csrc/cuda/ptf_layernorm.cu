// CUDA PTF LayerNorm: device guard, current stream, dtype dispatch, launch (kernels/ptf_layernorm.cuh).
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "csrc/dispatch.h"
#include "csrc/ops/ptf_layernorm.h"
#include "kernels/ptf_layernorm.cuh"

namespace mnq {
namespace ops {
namespace cuda {

bool ptf_layernorm(const at::Tensor& in, const at::Tensor& out, const kernels::PtfParams& p,
                   const at::Tensor& inv_scale, double out_scale, bool check) {
  using namespace mnq::kernels;
  const c10::cuda::CUDAGuard guard(in.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  if (in.scalar_type() == at::kFloat) {
    return launch_ptf_layernorm(LnChannelFloatIn{in.data_ptr<float>(), inv_scale.data_ptr<double>()},
                                LnFloatOut{out.data_ptr<float>(), out_scale}, p, true, stream);
  }
  return MNQ_DISPATCH_INT(in.scalar_type(), "ptf_layernorm", [&] {
    return launch_ptf_layernorm(LnIntIn<scalar_t>{in.data_ptr<scalar_t>()}, LnIntOut{out.data_ptr<int64_t>()}, p, check,
                                stream);
  });
}

}  // namespace cuda
}  // namespace ops
}  // namespace mnq
