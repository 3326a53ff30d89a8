// CUDA I-BERT i-GELU: dtype dispatch and launch on the current stream (kernels/ibert_gelu.cuh, csrc/cuda/launch.h).
#include "csrc/cuda/launch.h"
#include "csrc/dispatch.h"
#include "csrc/ops/ibert_gelu.h"
#include "kernels/channel_io.h"
#include "kernels/ibert_gelu.cuh"

namespace mnq {
namespace ops {
namespace cuda {

bool ibert_gelu(const at::Tensor& in, const at::Tensor& out, const kernels::IbertGeluParams& p, const double* inv_scale,
                const double* out_scale, bool check) {
  using namespace mnq::kernels;
  return run_on_device("ibert_gelu", in, [&](cudaStream_t stream) {
    const bool qat = in.scalar_type() == at::kFloat;
    const FlagMemory flag(in, !qat && check);  // float outputs propagate NaN (kernels/cuda_utils.cuh flag_for)
    if (qat) {
      return launch_ibert_gelu(FloatInC{in.data_ptr<float>(), inv_scale}, FloatOutC{out.data_ptr<float>(), out_scale},
                               p, flag.get(), stream);
    }
    return MNQ_DISPATCH_INT(in.scalar_type(), "ibert_gelu", [&] {
      return launch_ibert_gelu(IntInC<scalar_t>{in.data_ptr<scalar_t>()}, IntOutC<int64_t>{out.data_ptr<int64_t>()}, p,
                               flag.get(), stream);
    });
  });
}

void ibert_gelu_consts(const at::Tensor& scale, const at::Tensor& consts, const at::Tensor& scales,
                       const at::Tensor& s_out) {
  run_on_device("ibert_gelu_qat", scale, [&](cudaStream_t stream) {
    kernels::launch_ibert_gelu_consts(scale.data_ptr<double>(), scale.numel(), consts.size(1),
                                      consts.data_ptr<int64_t>(), scales.data_ptr<double>(), s_out.data_ptr<double>(),
                                      stream);
    return true;
  });
}

}  // namespace cuda
}  // namespace ops
}  // namespace mnq
