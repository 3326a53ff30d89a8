// CUDA I-LayerNorm: device guard, current stream, dtype dispatch, launch (kernels/ilayernorm.cuh).
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "csrc/dispatch.h"
#include "csrc/ops/ilayernorm.h"
#include "kernels/ilayernorm.cuh"

namespace mnq {
namespace ops {
namespace cuda {

bool ilayernorm(const at::Tensor& in, const at::Tensor& out, const kernels::LnParams& p, double inv_scale,
                const at::Tensor& s_out, bool check) {
  using namespace mnq::kernels;
  const c10::cuda::CUDAGuard guard(in.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  if (in.scalar_type() == at::kFloat) {
    return launch_ilayernorm(LnFloatIn{in.data_ptr<float>(), inv_scale},
                             LnChannelFloatOut{out.data_ptr<float>(), s_out.data_ptr<double>()}, p, true, stream);
  }
  return MNQ_DISPATCH_INT(in.scalar_type(), "ilayernorm", [&] {
    return launch_ilayernorm(LnIntIn<scalar_t>{in.data_ptr<scalar_t>()}, LnIntOut{out.data_ptr<int64_t>()}, p, check,
                             stream);
  });
}

}  // namespace cuda
}  // namespace ops
}  // namespace mnq
