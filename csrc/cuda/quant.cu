// CUDA quantizers: dtype dispatch and launches on the current stream (kernels/quant.cuh, csrc/cuda/launch.h).
#include <ATen/ops/empty_like.h>

#include "csrc/cuda/launch.h"
#include "csrc/dispatch.h"
#include "csrc/ops/quant.h"
#include "kernels/quant.cuh"

namespace mnq {
namespace ops {
namespace cuda {
namespace {

using namespace mnq::kernels;

// The multipliers of one side, computed on the device from its scales and the output scale.
struct DeviceDyadics {
  at::Tensor m, k;  // int64 [C]
  DeviceDyadics(const RequantSide& s, const double* out_scale, cudaStream_t stream) {
    if (s.m.defined()) {  // given pairs (requant_dyadic): nothing to compute
      m = s.m;
      k = s.k;
      return;
    }
    m = at::empty({s.scale.numel()}, s.scale.options().dtype(at::kLong));
    k = at::empty_like(m);
    launch_requant_dyadics(s.scale.data_ptr<double>(), s.scale.numel(), out_scale, m.data_ptr<int64_t>(),
                           k.data_ptr<int64_t>(), stream);
  }
  DyadicArray get() const { return DyadicArray{m.data_ptr<int64_t>(), k.data_ptr<int64_t>()}; }
};

template <class Out>
bool requant_out(const RequantSide& in, const RequantSide* id, Out out, const double* out_scale,
                 const RequantParams& p, int* check, cudaStream_t stream) {
  const DeviceDyadics d(in, out_scale, stream);
  return with_requant_loader(in, [&](auto in_loader) {
    if (id == nullptr) {
      return launch_requant(in_loader, in_loader, d.get(), d.get(), out_scale, out, p, check, stream);
    }
    const DeviceDyadics d_id(*id, out_scale, stream);
    return with_requant_loader(*id, [&](auto id_loader) {
      return launch_requant(in_loader, id_loader, d.get(), d_id.get(), out_scale, out, p, check, stream);
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

bool requant(const RequantSide& in, const RequantSide* id, const at::Tensor& out, const at::Tensor& out_scale,
             const RequantParams& p, bool check) {
  return run_on_device("requant", out, [&](cudaStream_t stream) {
    const FlagMemory flag(out, check);
    const double* s_out = out_scale.data_ptr<double>();
    if (out.scalar_type() == at::kFloat) {
      return requant_out(in, id, FakeOut{out.data_ptr<float>()}, s_out, p, flag.get(), stream);
    }
    return requant_out(in, id, CodeOut{out.data_ptr<int32_t>()}, s_out, p, flag.get(), stream);
  });
}

void ptf_alpha_error(const at::Tensor& x, const at::Tensor& s_base, int64_t lo, int64_t hi, const at::Tensor& err) {
  run_on_device("ptf_alpha_error", x, [&](cudaStream_t stream) {
    const int64_t C = x.size(-1);
    launch_ptf_alpha_error(x.data_ptr<float>(), C == 0 ? 0 : x.numel() / C, C, s_base.data_ptr<double>(), lo, hi,
                           err.data_ptr<double>(), stream);
  });
}

}  // namespace cuda
}  // namespace ops
}  // namespace mnq
