// Quantizer entry points (SPEC §1): quantize / ptf_quantize (+ fake-quant forms), ptf_alpha_error, requant
// (+ fake-quant form). Validation, per-channel host constants, backend choice; CPU, CUDA and Meta registration.
#include "csrc/ops/quant.h"

#include <ATen/ATen.h>
#include <torch/library.h>

#include <cmath>
#include <bit>
#include <limits>
#include <vector>

#include "csrc/checks.h"
#include "csrc/dispatch.h"
#include "csrc/ops/backend.h"
#include "csrc/ops/qat.h"

namespace mnq {
namespace ops {
namespace backend {
namespace {

using kernels::ChannelLayout;

// The checks of a scale argument that need no value: defined, floating point, 0-d / one element (per tensor) or
// 1-D [C] matching `channels`.
void check_scale_arg(const char* op, const char* name, const at::Tensor& scale, int64_t channels) {
  TORCH_CHECK(scale.defined(), op, ": ", name, " is undefined");
  TORCH_CHECK_TYPE(at::isFloatingType(scale.scalar_type()), op, ": ", name,
                   " must be a floating-point tensor, got ", scale.scalar_type());
  const bool per_tensor = scale.numel() == 1 && scale.dim() <= 1;
  TORCH_CHECK_VALUE(per_tensor || (scale.dim() == 1 && scale.size(0) == channels), op, ": ", name,
                    " must be 0-d (per tensor) or of shape [", channels, "] (per channel), got shape ",
                    scale.sizes());
}

// A scale argument (check_scale_arg) as a CPU float64 vector of length C (1 for per tensor) after checking every
// value: the CPU path, and the integer ops on CUDA (which read it back: they synchronize anyway for their range
// check, see README "GPU path").
at::Tensor host_scales(const char* op, const char* name, const at::Tensor& scale, int64_t channels,
                       bool allow_negative) {
  check_scale_arg(op, name, scale, channels);
  // A float64 0-d or [C] CPU scale, the usual argument, is read in place: no tensor ops (each costs about a
  // microsecond, which shows on the latency case's small tensors). Callers read numel() and data_ptr() only.
  const bool as_is = scale.is_cpu() && scale.scalar_type() == at::kDouble && scale.dim() <= 1 && scale.is_contiguous();
  at::Tensor s = as_is ? scale : scale.detach().to(at::kCPU, at::kDouble).contiguous().reshape({-1});
  const double* p = s.data_ptr<double>();
  for (int64_t c = 0; c < s.numel(); ++c) {
    const bool good = std::isfinite(p[c]) && (allow_negative ? p[c] != 0 : p[c] > 0);
    TORCH_CHECK_VALUE(good, op, ": ", name, "[", c, "] = ", p[c], " must be finite and ",
                      allow_negative ? "nonzero" : "positive");
  }
  return s;
}

// The CUDA fake-quant path (README, "GPU path"): a scale argument (check_scale_arg) as float64 [C] (1 for per
// tensor) on x's device, no value read back: an invalid value gives NaN outputs for its channel in the kernel
// (kernels/quant.h valid_scale) instead of the CPU's error.
at::Tensor device_scales(const char* op, const char* name, const at::Tensor& scale, int64_t channels,
                         const at::Tensor& x) {
  check_scale_arg(op, name, scale, channels);
  TORCH_CHECK_VALUE(scale.is_cpu() || scale.device() == x.device(), op, ": ", name, " is on ", scale.device(),
                    " but the input is on ", x.device(), "; ", name, " must be on the CPU or on the input's device");
  return scale.detach().to(x.device(), at::kDouble).contiguous().reshape({-1});
}

// Whether a call takes the device path: a fake-quant (QAT) call on CUDA. The integer ops on CUDA check their
// scales on the host (one read back; they synchronize for their range check anyway).
bool device_path(const at::Tensor& x, bool fake) { return fake && x.is_cuda(); }

ChannelLayout layout_of(const at::Tensor& x, int64_t axis, int64_t channels_in_scale) {
  if (channels_in_scale == 1) return ChannelLayout{1, 1};
  int64_t inner = 1;
  for (int64_t d = axis + 1; d < x.dim(); ++d) inner *= x.size(d);
  return ChannelLayout{x.size(axis), inner};
}

void check_input(const char* op, const char* name, const at::Tensor& x, bool is_float) {
  if (is_float) {
    check_float_tensor(op, name, x);
  } else {
    check_int_tensor(op, name, x);
  }
  check_device_supported(op, name, x);
}

int64_t normalize_axis(const char* op, const at::Tensor& x, int64_t axis) {
  const int64_t d = std::max<int64_t>(x.dim(), 1);
  TORCH_CHECK_VALUE(axis >= -d && axis < d, op, ": axis ", axis, " is out of range for a tensor of ", x.dim(),
                    " dimension(s)");
  return axis < 0 ? axis + d : axis;
}

at::Tensor run_quantize(const char* op, const at::Tensor& x, const at::Tensor& scale_any, ChannelLayout layout,
                        int64_t bits, bool fake) {
  const at::Tensor xc = x.contiguous();
  at::Tensor out = at::empty(x.sizes(), x.options().dtype(fake ? at::kFloat : at::kInt));
  if (x.numel() == 0) return out;
  const kernels::QuantizeParams p{x.numel(), layout, -(int64_t(1) << (bits - 1)), (int64_t(1) << (bits - 1)) - 1};
  const at::Tensor scale = x.is_cpu() ? scale_any : scale_any.to(x.device());
  const bool ok = x.is_cuda() ? MNQ_CUDA_CALL(op, cuda::quantize(xc, scale, out, p)) : cpu::quantize(xc, scale, out, p);
  TORCH_CHECK_VALUE(ok, op, ": x has NaN values, which have no quantization code");
  return out;
}

at::Tensor quantize_impl(const char* op, const at::Tensor& x, const at::Tensor& scale, int64_t bits, int64_t axis,
                         bool fake) {
  check_input(op, "x", x, true);
  check_int_arg(op, "bits", bits, 2, 32);
  const int64_t ax = normalize_axis(op, x, axis);
  const int64_t channels = x.dim() == 0 ? 1 : x.size(ax);
  const at::Tensor s = device_path(x, fake) ? device_scales(op, "scale", scale, channels, x)
                                            : host_scales(op, "scale", scale, channels, false);
  return run_quantize(op, x, s, layout_of(x, ax, s.numel()), bits, fake);
}

// A per-tensor scale argument (one element) as a host double, checked finite and positive.
double host_scalar(const char* op, const char* name, const at::Tensor& scale) {
  TORCH_CHECK(scale.defined(), op, ": ", name, " is undefined");
  TORCH_CHECK_VALUE(scale.numel() == 1, op, ": ", name, " must be a per-tensor scale (one element), got shape ",
                    scale.sizes());
  return host_scales(op, name, scale.dim() == 0 ? scale : scale.reshape({}), 1, false).data_ptr<double>()[0];
}

at::Tensor ptf_scales(const char* op, const at::Tensor& x, const at::Tensor& alpha, double s_base) {
  check_min_dim(op, "x", x, 1);
  check_int_tensor(op, "alpha", alpha);
  const int64_t C = x.size(-1);
  TORCH_CHECK_VALUE(alpha.dim() == 1 && alpha.size(0) == C, op, ": alpha must have shape [", C,
                    "] (the last dim of x), got ", alpha.sizes());
  check_scale(op, "s_base", s_base);
  const at::Tensor a = alpha.to(at::kCPU, at::kLong).contiguous();
  at::Tensor s = at::empty({C}, at::TensorOptions().dtype(at::kDouble));
  for (int64_t c = 0; c < C; ++c) {
    const int64_t v = a.data_ptr<int64_t>()[c];
    TORCH_CHECK_VALUE(v >= 0 && v <= 3, op, ": alpha[", c, "] = ", v, " must be in {0, 1, 2, 3}");
    s.data_ptr<double>()[c] = std::ldexp(s_base, static_cast<int>(v));
    TORCH_CHECK_VALUE(std::isfinite(s.data_ptr<double>()[c]), op, ": s_base·2^alpha[", c, "] = ", s_base, "·2^", v,
                      " overflows");
  }
  return s;
}

// The device path's ptf_scales, without a host read: ldexp(s_base, a) for a in 0..3 is the product by 1, 2, 4 or 8
// (exact, the value std::ldexp gives on the host); alpha outside {0, 1, 2, 3} gives a NaN scale, hence NaN outputs
// for that channel, and an invalid s_base invalid scales (NaN outputs everywhere).
at::Tensor device_ptf_scales(const char* op, const at::Tensor& x, const at::Tensor& alpha, const at::Tensor& s_base) {
  check_min_dim(op, "x", x, 1);
  check_int_tensor(op, "alpha", alpha);
  const int64_t C = x.size(-1);
  TORCH_CHECK_VALUE(alpha.dim() == 1 && alpha.size(0) == C, op, ": alpha must have shape [", C,
                    "] (the last dim of x), got ", alpha.sizes());
  TORCH_CHECK_VALUE(alpha.is_cpu() || alpha.device() == x.device(), op, ": alpha is on ", alpha.device(),
                    " but the input is on ", x.device(), "; alpha must be on the CPU or on the input's device");
  const at::Tensor sb = scale_arg(op, "s_base", s_base, x);
  const at::Tensor a = alpha.to(x.device(), at::kLong);
  const at::Tensor pow2 = at::bitwise_left_shift(at::ones_like(a), a.clamp(0, 3)).to(at::kDouble);
  return (sb * pow2).masked_fill((a < 0) | (a > 3), std::numeric_limits<double>::quiet_NaN()).contiguous();
}

at::Tensor ptf_quantize_impl(const char* op, const at::Tensor& x, const at::Tensor& alpha, const at::Tensor& s_base,
                             int64_t bits, bool fake) {
  check_input(op, "x", x, true);
  check_int_arg(op, "bits", bits, 2, 16);
  const at::Tensor s = device_path(x, fake) ? device_ptf_scales(op, x, alpha, s_base)
                                            : ptf_scales(op, x, alpha, host_scalar(op, "s_base", s_base));
  return run_quantize(op, x, s, ChannelLayout{x.size(-1), 1}, bits, fake);
}

// The ratios scale[c] / scale_out of host-checked scales must be finite: each scale can pass its own check while
// their quotient overflows (1e300 / 1e-300), and dyadic() of ±inf has no multiplier. Checked wherever the scales are
// on the host (the CPU, and the integer op on CUDA, whose kernel would otherwise only report a code it cannot
// make); CUDA's sync-free QAT path marks such a channel NaN instead.
void check_ratios(const char* op, const char* name, const at::Tensor& scale_cpu, double scale_out) {
  for (int64_t c = 0; c < scale_cpu.numel(); ++c) {
    const double r = scale_cpu.data_ptr<double>()[c] / scale_out;
    TORCH_CHECK_VALUE(std::isfinite(r), op, ": ", name, "[", c, "] / scale_out = ", scale_cpu.data_ptr<double>()[c],
                      " / ", scale_out, " is not finite, so it has no dyadic multiplier");
  }
}

// The (m, k) tensors of a per-tensor CPU requant input: a thread keeps the last pair of each input slot with the
// scales it was made from (every call of a layer repeats them; two small tensors a side were ~0.1 µs each). They are
// only read, so calls may share them.
struct LastDyadic {
  uint64_t s_bits = 0, out_bits = 0;
  at::Tensor m, k;
};
thread_local LastDyadic last_dyadic[2];

// Dyadic multipliers scale[c] / scale_out as device tensors; `slot`: 0 for the input, 1 for the identity.
RequantSide requant_side(const at::Tensor& codes, const at::Tensor& scale_cpu, double scale_out, int slot) {
  const int64_t C = scale_cpu.numel();
  if (C == 1 && codes.is_cpu()) {
    LastDyadic& e = last_dyadic[slot];
    const uint64_t s_bits = std::bit_cast<uint64_t>(scale_cpu.data_ptr<double>()[0]);
    const uint64_t out_bits = std::bit_cast<uint64_t>(scale_out);
    if (!e.m.defined() || e.s_bits != s_bits || e.out_bits != out_bits) {
      const kernels::Dyadic d = kernels::dyadic(scale_cpu.data_ptr<double>()[0] / scale_out);  // check_ratios: finite
      e = LastDyadic{s_bits, out_bits, at::full({1}, d.m, at::kLong),
                     at::full({1}, static_cast<int64_t>(d.k), at::kLong)};
    }
    return RequantSide{codes, e.m, e.k, scale_cpu};
  }
  at::Tensor m = at::empty({C}, at::TensorOptions().dtype(at::kLong));
  at::Tensor k = at::empty({C}, at::TensorOptions().dtype(at::kLong));
  for (int64_t c = 0; c < C; ++c) {
    const kernels::Dyadic d = kernels::dyadic(scale_cpu.data_ptr<double>()[c] / scale_out);  // check_ratios: finite
    m.data_ptr<int64_t>()[c] = d.m;
    k.data_ptr<int64_t>()[c] = d.k;
  }
  if (codes.is_cpu()) return RequantSide{codes, m, k, scale_cpu};
  return RequantSide{codes, m.to(codes.device()), k.to(codes.device()), scale_cpu.to(codes.device())};
}

// A requant input scale: checked on the host (CPU, and the integer op on CUDA) or taken as it is (device path).
at::Tensor requant_scales(const char* op, const char* name, const at::Tensor& scale, int64_t channels,
                          const at::Tensor& q, bool fake) {
  return device_path(q, fake) ? device_scales(op, name, scale, channels, q)
                              : host_scales(op, name, scale, channels, true);
}

// A requant input on CUDA: the codes and the scales on the device; the multipliers are computed there
// (cuda::requant, kernels/quant.cuh launch_requant_dyadics).
RequantSide device_side(const at::Tensor& codes, const at::Tensor& scale) {
  return RequantSide{codes, at::Tensor(), at::Tensor(), scale.to(codes.device())};
}

at::Tensor requant_impl(const char* op, const at::Tensor& q, const at::Tensor& scale_in,
                        const at::Tensor& scale_out_t, int64_t bits, const std::optional<at::Tensor>& identity,
                        const std::optional<at::Tensor>& identity_scale, bool fake) {
  const char* qn = fake ? "x" : "q";
  check_input(op, qn, q, fake);
  const bool dev = device_path(q, fake);
  const double scale_out = dev ? 0.0 : host_scalar(op, "scale_out", scale_out_t);  // not read on the device path
  check_int_arg(op, "bits", bits, 2, 32);
  TORCH_CHECK_VALUE(identity.has_value() == identity_scale.has_value(), op,
                    ": identity and identity_scale must be given together");
  const int64_t C = q.dim() == 0 ? 1 : q.size(-1);
  const at::Tensor s_in = requant_scales(op, "scale_in", scale_in, C, q, fake);
  if (!dev) check_ratios(op, "scale_in", s_in, scale_out);
  const at::Tensor qc = q.contiguous();
  at::Tensor out = at::empty(q.sizes(), q.options().dtype(fake ? at::kFloat : at::kInt));
  RequantSide in = q.is_cuda() ? device_side(qc, s_in) : requant_side(qc, s_in, scale_out, 0);
  kernels::RequantParams p{q.numel(), layout_of(q, q.dim() - 1, s_in.numel()), ChannelLayout{1, 1},
                           -(int64_t(1) << (bits - 1)), (int64_t(1) << (bits - 1)) - 1, identity.has_value()};
  std::optional<RequantSide> id;
  if (identity.has_value()) {
    check_input(op, "identity", *identity, fake);
    check_same_device(op, "identity", *identity, q, qn);
    TORCH_CHECK_VALUE(identity->sizes() == q.sizes(), op, ": identity must have the shape of ", qn, " ",
                      q.sizes(), ", got ", identity->sizes());
    const at::Tensor s_id = requant_scales(op, "identity_scale", *identity_scale, C, q, fake);
    if (!dev) check_ratios(op, "identity_scale", s_id, scale_out);
    id = q.is_cuda() ? device_side(identity->contiguous(), s_id)
                     : requant_side(identity->contiguous(), s_id, scale_out, 1);
    p.id_layout = layout_of(q, q.dim() - 1, s_id.numel());
  }
  if (q.numel() == 0) return out;
  const RequantSide* idp = id ? &*id : nullptr;
  bool ok = false;
  if (q.is_cuda()) {
    const at::Tensor s_out_dev = scale_arg(op, "scale_out", scale_out_t, q);
    ok = MNQ_CUDA_CALL(op, cuda::requant(in, idp, out, s_out_dev, p, false));
  } else {
    ok = cpu::requant(in, idp, out, scale_out, p);
  }
  TORCH_CHECK(ok, op, ": internal error: requantization reported an input without a code");
  return out;
}

at::Tensor empty_like_as(const at::Tensor& x, at::ScalarType t) { return at::empty(x.sizes(), x.options().dtype(t)); }

}  // namespace

at::Tensor quantize(const at::Tensor& x, const at::Tensor& scale, int64_t bits, int64_t axis) {
  return quantize_impl("quantize", x, scale, bits, axis, false);
}
at::Tensor quantize_qat(const at::Tensor& x, const at::Tensor& scale, int64_t bits, int64_t axis) {
  return quantize_impl("quantize_qat", x, scale, bits, axis, true);
}
at::Tensor ptf_quantize(const at::Tensor& x, const at::Tensor& alpha, const at::Tensor& s_base, int64_t bits) {
  return ptf_quantize_impl("ptf_quantize", x, alpha, s_base, bits, false);
}
at::Tensor ptf_quantize_qat(const at::Tensor& x, const at::Tensor& alpha, const at::Tensor& s_base, int64_t bits) {
  return ptf_quantize_impl("ptf_quantize_qat", x, alpha, s_base, bits, true);
}

at::Tensor ptf_alpha_error(const at::Tensor& x, const at::Tensor& s_base_t, int64_t bits) {
  const char* op = "ptf_alpha_error";
  check_input(op, "x", x, true);
  check_min_dim(op, "x", x, 1);
  // CUDA: s_base stays on the device (an invalid one gives NaN sums, kernels/quant.cuh); the CPU checks it.
  const double s_base = x.is_cuda() ? 0.0 : host_scalar(op, "s_base", s_base_t);
  check_int_arg(op, "bits", bits, 2, 16);
  // A NaN in a channel makes its four sums NaN (kernels/quant.h quant_sq_error): no host read of the data.
  const at::Tensor xc = x.contiguous();
  at::Tensor err = at::empty({x.size(-1), 4}, x.options().dtype(at::kDouble));
  const int64_t lo = -(int64_t(1) << (bits - 1)), hi = (int64_t(1) << (bits - 1)) - 1;
  if (x.is_cuda()) {
#ifdef MNQ_WITH_CUDA
    cuda::ptf_alpha_error(xc, scale_arg(op, "s_base", s_base_t, x), lo, hi, err);
#else
    fail_no_cuda(op);
#endif
  } else {
    cpu::ptf_alpha_error(xc, s_base, lo, hi, err);
  }
  return err;
}

at::Tensor requant(const at::Tensor& q, const at::Tensor& scale_in, const at::Tensor& scale_out, int64_t bits,
                   const std::optional<at::Tensor>& identity, const std::optional<at::Tensor>& identity_scale) {
  return requant_impl("requant", q, scale_in, scale_out, bits, identity, identity_scale, false);
}
at::Tensor requant_qat(const at::Tensor& x, const at::Tensor& scale_in, const at::Tensor& scale_out, int64_t bits,
                       const std::optional<at::Tensor>& identity, const std::optional<at::Tensor>& identity_scale) {
  return requant_impl("requant_qat", x, scale_in, scale_out, bits, identity, identity_scale, true);
}

// Meta kernels: the real kernels' checks that need no values (dtype, bits, axis, scale and alpha shapes, identity
// pairing), so torch.compile and FakeTensor tracing reject what eager calls reject; the device check is the real
// kernels' (a meta tensor is neither CPU nor CUDA).
namespace {
void check_meta_input(const char* op, const char* name, const at::Tensor& x, bool is_float) {
  if (is_float) {
    check_float_tensor(op, name, x);
  } else {
    check_int_tensor(op, name, x);
  }
}

at::Tensor quantize_meta_impl(const char* op, const at::Tensor& x, const at::Tensor& scale, int64_t bits,
                              int64_t axis, bool fake) {
  check_meta_input(op, "x", x, true);
  check_int_arg(op, "bits", bits, 2, 32);
  const int64_t ax = normalize_axis(op, x, axis);
  check_scale_arg(op, "scale", scale, x.dim() == 0 ? 1 : x.size(ax));
  return empty_like_as(x, fake ? at::kFloat : at::kInt);
}
at::Tensor quantize_meta(const at::Tensor& x, const at::Tensor& scale, int64_t bits, int64_t axis) {
  return quantize_meta_impl("quantize", x, scale, bits, axis, false);
}
at::Tensor quantize_qat_meta(const at::Tensor& x, const at::Tensor& scale, int64_t bits, int64_t axis) {
  return quantize_meta_impl("quantize_qat", x, scale, bits, axis, true);
}

at::Tensor ptf_quantize_meta_impl(const char* op, const at::Tensor& x, const at::Tensor& alpha, int64_t bits,
                                  bool fake) {
  check_meta_input(op, "x", x, true);
  check_int_arg(op, "bits", bits, 2, 16);
  check_min_dim(op, "x", x, 1);
  check_int_tensor(op, "alpha", alpha);
  TORCH_CHECK_VALUE(alpha.dim() == 1 && alpha.size(0) == x.size(-1), op, ": alpha must have shape [", x.size(-1),
                    "] (the last dim of x), got ", alpha.sizes());
  return empty_like_as(x, fake ? at::kFloat : at::kInt);
}
at::Tensor ptf_quantize_meta(const at::Tensor& x, const at::Tensor& alpha, const at::Tensor&, int64_t bits) {
  return ptf_quantize_meta_impl("ptf_quantize", x, alpha, bits, false);
}
at::Tensor ptf_quantize_qat_meta(const at::Tensor& x, const at::Tensor& alpha, const at::Tensor&, int64_t bits) {
  return ptf_quantize_meta_impl("ptf_quantize_qat", x, alpha, bits, true);
}
at::Tensor ptf_alpha_error_meta(const at::Tensor& x, const at::Tensor&, int64_t bits) {
  check_meta_input("ptf_alpha_error", "x", x, true);
  check_min_dim("ptf_alpha_error", "x", x, 1);
  check_int_arg("ptf_alpha_error", "bits", bits, 2, 16);
  return at::empty({x.size(-1), 4}, x.options().dtype(at::kDouble));
}

at::Tensor requant_meta_impl(const char* op, const at::Tensor& q, const at::Tensor& scale_in,
                             const at::Tensor& scale_out, int64_t bits, const std::optional<at::Tensor>& identity,
                             const std::optional<at::Tensor>& identity_scale, bool fake) {
  const char* qn = fake ? "x" : "q";
  check_meta_input(op, qn, q, fake);
  TORCH_CHECK(scale_out.defined(), op, ": scale_out is undefined");
  TORCH_CHECK_VALUE(scale_out.numel() == 1, op, ": scale_out must be a per-tensor scale (one element), got shape ",
                    scale_out.sizes());
  check_scale_arg(op, "scale_out", scale_out.reshape({}), 1);
  check_int_arg(op, "bits", bits, 2, 32);
  TORCH_CHECK_VALUE(identity.has_value() == identity_scale.has_value(), op,
                    ": identity and identity_scale must be given together");
  const int64_t C = q.dim() == 0 ? 1 : q.size(-1);
  check_scale_arg(op, "scale_in", scale_in, C);
  if (identity.has_value()) {
    check_meta_input(op, "identity", *identity, fake);
    TORCH_CHECK_VALUE(identity->sizes() == q.sizes(), op, ": identity must have the shape of ", qn, " ", q.sizes(),
                      ", got ", identity->sizes());
    check_scale_arg(op, "identity_scale", *identity_scale, C);
  }
  return empty_like_as(q, fake ? at::kFloat : at::kInt);
}
at::Tensor requant_meta(const at::Tensor& q, const at::Tensor& scale_in, const at::Tensor& scale_out, int64_t bits,
                        const std::optional<at::Tensor>& identity, const std::optional<at::Tensor>& identity_scale) {
  return requant_meta_impl("requant", q, scale_in, scale_out, bits, identity, identity_scale, false);
}
at::Tensor requant_qat_meta(const at::Tensor& x, const at::Tensor& scale_in, const at::Tensor& scale_out,
                            int64_t bits, const std::optional<at::Tensor>& identity,
                            const std::optional<at::Tensor>& identity_scale) {
  return requant_meta_impl("requant_qat", x, scale_in, scale_out, bits, identity, identity_scale, true);
}
}  // namespace

#define MNQ_REGISTER_QUANT(m)                       \
  m.impl("quantize", &quantize);                    \
  m.impl("quantize_qat", &quantize_qat);            \
  m.impl("ptf_quantize", &ptf_quantize);            \
  m.impl("ptf_quantize_qat", &ptf_quantize_qat);    \
  m.impl("ptf_alpha_error", &ptf_alpha_error);      \
  m.impl("requant", &requant);                      \
  m.impl("requant_qat", &requant_qat)

TORCH_LIBRARY_IMPL(mnq, CPU, m) { MNQ_REGISTER_QUANT(m); }
TORCH_LIBRARY_IMPL(mnq, CUDA, m) { MNQ_REGISTER_QUANT(m); }
TORCH_LIBRARY_IMPL(mnq, Meta, m) {
  m.impl("quantize", &quantize_meta);
  m.impl("quantize_qat", &quantize_qat_meta);
  m.impl("ptf_quantize", &ptf_quantize_meta);
  m.impl("ptf_quantize_qat", &ptf_quantize_qat_meta);
  m.impl("ptf_alpha_error", &ptf_alpha_error_meta);
  m.impl("requant", &requant_meta);
  m.impl("requant_qat", &requant_qat_meta);
}

}  // namespace backend
}  // namespace ops
}  // namespace mnq
