// CUDA quantizers: device guard, current stream, dtype dispatch, launches (kernels/quant.cuh).
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "csrc/dispatch.h"
#include "csrc/ops/quant.h"
#include "kernels/quant.cuh"

namespace mnq {
namespace ops {
namespace cuda {
namespace {

using namespace mnq::kernels;

template <class Out>
bool requant_out(const RequantSide& in, const RequantSide* id, Out out, double out_scale, const RequantParams& p,
                 bool check, cudaStream_t stream) {
  return with_requant_loader(in, [&](auto in_loader) {
    if (id == nullptr) {
      return launch_requant(in_loader, in_loader, dyadics(in), dyadics(in), out_scale, out, p, check, stream);
    }
    return with_requant_loader(*id, [&](auto id_loader) {
      return launch_requant(in_loader, id_loader, dyadics(in), dyadics(*id), out_scale, out, p, check, stream);
    });
  });
}

}  // namespace

bool quantize(const at::Tensor& x, const at::Tensor& scale, const at::Tensor& out, const QuantizeParams& p) {
  const c10::cuda::CUDAGuard guard(x.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  const float* xp = x.data_ptr<float>();
  const double* sp = scale.data_ptr<double>();
  if (out.scalar_type() == at::kFloat) return launch_quantize(xp, sp, FakeOut{out.data_ptr<float>()}, p, stream);
  return launch_quantize(xp, sp, CodeOut{out.data_ptr<int32_t>()}, p, stream);
}

bool requant(const RequantSide& in, const RequantSide* id, const at::Tensor& out, double out_scale,
             const RequantParams& p, bool check) {
  const c10::cuda::CUDAGuard guard(out.device());
  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  if (out.scalar_type() == at::kFloat) {
    return requant_out(in, id, FakeOut{out.data_ptr<float>()}, out_scale, p, check, stream);
  }
  return requant_out(in, id, CodeOut{out.data_ptr<int32_t>()}, out_scale, p, check, stream);
}

void ptf_alpha_error(const at::Tensor& x, double s_base, int64_t lo, int64_t hi, const at::Tensor& err) {
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t C = x.size(-1);
  launch_ptf_alpha_error(x.data_ptr<float>(), C == 0 ? 0 : x.numel() / C, C, s_base, lo, hi, err.data_ptr<double>(),
                         c10::cuda::getCurrentCUDAStream());
}

}  // namespace cuda
}  // namespace ops
}  // namespace mnq
