// QuantAct and PtfAct: the statements of python/mnq/nn/quant.py in the same order and precision (float32
// running range, float64 scale), so both sides produce identical buffers and outputs.
#include "csrc/nn/quant.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <cmath>
#include <tuple>
#include <vector>

#include "csrc/dist/dist.h"
#include "csrc/nn/min_max.h"
#include "csrc/ops.h"

namespace mnq {
namespace nn {

bool HostFlag::get(const at::Tensor& buffer) const {
  if (buffer.unsafeGetTensorImpl() != impl_ || buffer._version() != version_) {
    value_ = buffer.item<bool>();  // after a load or a move only
    impl_ = buffer.unsafeGetTensorImpl();
    version_ = buffer._version();
  }
  return value_;
}

void HostFlag::set(at::Tensor& buffer, bool value) {
  buffer.fill_(value);
  value_ = value;
  impl_ = buffer.unsafeGetTensorImpl();
  version_ = buffer._version();
}

int64_t check_bits(int64_t bits, int64_t hi) {
  TORCH_CHECK_VALUE(bits >= 2 && bits <= hi, "bits must be an int in [2, ", hi, "], got ", bits);
  return bits;
}

at::Tensor per_tensor_scale(const at::Tensor& scale, const char* who) {
  TORCH_CHECK_VALUE(scale.defined() && scale.numel() == 1, who,
                    ": the input scale must be per tensor (one value), got shape ",
                    scale.defined() ? scale.sizes() : at::IntArrayRef{});
  return scale.detach().reshape({}).to(at::kDouble);
}

RangeTracker::RangeTracker(int64_t bits, double momentum, int64_t max_bits)
    : bits_(check_bits(bits, max_bits)), momentum_(momentum) {
  min_val_ = register_buffer("min_val", at::zeros({}, at::kFloat));
  max_val_ = register_buffer("max_val", at::zeros({}, at::kFloat));
  scale_ = register_buffer("scale", at::ones({}, at::kDouble));
  initialized_ = register_buffer("initialized", at::zeros({}, at::kBool));
}

namespace {

// at::aminmax of a float32 tensor, by one pass on a CPU tensor without NaN (min_max.h; the same values).
std::tuple<at::Tensor, at::Tensor> tensor_min_max(const at::Tensor& x) {
  std::vector<float> mn, mx;
  if (x.device().is_cpu() && x.numel() > 0 && channel_min_max(x, 1, mn, mx)) {
    return {at::scalar_tensor(mn[0], x.options()), at::scalar_tensor(mx[0], x.options())};
  }
  return at::aminmax(x);
}

// The same of x + y (y defined): on CPU float32 tensors of one shape without forming the sum (min_max.h).
std::tuple<at::Tensor, at::Tensor> sum_range(const at::Tensor& x, const at::Tensor& y) {
  float mn = 0.0f, mx = 0.0f;
  if (x.device().is_cpu() && y.device().is_cpu() && x.scalar_type() == at::kFloat && y.scalar_type() == at::kFloat &&
      sum_min_max(x, y, mn, mx)) {
    return {at::scalar_tensor(mn, x.options()), at::scalar_tensor(mx, x.options())};
  }
  return tensor_min_max((x + y).to(at::kFloat));
}

}  // namespace

void RangeTracker::observe(const at::Tensor& x, const at::Tensor& y) {
  at::NoGradGuard no_grad;
  auto [lo, hi] = y.defined() ? sum_range(x.detach(), y.detach()) : tensor_min_max(x.detach().to(at::kFloat));
  dist::allreduce_min_max(lo, hi);  // data-parallel: every rank's range is the global batch's (no-op alone)
  // The first batch initialises the range, later ones follow the EMA: selected on the device (no host read).
  const double m = momentum_;
  min_val_.copy_(at::where(initialized_, at::add(min_val_ * m, lo, 1 - m), lo));
  max_val_.copy_(at::where(initialized_, at::add(max_val_ * m, hi, 1 - m), hi));
  initialized_flag_.set(initialized_, true);
  const at::Tensor bound = at::maximum(min_val_.abs(), max_val_.abs()).to(at::kDouble).clamp_min(1e-8);
  scale_.copy_(bound / static_cast<double>((int64_t{1} << (bits_ - 1)) - 1));
}

void RangeTracker::check_calibrated(const char* who) const {
  TORCH_CHECK(is_initialized(), who,
              ": used in eval mode before any training/calibration batch set its range");
}

QuantActImpl::QuantActImpl(int64_t bits, double momentum) : RangeTracker(bits, momentum, 32) {}

ScaledTensor QuantActImpl::forward(const at::Tensor& x, const at::Tensor& scale_in, const at::Tensor& identity,
                                   const at::Tensor& identity_scale) {
  TORCH_CHECK_VALUE(identity.defined() == identity_scale.defined(),
                    "QuantAct: identity and identity_scale must be given together");
  TORCH_CHECK_VALUE(!identity.defined() || scale_in.defined(), "QuantAct: a residual (identity) needs scale_in for x");
  if (is_training()) {
    observe(x, identity);  // the range of x + identity, the sum this quantizer rounds (SPEC §1)
  } else {
    check_calibrated("QuantAct");
  }
  if (!scale_in.defined()) {
    return {ops::quantize_qat(x, scale_, bits_), scale_.clone()};
  }
  ops::OptT id, id_scale;
  if (identity.defined()) {
    id = identity;
    id_scale = identity_scale.detach().to(at::kDouble);
  }
  return {ops::requant_qat(x, scale_in.detach().to(at::kDouble), scale_, bits_, id, id_scale), scale_.clone()};
}

void QuantActImpl::pretty_print(std::ostream& stream) const {
  stream << "mnq::nn::QuantAct(bits=" << bits_ << ", momentum=" << momentum_ << ")";
}

PtfActImpl::PtfActImpl(int64_t channels, int64_t bits, double momentum)
    : RangeTracker(bits, momentum, 16), channels_(channels) {
  alpha_ = register_buffer("alpha", at::zeros({channels}, at::kLong));
  alpha_err_ = register_buffer("alpha_err", at::zeros({channels, 4}, at::kDouble));
  alpha_frozen_ = register_buffer("alpha_frozen", at::zeros({}, at::kBool));
}

void PtfActImpl::reset_alpha() {
  alpha_err_.zero_();
  alpha_frozen_flag_.set(alpha_frozen_, false);
}

std::pair<at::Tensor, std::pair<at::Tensor, at::Tensor>> PtfActImpl::forward(const at::Tensor& x) {
  TORCH_CHECK_VALUE(x.dim() >= 1 && x.size(-1) == channels_, "PtfAct: expected ", channels_,
                    " channels in the last dim, got shape ", x.sizes());
  if (is_training()) {
    observe(x);
    if (!alpha_frozen_flag_.get(alpha_frozen_)) {
      at::NoGradGuard no_grad;
      const at::Tensor err = ops::ptf_alpha_error(x.detach(), s_base(), bits_).to(alpha_err_);
      dist::allreduce_sum(err);  // data-parallel: the global batch's error sums on every rank (no-op alone)
      alpha_err_.add_(err);
      alpha_.copy_(alpha_err_.argmin(-1));
    }
  } else {
    check_calibrated("PtfAct");
  }
  const at::Tensor sb = s_base();
  return {ops::ptf_quantize_qat(x, alpha_, sb, bits_), {sb, alpha_.clone()}};
}

void PtfActImpl::pretty_print(std::ostream& stream) const {
  stream << "mnq::nn::PtfAct(channels=" << channels_ << ", bits=" << bits_ << ")";
}

}  // namespace nn
}  // namespace mnq
