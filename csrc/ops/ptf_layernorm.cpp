// PTF LayerNorm entry points (SPEC §4.3): validation, constants (on the host, or on the device for the CUDA QAT
// path), backend choice; CPU, CUDA and Meta registration. Declared input range: 16-bit codes; α ∈ {0, 1, 2, 3};
// C ≤ 2^16.
#include "csrc/ops/ptf_layernorm.h"

#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <memory>

#include "csrc/checks.h"
#include "csrc/cpu/isa.h"
#include "csrc/cpu/ptf_layernorm_simd.h"
#include "csrc/dispatch.h"
#include "csrc/ops/backend.h"
#include "csrc/ops/last_call.h"
#include "csrc/ops/prepared.h"
#include "csrc/ops/layernorm_common.h"
#include "csrc/ops/qat.h"
#include "csrc/rowwise.h"

namespace mnq {
namespace ops {
namespace backend {
namespace {

using kernels::kPtfHi;
using kernels::kPtfLo;

// Checks of dtypes, shapes and devices (all the Meta kernels can check).
void check_tensors(const char* op, const at::Tensor& in, const at::Tensor& alpha, const at::Tensor& weight,
                   const at::Tensor& bias, bool qat) {
  check_ln_input(op, qat ? "x" : "q", in, qat);
  check_int_tensor(op, "alpha", alpha);
  TORCH_CHECK_VALUE(alpha.dim() == 1 && alpha.size(0) == in.size(-1), op, ": alpha must have shape [", in.size(-1),
                    "] (the size of the last dim of the input), got ", alpha.sizes());
  check_ln_affine_args(op, in, weight, bias);
  check_same_device(op, "alpha", alpha, in, "the input");
}

// Checks that need no data: the tensors' and the two scales'.
void check_args(const char* op, const at::Tensor& in, const at::Tensor& alpha, double s_base, const at::Tensor& weight,
                const at::Tensor& bias, double scale_next, bool qat) {
  check_tensors(op, in, alpha, weight, bias, qat);
  check_ln_scale(op, "s_base", s_base);
  TORCH_CHECK_VALUE(std::isfinite(s_base * 8.0), op, ": s_base·2^3 (the largest channel scale) must be finite, got ",
                    "s_base = ", s_base);
  check_scale(op, "scale_next", scale_next);
}

// The host constants (PtfConsts, ops.h): shift [C] int32 and, as rows of one float64 [4, C] tensor, C·γ, γ, β
// and the QAT input's 1/(s_base·2^α). Rejects α outside {0..3}, non-finite γ or β, and a scale_next for which B
// could overflow (kernels/ptf_layernorm.h: |B| ≤ 2^31·|β|/S_next + 2^18·max(2^8, C·|γ|/S_next) + 1/2 ≤ 2^61).
PtfConsts host_consts(const char* op, const at::Tensor& alpha, double s_base, const at::Tensor& weight,
                      const at::Tensor& bias, double scale_next) {
  const int64_t cols = alpha.size(0);
  const bool alpha_in_place = alpha.device().is_cpu() && alpha.is_contiguous() && alpha.scalar_type() == at::kLong;
  const at::Tensor a = alpha_in_place ? alpha : alpha.to(at::kCPU, at::kLong).contiguous();
  const int64_t* ap = a.const_data_ptr<int64_t>();
  const HostValues gp(weight), bp(bias);  // no conversions for float32/float64 CPU vectors (batch-1 latency)
  at::Tensor shift = at::empty({cols}, a.options().dtype(at::kInt));
  at::Tensor values = at::empty({4, cols}, at::TensorOptions().dtype(at::kDouble));
  double g_max = 0.0, b_max = 0.0;
  if (!cpu::ptf_host_consts(ap, gp.f32(), gp.f64(), bp.f32(), bp.f64(), cols, s_base, shift.data_ptr<int32_t>(),
                            values.data_ptr<double>(), g_max, b_max)) {
    for (int64_t c = 0; c < cols; ++c) {  // a channel was rejected: the checks, to name the first one
      TORCH_CHECK_VALUE(ap[c] >= 0 && ap[c] <= kernels::kPtfMaxShift, op,
                        ": alpha must be in {0, 1, 2, 3}, got alpha[", c, "] = ", ap[c]);
      TORCH_CHECK_VALUE(std::isfinite(gp[c]), op, ": weight must be finite, got weight[", c, "] = ", gp[c]);
      TORCH_CHECK_VALUE(std::isfinite(bp[c]), op, ": bias must be finite, got bias[", c, "] = ", bp[c]);
    }
    TORCH_CHECK(false, op, ": internal error: the constants were rejected, yet every channel passes its check");
  }
  const double bound = kernels::ptf_b_bound(b_max, g_max, cols, scale_next);
  TORCH_CHECK_VALUE(bound <= kernels::kPtfMaxB, op, ": scale_next = ", scale_next, " is too small for these weight ",
                    "and bias: the int64 bias B of the output needs 2^31·max|bias|/scale_next + ",
                    "2^18·max(256, C·max|weight|/scale_next) ≤ 2^61, got ", bound);
  return PtfConsts{shift.to(alpha.device()), values.to(alpha.device())};
}

// The backend on contiguous input with the constants given (on the input's device); cached: the CPU call
// constants and values[3] from call_consts (nullptr: made here).
struct Cached {
  at::Tensor inv_scale;                                 // k.values[3]
  std::shared_ptr<const cpu::PtfCallConsts> call;       // cpu::ptf_call_consts of k and scale_next
};

at::Tensor run_with(const char* op, const at::Tensor& in, const PtfConsts& k, double scale_next, bool qat,
                    const Cached* cached = nullptr) {
  const char* name = qat ? "x" : "q";
  const at::Tensor inc = in.contiguous();
  at::Tensor out = at::empty(in.sizes(), in.options().dtype(qat ? at::kFloat : at::kLong));
  const Rows r = rows_of(inc);
  if (r.rows == 0 || r.cols == 0) return out;
  const double* v = k.values.data_ptr<double>();
  const kernels::PtfParams p{r.rows, r.cols,     kPtfLo,         kPtfHi,    k.shift.data_ptr<int32_t>(),
                             v,      v + r.cols, v + 2 * r.cols, scale_next};
  const at::Tensor inv_scale = cached != nullptr ? cached->inv_scale : k.values[3];
  const cpu::PtfCallConsts* call = cached != nullptr ? cached->call.get() : nullptr;
  const QatRun backend = [&](const at::Tensor& i, const at::Tensor& o) {
    return i.is_cuda() ? MNQ_CUDA_CALL(op, cuda::ptf_layernorm(i, o, p, inv_scale, scale_next,
                                                               needs_range_check(i.scalar_type(), kPtfLo, kPtfHi)))
                       : cpu::ptf_layernorm(i, o, p, inv_scale, scale_next, call);
  };
  run_checked(op, name, qat, inc, out, InvScale{inv_scale}, kPtfLo, kPtfHi, true, backend);
  return out;
}

// The CPU call's constants (host_consts and the kernel's cpu::ptf_call_consts), each thread keeping its last call's
// (last_call.h), keyed by the isa, cols, γ's and β's dtypes, s_base, scale_next and the values of α, γ and β: making
// them (the host loop, two tensors, the kernel's three vectors with their divisions, the select of values[3]) cost
// ~3 µs of a ~37 µs batch-1 QAT call. The tensors and vectors are shared with the cache (read only, alive for the
// call through the copies held here).
struct CallConsts {
  PtfConsts k;
  Cached cached;
};

at::Tensor run_cpu_cached(const char* op, const at::Tensor& in, const at::Tensor& alpha, double s_base,
                          const at::Tensor& weight, const at::Tensor& bias, double scale_next, bool qat) {
  const int64_t cols = alpha.size(0);
  const bool alpha_in_place = alpha.is_contiguous() && alpha.scalar_type() == at::kLong;
  const at::Tensor a = alpha_in_place ? alpha : alpha.to(at::kLong).contiguous();
  const HostValues gp(weight), bp(bias);
  const bool g32 = gp.f32() != nullptr, b32 = bp.f32() != nullptr;
  const size_t n = static_cast<size_t>(cols);
  const int isa = static_cast<int>(cpu::isa());
  const std::initializer_list<KeyPart> key{
      key_of(isa),
      key_of(cols),
      key_of(g32),
      key_of(b32),
      key_of(s_base),
      key_of(scale_next),
      KeyPart{a.const_data_ptr<int64_t>(), n * sizeof(int64_t)},
      g32 ? KeyPart{gp.f32(), n * sizeof(float)} : KeyPart{gp.f64(), n * sizeof(double)},
      b32 ? KeyPart{bp.f32(), n * sizeof(float)} : KeyPart{bp.f64(), n * sizeof(double)}};
  thread_local LastCall<CallConsts> cache;
  const CallConsts* hit = cache.find(key);
  if (hit == nullptr) {
    PtfConsts k = host_consts(op, a, s_base, weight, bias, scale_next);  // raises on bad parameters
    const double* v = k.values.data_ptr<double>();
    const kernels::PtfParams p{0, cols, kPtfLo, kPtfHi, k.shift.data_ptr<int32_t>(), v, v + cols, v + 2 * cols,
                               scale_next};
    Cached c{k.values[3], cpu::ptf_call_consts(p, v + 3 * cols)};
    hit = &cache.store(key, CallConsts{std::move(k), std::move(c)});
  }
  const CallConsts call = *hit;  // copies: the call keeps them alive whatever later calls do to the cache
  return run_with(op, in, call.k, scale_next, qat, &call.cached);
}

at::Tensor run(const char* op, const at::Tensor& in, const at::Tensor& alpha, double s_base, const at::Tensor& weight,
               const at::Tensor& bias, double scale_next, bool qat) {
  const char* name = qat ? "x" : "q";
  check_args(op, in, alpha, s_base, weight, bias, scale_next, qat);
  check_device_supported(op, name, in);
  if (in.size(-1) == 0) return at::empty(in.sizes(), in.options().dtype(qat ? at::kFloat : at::kLong));
  if (in.is_cpu() && alpha.is_cpu()) return run_cpu_cached(op, in, alpha, s_base, weight, bias, scale_next, qat);
  return run_with(op, in, host_consts(op, alpha, s_base, weight, bias, scale_next), scale_next, qat);
}

// The CUDA QAT path: constants from the device scales and parameters (kernels/ptf_layernorm.cuh), S_next read by
// the kernel, the NaN policy applied there: nothing is read back.
at::Tensor run_device(const char* op, const at::Tensor& x, const at::Tensor& alpha, const at::Tensor& s_base,
                      const at::Tensor& weight, const at::Tensor& bias, const at::Tensor& scale_next) {
  check_tensors(op, x, alpha, weight, bias, true);
  const at::Tensor xc = x.contiguous();
  at::Tensor out = at::empty(x.sizes(), x.options());
  const Rows r = rows_of(xc);
  if (r.cols == 0) return out;
  const at::Tensor a = alpha.to(at::kLong).contiguous();
  const at::Tensor g = weight.detach().to(at::kDouble).contiguous();
  const at::Tensor b = bias.detach().to(at::kDouble).contiguous();
  const at::Tensor shift = at::empty({r.cols}, a.options().dtype(at::kInt));
  const at::Tensor values = at::empty({4, r.cols}, g.options());
  MNQ_CUDA_CALL(op, (cuda::ptf_layernorm_consts(a, g, b, s_base, scale_next, shift, values), true));
  if (r.rows == 0) return out;
  const double* v = values.data_ptr<double>();
  kernels::PtfParams p{r.rows, r.cols, kPtfLo, kPtfHi, shift.data_ptr<int32_t>(), v, v + r.cols, v + 2 * r.cols, 0.0};
  p.dev_scale_next = scale_next.data_ptr<double>();
  MNQ_CUDA_CALL(op, cuda::ptf_layernorm(xc, out, p, values[3], 0.0, false));
  return out;
}

std::tuple<at::Tensor, double> ptf_layernorm_meta(const at::Tensor& q, const at::Tensor& alpha, double s_base,
                                                  const at::Tensor& weight, const at::Tensor& bias, double scale_next) {
  check_args("ptf_layernorm", q, alpha, s_base, weight, bias, scale_next, false);
  return {at::empty(q.sizes(), q.options().dtype(at::kLong)), scale_next};
}

std::tuple<at::Tensor, at::Tensor> ptf_layernorm_qat_meta(const at::Tensor& x, const at::Tensor& alpha,
                                                          const at::Tensor& s_base, const at::Tensor& weight,
                                                          const at::Tensor& bias, const at::Tensor& scale_next,
                                                          double eps) {
  const char* op = "ptf_layernorm_qat";
  check_tensors(op, x, alpha, weight, bias, true);
  scale_arg(op, "s_base", s_base, x);
  check_ln_eps(op, eps);
  const at::Tensor s_next = scale_arg(op, "scale_next", scale_next, x);
  return {at::empty(x.sizes(), x.options()), at::empty({}, s_next.options())};
}

}  // namespace

PtfConsts ptf_layernorm_consts(const at::Tensor& alpha, double s_base, const at::Tensor& weight, const at::Tensor& bias,
                               double scale_next) {
  const char* op = "ptf_layernorm";
  check_int_tensor(op, "alpha", alpha);
  TORCH_CHECK_VALUE(alpha.dim() == 1 && weight.dim() == 1 && bias.dim() == 1 && weight.size(0) == alpha.size(0) &&
                        bias.size(0) == alpha.size(0),
                    op, ": alpha, weight and bias must be [C] vectors, got ", alpha.sizes(), ", ", weight.sizes(),
                    " and ", bias.sizes());
  check_ln_scale(op, "s_base", s_base);
  check_scale(op, "scale_next", scale_next);
  return host_consts(op, alpha, s_base, weight, bias, scale_next);
}

at::Tensor ptf_layernorm_prepared(const at::Tensor& q, const PtfConsts& k, double scale_next) {
  const char* op = "ptf_layernorm";
  check_ln_input(op, "q", q, false);
  check_device_supported(op, "q", q);
  check_scale(op, "scale_next", scale_next);
  const int64_t cols = q.size(-1);
  TORCH_CHECK_VALUE(k.shift.dim() == 1 && k.shift.size(0) == cols && k.shift.scalar_type() == at::kInt &&
                        k.values.dim() == 2 && k.values.size(0) == 4 && k.values.size(1) == cols &&
                        k.values.scalar_type() == at::kDouble && k.values.is_contiguous(),
                    op, ": prepared constants for ", cols, " channels expected (ptf_layernorm_consts')");
  check_same_device(op, "the prepared shifts", k.shift, q, "q");
  check_same_device(op, "the prepared values", k.values, q, "q");
  return run_with(op, q, k, scale_next, false);
}

std::tuple<at::Tensor, double> ptf_layernorm(const at::Tensor& q, const at::Tensor& alpha, double s_base,
                                             const at::Tensor& weight, const at::Tensor& bias, double scale_next) {
  return {run("ptf_layernorm", q, alpha, s_base, weight, bias, scale_next, false), scale_next};
}

std::tuple<at::Tensor, at::Tensor> ptf_layernorm_qat(const at::Tensor& x, const at::Tensor& alpha,
                                                     const at::Tensor& s_base, const at::Tensor& weight,
                                                     const at::Tensor& bias, const at::Tensor& scale_next,
                                                     double eps) {
  const char* op = "ptf_layernorm_qat";
  check_ln_eps(op, eps);
  check_float_tensor(op, "x", x);
  const at::Tensor sb = scale_arg(op, "s_base", s_base, x);
  const at::Tensor sn = scale_arg(op, "scale_next", scale_next, x);
  if (device_scale(sb) != nullptr) return {run_device(op, x, alpha, sb, weight, bias, sn), sn.clone()};
  return {run(op, x, alpha, scale_value(sb), weight, bias, scale_value(sn), true), sn.clone()};
}

TORCH_LIBRARY_IMPL(mnq, CPU, m) {
  m.impl("ptf_layernorm", &ptf_layernorm);
  m.impl("ptf_layernorm_qat", &ptf_layernorm_qat);
}
TORCH_LIBRARY_IMPL(mnq, CUDA, m) {
  m.impl("ptf_layernorm", &ptf_layernorm);
  m.impl("ptf_layernorm_qat", &ptf_layernorm_qat);
}
TORCH_LIBRARY_IMPL(mnq, Meta, m) {
  m.impl("ptf_layernorm", &ptf_layernorm_meta);
  m.impl("ptf_layernorm_qat", &ptf_layernorm_qat_meta);
}

}  // namespace backend
}  // namespace ops
}  // namespace mnq
