// CUDA I-BERT LayerNorm: device guard, current stream, dtype dispatch, launch (kernels/ibert_layernorm.cuh).
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "csrc/dispatch.h"
#include "csrc/ops/ibert_layernorm.h"
#include "kernels/ibert_layernorm.cuh"

namespace mnq {
namespace ops {
namespace cuda {

bool ibert_layernorm(const at::Tensor& in, const at::Tensor& out, const kernels::LnParams& p, double inv_scale,
                     const at::Tensor& s_out, bool check) {
  using namespace mnq::kernels;
  const c10::cuda::CUDAGuard guard(in.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  if (in.scalar_type() == at::kFloat) {
    return launch_ibert_layernorm(LnFloatIn{in.data_ptr<float>(), inv_scale},
                                  LnChannelFloatOut{out.data_ptr<float>(), s_out.data_ptr<double>()}, p, true, stream);
  }
  return MNQ_DISPATCH_INT(in.scalar_type(), "ibert_layernorm", [&] {
    return launch_ibert_layernorm(LnIntIn<scalar_t>{in.data_ptr<scalar_t>()}, LnIntOut{out.data_ptr<int64_t>()}, p,
                                  check, stream);
  });
}

}  // namespace cuda
}  // namespace ops
}  // namespace mnq
