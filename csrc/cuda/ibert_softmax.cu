// CUDA I-BERT softmax: dtype dispatch and launch on the current stream (kernels/ibert_softmax.cuh,
// csrc/cuda/launch.h).
#include "csrc/cuda/launch.h"
#include "csrc/dispatch.h"
#include "csrc/ops/ibert_softmax.h"
#include "kernels/ibert_softmax.cuh"
#include "kernels/io.h"

namespace mnq {
namespace ops {
namespace cuda {

bool ibert_softmax(const at::Tensor& in, const at::Tensor& out, const kernels::IbertSoftmaxParams& p, double inv_scale,
                   double out_scale, bool check) {
  using namespace mnq::kernels;
  return run_on_device("ibert_softmax", in, [&](cudaStream_t stream) {
    const bool qat = in.scalar_type() == at::kFloat;
    const FlagMemory flag(in, !qat && check);  // float outputs propagate NaN (kernels/cuda_utils.cuh flag_for)
    if (qat) {
      return launch_ibert_softmax(FloatIn{in.data_ptr<float>(), inv_scale}, FloatOut{out.data_ptr<float>(), out_scale},
                                  p, flag.get(), stream);
    }
    return MNQ_DISPATCH_INT(in.scalar_type(), "ibert_softmax", [&] {
      return launch_ibert_softmax(IntIn<scalar_t>{in.data_ptr<scalar_t>()}, IntOut<int32_t>{out.data_ptr<int32_t>()}, p,
                                  flag.get(), stream);
    });
  });
}

}  // namespace cuda
}  // namespace ops
}  // namespace mnq
