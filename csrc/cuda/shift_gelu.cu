// CUDA ShiftGELU: device guard, current stream, dtype dispatch, launch (kernels/shift_gelu.cuh).
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "csrc/dispatch.h"
#include "csrc/ops/shift_gelu.h"
#include "kernels/io.h"
#include "kernels/shift_gelu.cuh"

namespace mnq {
namespace ops {
namespace cuda {

bool shift_gelu(const at::Tensor& in, const at::Tensor& out, const kernels::ShiftGeluParams& p, double inv_scale,
                double out_scale, bool check) {
  using namespace mnq::kernels;
  const c10::cuda::CUDAGuard guard(in.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  if (in.scalar_type() == at::kFloat) {
    return launch_shift_gelu(FloatIn{in.data_ptr<float>(), inv_scale}, FloatOut{out.data_ptr<float>(), out_scale}, p,
                             true, stream);
  }
  return MNQ_DISPATCH_INT(in.scalar_type(), "shift_gelu", [&] {
    return launch_shift_gelu(IntIn<scalar_t>{in.data_ptr<scalar_t>()}, IntOut<int32_t>{out.data_ptr<int32_t>()}, p,
                             check, stream);
  });
}

}  // namespace cuda
}  // namespace ops
}  // namespace mnq
