// CUDA Shiftmax: dtype dispatch and launch on the current stream (kernels/shiftmax.cuh, csrc/cuda/launch.h).
#include "csrc/cuda/launch.h"
#include "csrc/dispatch.h"
#include "csrc/ops/shiftmax.h"
#include "kernels/io.h"
#include "kernels/shiftmax.cuh"

namespace mnq {
namespace ops {
namespace cuda {

bool shiftmax(const at::Tensor& in, const at::Tensor& out, const kernels::ShiftmaxParams& p, double inv_scale,
              double out_scale, bool check) {
  using namespace mnq::kernels;
  return run_on_device("shiftmax", in, [&](cudaStream_t stream) {
    const bool qat = in.scalar_type() == at::kFloat;
    const FlagMemory flag(in, !qat && check);  // float outputs propagate NaN (kernels/cuda_utils.cuh flag_for)
    if (qat) {
      return launch_shiftmax(FloatIn{in.data_ptr<float>(), inv_scale}, FloatOut{out.data_ptr<float>(), out_scale}, p,
                             flag.get(), stream);
    }
    return MNQ_DISPATCH_INT(in.scalar_type(), "shiftmax", [&] {
      return launch_shiftmax(IntIn<scalar_t>{in.data_ptr<scalar_t>()}, IntOut<int32_t>{out.data_ptr<int32_t>()}, p,
                             flag.get(), stream);
    });
  });
}

}  // namespace cuda
}  // namespace ops
}  // namespace mnq
