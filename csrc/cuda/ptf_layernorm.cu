// CUDA PTF LayerNorm: dtype dispatch and launch on the current stream (kernels/ptf_layernorm.cuh,
// csrc/cuda/launch.h).
#include "csrc/cuda/launch.h"
#include "csrc/dispatch.h"
#include "csrc/ops/ptf_layernorm.h"
#include "kernels/ptf_layernorm.cuh"

namespace mnq {
namespace ops {
namespace cuda {

bool ptf_layernorm(const at::Tensor& in, const at::Tensor& out, const kernels::PtfParams& p,
                   const at::Tensor& inv_scale, double out_scale, bool check) {
  using namespace mnq::kernels;
  return run_on_device("ptf_layernorm", in, [&](cudaStream_t stream) {
    const bool qat = in.scalar_type() == at::kFloat;
    const FlagMemory flag(in, !qat && check);  // float outputs propagate NaN (kernels/cuda_utils.cuh flag_for)
    if (qat) {
      return launch_ptf_layernorm(LnChannelFloatIn{in.data_ptr<float>(), inv_scale.data_ptr<double>()},
                                  LnFloatOut{out.data_ptr<float>(), out_scale}, p, flag.get(), stream);
    }
    return MNQ_DISPATCH_INT(in.scalar_type(), "ptf_layernorm", [&] {
      return launch_ptf_layernorm(LnIntIn<scalar_t>{in.data_ptr<scalar_t>()}, LnIntOut{out.data_ptr<int64_t>()}, p,
                                  flag.get(), stream);
    });
  });
}

}  // namespace cuda
}  // namespace ops
}  // namespace mnq
