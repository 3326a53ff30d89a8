// CUDA I-BERT softmax: device guard, current stream, dtype dispatch, launch (kernels/ibert_softmax.cuh).
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "csrc/dispatch.h"
#include "csrc/ops/ibert_softmax.h"
#include "kernels/ibert_softmax.cuh"
#include "kernels/io.h"

namespace mnq {
namespace ops {
namespace cuda {

bool ibert_softmax(const at::Tensor& in, const at::Tensor& out, const kernels::IbertSoftmaxParams& p,
                   double inv_scale, double out_scale, bool check) {
  using namespace mnq::kernels;
  const c10::cuda::CUDAGuard guard(in.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  if (in.scalar_type() == at::kFloat) {
    return launch_ibert_softmax(FloatIn{in.data_ptr<float>(), inv_scale}, FloatOut{out.data_ptr<float>(), out_scale},
                                p, true, stream);
  }
  return MNQ_DISPATCH_INT(in.scalar_type(), "ibert_softmax", [&] {
    return launch_ibert_softmax(IntIn<scalar_t>{in.data_ptr<scalar_t>()}, IntOut<int32_t>{out.data_ptr<int32_t>()},
                                p, check, stream);
  });
}

}  // namespace cuda
}  // namespace ops
}  // namespace mnq
