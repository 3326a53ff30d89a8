// Scale arguments and the NaN policy of the fake-quant entry points (csrc/ops/qat.h).
#include "csrc/ops/qat.h"

#include <ATen/ATen.h>

#include <limits>

#include "csrc/checks.h"

namespace mnq {
namespace ops {

at::Tensor scale_arg(const char* op, const char* name, const at::Tensor& scale, const at::Tensor& x) {
  TORCH_CHECK(scale.defined(), op, ": ", name, " is undefined");
  TORCH_CHECK_TYPE(at::isFloatingType(scale.scalar_type()), op, ": ", name, " must be a floating-point tensor, got ",
                   scale.scalar_type());
  TORCH_CHECK_VALUE(scale.numel() == 1, op, ": ", name, " must be a per-tensor scale (one element), got shape ",
                    scale.sizes());
  TORCH_CHECK_VALUE(scale.is_cpu() || scale.device() == x.device(), op, ": ", name, " is on ", scale.device(),
                    " but the input is on ", x.device(), "; ", name, " must be on the CPU or on the input's device");
  // A 0-d float64 scale on x's device that records no gradient (Python's _scale_tensor gives one) is read as it is:
  // the detached 0-d copy would be the same values at the cost of two tensor headers (~0.3 µs per scale per call).
  if (scale.dim() == 0 && scale.scalar_type() == at::kDouble && scale.device() == x.device() && !scale.requires_grad()) {
    return scale;
  }
  return scale.detach().reshape({}).to(x.device(), at::kDouble);
}

double scale_value(const at::Tensor& s) {
  if (s.is_cpu()) return *s.contiguous().data_ptr<double>();
  return s.item<double>();
}

const double* device_scale(const at::Tensor& s) { return s.is_cuda() ? s.data_ptr<double>() : nullptr; }

at::Tensor InvScale::tensor() const {
  return per_channel.defined() ? per_channel : at::scalar_tensor(value, at::kDouble);
}

void run_qat(const at::Tensor& x, const at::Tensor& out, const InvScale& inv_scale, int64_t lo, int64_t hi,
             bool rowwise, const QatRun& run) {
  if (run(x, out)) return;
  const at::Tensor codes = at::round(x.to(at::kDouble) * inv_scale.tensor());
  at::Tensor bad = codes.isnan() | (codes < static_cast<double>(lo)) | (codes > static_cast<double>(hi));
  if (rowwise) bad = bad.any(-1, /*keepdim=*/true);
  const at::Tensor clean = x.masked_fill(bad, 0.0).contiguous();
  TORCH_CHECK(run(clean, out), "mnq: internal error: a QAT op rejected its input after the bad codes were removed");
  out.masked_fill_(bad, std::numeric_limits<double>::quiet_NaN());
}

void run_checked(const char* op, const char* name, bool qat, const at::Tensor& in, const at::Tensor& out,
                 const InvScale& inv_scale, int64_t lo, int64_t hi, bool rowwise, const QatRun& run) {
  if (qat) {
    run_qat(in, out, inv_scale, lo, hi, rowwise, run);
  } else if (!run(in, out)) {
    fail_range(op, name, lo, hi, false);
  }
}

}  // namespace ops
}  // namespace mnq
