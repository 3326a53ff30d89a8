// CUDA I-BERT i-GELU: device guard, current stream, dtype dispatch, launch (kernels/ibert_gelu.cuh).
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "csrc/dispatch.h"
#include "csrc/ops/ibert_gelu.h"
#include "kernels/channel_io.h"
#include "kernels/ibert_gelu.cuh"

namespace mnq {
namespace ops {
namespace cuda {

bool ibert_gelu(const at::Tensor& in, const at::Tensor& out, const kernels::IbertGeluParams& p,
                const double* inv_scale, const double* out_scale, bool check) {
  using namespace mnq::kernels;
  const c10::cuda::CUDAGuard guard(in.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  if (in.scalar_type() == at::kFloat) {
    return launch_ibert_gelu(FloatInC{in.data_ptr<float>(), inv_scale}, FloatOutC{out.data_ptr<float>(), out_scale},
                             p, true, stream);
  }
  return MNQ_DISPATCH_INT(in.scalar_type(), "ibert_gelu", [&] {
    return launch_ibert_gelu(IntInC<scalar_t>{in.data_ptr<scalar_t>()}, IntOutC<int64_t>{out.data_ptr<int64_t>()},
                             p, check, stream);
  });
}

}  // namespace cuda
}  // namespace ops
}  // namespace mnq
