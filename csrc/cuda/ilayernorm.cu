// CUDA I-LayerNorm: dtype dispatch and launch on the current stream (kernels/ilayernorm.cuh, csrc/cuda/launch.h).
#include "csrc/cuda/launch.h"
#include "csrc/dispatch.h"
#include "csrc/ops/ilayernorm.h"
#include "kernels/ilayernorm.cuh"

namespace mnq {
namespace ops {
namespace cuda {

bool ilayernorm(const at::Tensor& in, const at::Tensor& out, const kernels::LnParams& p, double inv_scale,
                const at::Tensor& s_out, bool check) {
  using namespace mnq::kernels;
  return run_on_device("ilayernorm", in, [&](cudaStream_t stream) {
    const bool qat = in.scalar_type() == at::kFloat;
    const FlagMemory flag(in, !qat && check);  // float outputs propagate NaN (kernels/cuda_utils.cuh flag_for)
    if (qat) {
      return launch_ilayernorm(LnFloatIn{in.data_ptr<float>(), inv_scale},
                               LnChannelFloatOut{out.data_ptr<float>(), s_out.data_ptr<double>()}, p, flag.get(),
                               stream);
    }
    return MNQ_DISPATCH_INT(in.scalar_type(), "ilayernorm", [&] {
      return launch_ilayernorm(LnIntIn<scalar_t>{in.data_ptr<scalar_t>()}, LnIntOut{out.data_ptr<int64_t>()}, p,
                               flag.get(), stream);
    });
  });
}

}  // namespace cuda
}  // namespace ops
}  // namespace mnq
