// CUDA quantizers: dtype dispatch and launches on the current stream (kernels/quant.cuh, csrc/cuda/launch.h).
#include "csrc/cuda/launch.h"
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
                 int* check, cudaStream_t stream) {
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
  return run_on_device("quantize", x, [&](cudaStream_t stream) {
    const float* xp = x.data_ptr<float>();
    const double* sp = scale.data_ptr<double>();
    if (out.scalar_type() == at::kFloat) {
      return launch_quantize(xp, sp, FakeOut{out.data_ptr<float>()}, p, nullptr, stream);  // NaN → NaN, no flag
    }
    const FlagMemory flag(x, true);
    return launch_quantize(xp, sp, CodeOut{out.data_ptr<int32_t>()}, p, flag.get(), stream);
  });
}

bool requant(const RequantSide& in, const RequantSide* id, const at::Tensor& out, double out_scale,
             const RequantParams& p, bool check) {
  return run_on_device("requant", out, [&](cudaStream_t stream) {
    const FlagMemory flag(out, check);
    if (out.scalar_type() == at::kFloat) {
      return requant_out(in, id, FakeOut{out.data_ptr<float>()}, out_scale, p, flag.get(), stream);
    }
    return requant_out(in, id, CodeOut{out.data_ptr<int32_t>()}, out_scale, p, flag.get(), stream);
  });
}

void ptf_alpha_error(const at::Tensor& x, double s_base, int64_t lo, int64_t hi, const at::Tensor& err) {
  run_on_device("ptf_alpha_error", x, [&](cudaStream_t stream) {
    const int64_t C = x.size(-1);
    launch_ptf_alpha_error(x.data_ptr<float>(), C == 0 ? 0 : x.numel() / C, C, s_base, lo, hi, err.data_ptr<double>(),
                           stream);
  });
}

}  // namespace cuda
}  // namespace ops
}  // namespace mnq
