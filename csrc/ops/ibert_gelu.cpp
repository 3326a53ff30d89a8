// I-BERT i-GELU entry points (SPEC §3.1): validation, per-channel constants (on the host, or on the device for the
// CUDA QAT path), backend choice; CPU, CUDA and Meta registration.
#include "csrc/ops/ibert_gelu.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <torch/library.h>

#include "csrc/checks.h"
#include "csrc/dispatch.h"
#include "csrc/ops/backend.h"
#include "csrc/ops/last_call.h"
#include "csrc/ops/prepared.h"
#include "csrc/ops/qat.h"

namespace mnq {
namespace ops {
namespace backend {
namespace {

// Declared input range: the int32 fc1 accumulator (kernels/ibert_gelu.h bounds the math for |q| ≤ 2^31).
constexpr int64_t kLo = INT32_MIN;
constexpr int64_t kHi = INT32_MAX;

// The number of channels of q: the size of its last dim (a 0-d q is one element of one channel).
int64_t channels_of(const at::Tensor& q) { return q.dim() == 0 ? 1 : q.size(-1); }

// scale: float64, 0-d (per tensor) or [C] (per channel of q's last dim), on the CPU or on q's device.
void check_scale_tensor(const char* op, const char* name, const at::Tensor& q, const at::Tensor& scale) {
  TORCH_CHECK(scale.defined(), op, ": scale is undefined");
  TORCH_CHECK_TYPE(scale.scalar_type() == at::kDouble, op, ": scale must be a float64 tensor, got ",
                   scale.scalar_type());
  const bool per_channel = scale.dim() == 1 && q.dim() >= 1 && scale.size(0) == q.size(-1);
  TORCH_CHECK_VALUE(scale.dim() == 0 || per_channel, op, ": scale must be 0-d (per tensor) or have shape [",
                    channels_of(q), "] (per channel of the last dim of ", name, "), got shape ", scale.sizes());
  TORCH_CHECK_VALUE(scale.is_cpu() || scale.device() == q.device(), op, ": scale is on ", scale.device(), " but ",
                    name, " is on ", q.device(), "; scale must be on the CPU or on the device of ", name);
}

// Host constants for every channel: consts [3, cols] int64 (b, c, one), scales [2, cols] float64 (1/S, S_out) and
// S_out shaped like scale, CPU tensors. A per-tensor scale is repeated over the channels.
struct Host {
  at::Tensor consts;
  at::Tensor scales;
  at::Tensor s_out;
};

// s: the scale on the CPU, contiguous. Raises (naming the value) when a scale is outside the supported range.
Host compute_host_constants(const char* op, const at::Tensor& s, int64_t cols) {
  const double* sp = s.data_ptr<double>();
  Host h{at::empty({3, cols}, s.options().dtype(at::kLong)), at::empty({2, cols}, s.options()),
         at::empty(s.sizes(), s.options())};
  int64_t* k = h.consts.data_ptr<int64_t>();
  double* sc = h.scales.data_ptr<double>();
  double* s_out = h.s_out.data_ptr<double>();
  for (int64_t i = 0; i < s.numel(); ++i) {
    check_scale(op, "scale", sp[i]);
    const kernels::IbertGeluScale r = kernels::ibert_gelu_consts(sp[i]);
    TORCH_CHECK_VALUE(r.ok, op, ": scale ", sp[i], " is outside the supported range [", kernels::kIbertGeluScaleMin,
                      ", ", kernels::kIbertGeluScaleMax,
                      ") of I-BERT i-GELU (below it q·(y + one) overflows int64 for int32 q; above it the erf "
                      "polynomial is never evaluated)");
    s_out[i] = r.s_out;
    const int64_t j0 = s.dim() == 0 ? 0 : i, j1 = s.dim() == 0 ? cols : i + 1;  // the channels it covers
    const double inv = 1.0 / sp[i];
    for (int64_t j = j0; j < j1; ++j) {
      k[j] = r.k.b;
      k[cols + j] = r.k.c;
      k[2 * cols + j] = r.k.one;
      sc[j] = inv;
      sc[cols + j] = r.s_out;
    }
  }
  return h;
}

// The host constants of `scale` for `cols` channels. Each thread keeps its last call's (last_call.h), keyed by cols,
// the scale's shape and its values: a model's forward passes the same per-channel fc1 scales at every call, and
// computing them (four float64 divisions per channel) cost ~25 µs of a batch-1 call with 1536 channels; the compare
// reads 12 KB. consts and scales are shared with the cache (read only, alive as long as the returned Host); s_out,
// which the op returns, is the caller's own.
Host host_constants(const char* op, const at::Tensor& scale, int64_t cols) {
  const at::Tensor s = scale.to(at::kCPU).contiguous();
  const int64_t dim = s.dim(), n = s.numel();
  const std::initializer_list<KeyPart> key{key_of(cols), key_of(dim), KeyPart{s.sizes().data(), dim * sizeof(int64_t)},
                                           KeyPart{s.data_ptr<double>(), n * sizeof(double)}};
  thread_local LastCall<Host> cache;
  const Host* h = cache.find(key);
  if (h == nullptr) h = &cache.store(key, compute_host_constants(op, s, cols));
  return Host{h->consts, h->scales, h->s_out.clone()};
}

// The CUDA QAT path: the per-channel constants are computed on the device from the scale (kernels/ibert_gelu.h
// ibert_gelu_channel_consts), and the kernel applies the NaN policy itself: nothing is read back.
std::tuple<at::Tensor, at::Tensor> run_device(const char* op, const at::Tensor& x, const at::Tensor& scale,
                                              int64_t cols) {
  const at::Tensor s = scale.to(x.device()).contiguous();
  const at::Tensor consts = at::empty({3, cols}, x.options().dtype(at::kLong));
  const at::Tensor scales = at::empty({2, cols}, x.options().dtype(at::kDouble));
  const at::Tensor s_out = at::empty(s.sizes(), s.options());
  MNQ_CUDA_CALL(op, (cuda::ibert_gelu_consts(s, consts, scales, s_out), true));
  const at::Tensor xc = x.contiguous();
  at::Tensor out = at::empty(x.sizes(), x.options());
  if (xc.numel() == 0) return {out, s_out};
  const int64_t* k = consts.data_ptr<int64_t>();
  const kernels::IbertGeluParams p{xc.numel(), cols, k, k + cols, k + 2 * cols, kLo, kHi};
  const double* inv_scale = scales.data_ptr<double>();
  MNQ_CUDA_CALL(op, cuda::ibert_gelu(xc, out, p, inv_scale, inv_scale + cols, false));
  return {out, s_out};
}

// The backend on contiguous input with the constants given (on the input's device; `inv` 1/S [C] on the CPU, for
// the QAT path's error messages).
std::tuple<at::Tensor, at::Tensor> run_with(const char* op, const at::Tensor& in, const IbertGeluConsts& k,
                                            const at::Tensor& inv, bool qat) {
  const char* name = qat ? "x" : "q";
  const int64_t cols = channels_of(in);
  const at::Tensor inc = in.contiguous();
  at::Tensor out = at::empty(in.sizes(), in.options().dtype(qat ? at::kFloat : at::kLong));
  if (inc.numel() == 0) return {out, k.s_out};
  const int64_t* c = k.consts.data_ptr<int64_t>();
  const kernels::IbertGeluParams p{inc.numel(), cols, c, c + cols, c + 2 * cols, kLo, kHi};
  const double* inv_scale = k.scales.data_ptr<double>();
  const double* out_scale = inv_scale + cols;
  const bool check = needs_range_check(inc.scalar_type(), p.lo, p.hi);
  const QatRun backend = [&](const at::Tensor& i, const at::Tensor& o) {
    return i.is_cuda() ? MNQ_CUDA_CALL(op, cuda::ibert_gelu(i, o, p, inv_scale, out_scale, check))
                       : cpu::ibert_gelu(i, o, p, inv_scale, out_scale);
  };
  run_checked(op, name, qat, inc, out, InvScale{inv}, p.lo, p.hi, false, backend);
  return {out, k.s_out};
}

std::tuple<at::Tensor, at::Tensor> run(const char* op, const at::Tensor& in, const at::Tensor& scale, bool qat) {
  const char* name = qat ? "x" : "q";
  if (qat) {
    check_float_tensor(op, name, in);
  } else {
    check_int_tensor(op, name, in);
  }
  check_device_supported(op, name, in);
  check_scale_tensor(op, name, in, scale);
  const int64_t cols = channels_of(in);
  if (qat && in.is_cuda()) return run_device(op, in, scale, cols);
  const Host h = host_constants(op, scale, cols);
  const auto dev = in.device();
  if (in.numel() == 0) {
    return {at::empty(in.sizes(), in.options().dtype(qat ? at::kFloat : at::kLong)), h.s_out.to(dev)};
  }
  // On the CPU these are h's tensors (alive for the call); CUDA gets a copy.
  const IbertGeluConsts k{h.consts.to(dev), h.scales.to(dev), h.s_out.to(dev)};
  return run_with(op, in, k, at::from_blob(h.scales.data_ptr<double>(), {cols}, at::kDouble), qat);
}

std::tuple<at::Tensor, at::Tensor> ibert_gelu_meta(const at::Tensor& q, const at::Tensor& scale) {
  check_scale_tensor("ibert_gelu", "q", q, scale);
  return {at::empty(q.sizes(), q.options().dtype(at::kLong)),
          at::empty(scale.sizes(), q.options().dtype(at::kDouble))};
}

std::tuple<at::Tensor, at::Tensor> ibert_gelu_qat_meta(const at::Tensor& x, const at::Tensor& scale) {
  check_scale_tensor("ibert_gelu_qat", "x", x, scale);
  return {at::empty(x.sizes(), x.options()), at::empty(scale.sizes(), x.options().dtype(at::kDouble))};
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> ibert_gelu(const at::Tensor& q, const at::Tensor& scale) {
  return run("ibert_gelu", q, scale, false);
}

IbertGeluConsts ibert_gelu_consts(const at::Tensor& scale, int64_t channels) {
  const char* op = "ibert_gelu";
  check_scale_tensor(op, "q", at::empty({channels}, at::kInt), scale);
  const Host h = host_constants(op, scale, channels);
  return IbertGeluConsts{h.consts.clone(), h.scales.clone(), h.s_out};  // the cache's tensors are not the caller's
}

std::tuple<at::Tensor, at::Tensor> ibert_gelu_prepared(const at::Tensor& q, const IbertGeluConsts& k) {
  const char* op = "ibert_gelu";
  check_int_tensor(op, "q", q);
  check_device_supported(op, "q", q);
  const int64_t cols = channels_of(q);
  TORCH_CHECK_VALUE(k.consts.dim() == 2 && k.consts.size(0) == 3 && k.consts.size(1) == cols &&
                        k.consts.scalar_type() == at::kLong && k.consts.is_contiguous() && k.scales.dim() == 2 &&
                        k.scales.size(0) == 2 && k.scales.size(1) == cols && k.scales.scalar_type() == at::kDouble &&
                        k.scales.is_contiguous(),
                    op, ": prepared constants for ", cols, " channels expected (ibert_gelu_consts')");
  check_same_device(op, "the prepared constants", k.consts, q, "q");
  check_same_device(op, "the prepared scales", k.scales, q, "q");
  return run_with(op, q, k, at::Tensor(), false);
}

std::tuple<at::Tensor, at::Tensor> ibert_gelu_qat(const at::Tensor& x, const at::Tensor& scale) {
  return run("ibert_gelu_qat", x, scale, true);
}

TORCH_LIBRARY_IMPL(mnq, CPU, m) {
  m.impl("ibert_gelu", &ibert_gelu);
  m.impl("ibert_gelu_qat", &ibert_gelu_qat);
}
TORCH_LIBRARY_IMPL(mnq, CUDA, m) {
  m.impl("ibert_gelu", &ibert_gelu);
  m.impl("ibert_gelu_qat", &ibert_gelu_qat);
}
TORCH_LIBRARY_IMPL(mnq, Meta, m) {
  m.impl("ibert_gelu", &ibert_gelu_meta);
  m.impl("ibert_gelu_qat", &ibert_gelu_qat_meta);
}

}  // namespace backend
}  // namespace ops
}  // namespace mnq
