// CUDA Log-Int-Softmax: dtype dispatch and launch on the current stream (kernels/log_int_softmax.cuh,
// csrc/cuda/launch.h).
#include "csrc/cuda/launch.h"
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
  return run_on_device("log_int_softmax", in, [&](cudaStream_t stream) {
    const FlagMemory flag(in, check);
    const LisCodeOut out{code.data_ptr<uint8_t>(), reinterpret_cast<uint8_t*>(mask.data_ptr<bool>())};
    return MNQ_DISPATCH_INT(in.scalar_type(), "log_int_softmax", [&] {
      return launch_log_int_softmax(IntIn<scalar_t>{in.data_ptr<scalar_t>()}, out, p, flag.get(), stream);
    });
  });
}

bool log_int_softmax_qat(const at::Tensor& in, const at::Tensor& value, const kernels::LogIntSoftmaxParams& p,
                         double inv_scale) {
  using namespace mnq::kernels;
  return run_on_device("log_int_softmax_qat", in, [&](cudaStream_t stream) {
    const FlagMemory flag(in, false);  // float outputs propagate NaN (kernels/cuda_utils.cuh flag_for)
    return launch_log_int_softmax(FloatIn{in.data_ptr<float>(), inv_scale}, LisValueOut{value.data_ptr<float>()}, p,
                                  flag.get(), stream);
  });
}

}  // namespace cuda
}  // namespace ops
}  // namespace mnq
