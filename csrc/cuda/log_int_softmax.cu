// CUDA Log-Int-Softmax: device guard, current stream, dtype dispatch, launch (kernels/log_int_softmax.cuh).
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "csrc/dispatch.h"
#include "csrc/ops/log_int_softmax.h"
#include "kernels/io.h"
#include "kernels/log_int_softmax.cuh"

namespace mnq {
namespace ops {
namespace cuda {

bool log_int_softmax(const at::Tensor& in, const at::Tensor& code, const at::Tensor& mask,
                     const kernels::LogIntSoftmaxParams& p, bool check) {
  using namespace mnq::kernels;
  const c10::cuda::CUDAGuard guard(in.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const LisCodeOut out{code.data_ptr<uint8_t>(), reinterpret_cast<uint8_t*>(mask.data_ptr<bool>())};
  return MNQ_DISPATCH_INT(in.scalar_type(), "log_int_softmax", [&] {
    return launch_log_int_softmax(IntIn<scalar_t>{in.data_ptr<scalar_t>()}, out, p, check, stream);
  });
}

bool log_int_softmax_qat(const at::Tensor& in, const at::Tensor& value, const kernels::LogIntSoftmaxParams& p,
                         double inv_scale) {
  using namespace mnq::kernels;
  const c10::cuda::CUDAGuard guard(in.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  return launch_log_int_softmax(FloatIn{in.data_ptr<float>(), inv_scale}, LisValueOut{value.data_ptr<float>()}, p,
                                true, stream);
}

}  // namespace cuda
}  // namespace ops
}  // namespace mnq
