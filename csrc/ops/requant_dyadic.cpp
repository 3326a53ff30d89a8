// requant_dyadic (SPEC §0/§1): the integer requantization of `requant` with the multipliers given as dyadic pairs
// (m, k) instead of scales, q_out = clamp(round(q·m/2^k) [+ round(q_id·m_id/2^k_id)], −2^(b−1), 2^(b−1)−1).
// The integer engine (csrc/deploy) stores every requantization as such pairs (computed once at conversion by
// dyadic(S_in/S_out), the exact multipliers `requant` derives per call), so inference reads no scale at all.
// Same kernels as requant (kernels/quant.h requant_code, csrc/cpu/requant.cpp fast paths), CPU and CUDA.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <optional>

#include "csrc/checks.h"
#include "csrc/dispatch.h"
#include "csrc/ops/backend.h"
#include "csrc/ops/prepared.h"
#include "csrc/ops/quant.h"

namespace mnq {
namespace ops {
namespace backend {
namespace {

constexpr int64_t kMaxMantissa = int64_t(1) << 31;
// requant() (kernels/common.h) is exact for |q·m| < 2^94 and shifts of either sign; k in [−32, 120] covers every
// multiplier dyadic() gives for a ratio between 2^−89 and 2^63.
constexpr int64_t kMinShift = -32, kMaxShift = 120;

// m, k: int64, one element (per tensor) or [C] (per channel of q's last dim); |m| in [1, 2^31], k in range (the
// values only when check_values: requant_dyadic_prechecked's callers validated them once, so nothing is read back).
void check_dyadic(const char* op, const char* mn, const at::Tensor& m, const char* kn, const at::Tensor& k,
                  const at::Tensor& q, bool check_values) {
  const int64_t C = q.dim() == 0 ? 1 : q.size(-1);
  auto check_one = [&](const char* name, const at::Tensor& t) {
    TORCH_CHECK(t.defined(), op, ": ", name, " is undefined");
    TORCH_CHECK_TYPE(t.scalar_type() == at::kLong, op, ": ", name, " must be an int64 tensor, got ", t.scalar_type());
    const bool per_tensor = t.numel() == 1 && t.dim() <= 1;
    TORCH_CHECK_VALUE(per_tensor || (t.dim() == 1 && t.size(0) == C), op, ": ", name,
                      " must be 0-d (per tensor) or of shape [", C, "] (per channel of the last dim), got shape ",
                      t.sizes());
    check_same_device(op, name, t, q, "q");
  };
  check_one(mn, m);
  check_one(kn, k);
  TORCH_CHECK_VALUE(m.numel() == k.numel(), op, ": ", mn, " and ", kn, " must have the same number of elements, got ",
                    m.numel(), " and ", k.numel());
  if (!check_values) return;
  // One host read of the (small) multiplier arrays: the integer ops validate at the boundary (README "GPU path").
  const at::Tensor mh = m.to(at::kCPU).reshape({-1}), kh = k.to(at::kCPU).reshape({-1});
  for (int64_t c = 0; c < mh.numel(); ++c) {
    const int64_t mv = mh.data_ptr<int64_t>()[c], kv = kh.data_ptr<int64_t>()[c];
    TORCH_CHECK_VALUE(mv != 0 && mv >= -kMaxMantissa && mv <= kMaxMantissa, op, ": ", mn, "[", c, "] = ", mv,
                      " must be nonzero with |m| <= 2^31");
    TORCH_CHECK_VALUE(kv >= kMinShift && kv <= kMaxShift, op, ": ", kn, "[", c, "] = ", kv, " must be in [",
                      kMinShift, ", ", kMaxShift, "]");
  }
}

kernels::ChannelLayout last_dim_layout(const at::Tensor& q, const at::Tensor& m) {
  return m.numel() == 1 ? kernels::ChannelLayout{1, 1} : kernels::ChannelLayout{q.size(-1), 1};
}

at::Tensor flat(const at::Tensor& t) { return t.reshape({-1}).contiguous(); }

at::Tensor run(const at::Tensor& q, const at::Tensor& m, const at::Tensor& k, int64_t bits,
               const std::optional<at::Tensor>& identity, const std::optional<at::Tensor>& m_id,
               const std::optional<at::Tensor>& k_id, bool check_values) {
  const char* op = "requant_dyadic";
  check_int_tensor(op, "q", q);
  check_device_supported(op, "q", q);
  check_int_arg(op, "bits", bits, 2, 32);
  check_dyadic(op, "m", m, "k", k, q, check_values);
  const bool has_id = identity.has_value();
  TORCH_CHECK_VALUE(has_id == m_id.has_value() && has_id == k_id.has_value(), op,
                    ": identity, m_id and k_id must be given together");
  const at::Tensor qc = q.contiguous();
  at::Tensor out = at::empty(q.sizes(), q.options().dtype(at::kInt));
  RequantSide in{qc, flat(m), flat(k), at::Tensor()};
  kernels::RequantParams p{q.numel(), last_dim_layout(q, m), kernels::ChannelLayout{1, 1},
                           -(int64_t(1) << (bits - 1)), (int64_t(1) << (bits - 1)) - 1, has_id};
  std::optional<RequantSide> id;
  if (has_id) {
    check_int_tensor(op, "identity", *identity);
    check_same_device(op, "identity", *identity, q, "q");
    TORCH_CHECK_VALUE(identity->sizes() == q.sizes(), op, ": identity must have the shape of q ", q.sizes(),
                      ", got ", identity->sizes());
    check_dyadic(op, "m_id", *m_id, "k_id", *k_id, q, check_values);
    id = RequantSide{identity->contiguous(), flat(*m_id), flat(*k_id), at::Tensor()};
    p.id_layout = last_dim_layout(q, *m_id);
  }
  if (q.numel() == 0) return out;
  const RequantSide* idp = id ? &*id : nullptr;
  bool ok = false;
  if (q.is_cuda()) {
    // The CUDA requant reads the output scale only for fake-quant outputs; codes ignore it.
    const at::Tensor unused_scale = at::ones({}, q.options().dtype(at::kDouble));
    ok = MNQ_CUDA_CALL(op, cuda::requant(in, idp, out, unused_scale, p, false));
  } else {
    ok = cpu::requant(in, idp, out, 1.0, p);
  }
  TORCH_CHECK(ok, op, ": internal error: requantization reported an input without a code");
  return out;
}

}  // namespace

at::Tensor requant_dyadic(const at::Tensor& q, const at::Tensor& m, const at::Tensor& k, int64_t bits,
                          const std::optional<at::Tensor>& identity, const std::optional<at::Tensor>& m_id,
                          const std::optional<at::Tensor>& k_id) {
  return run(q, m, k, bits, identity, m_id, k_id, true);
}

at::Tensor requant_dyadic_prechecked(const at::Tensor& q, const at::Tensor& m, const at::Tensor& k, int64_t bits,
                                     const std::optional<at::Tensor>& identity, const std::optional<at::Tensor>& m_id,
                                     const std::optional<at::Tensor>& k_id) {
  return run(q, m, k, bits, identity, m_id, k_id, false);
}

namespace {
at::Tensor requant_dyadic_meta(const at::Tensor& q, const at::Tensor&, const at::Tensor&, int64_t,
                               const std::optional<at::Tensor>&, const std::optional<at::Tensor>&,
                               const std::optional<at::Tensor>&) {
  return at::empty(q.sizes(), q.options().dtype(at::kInt));
}
}  // namespace

TORCH_LIBRARY_IMPL(mnq, CPU, m) { m.impl("requant_dyadic", &requant_dyadic); }
TORCH_LIBRARY_IMPL(mnq, CUDA, m) { m.impl("requant_dyadic", &requant_dyadic); }
TORCH_LIBRARY_IMPL(mnq, Meta, m) { m.impl("requant_dyadic", &requant_dyadic_meta); }

}  // namespace backend
}  // namespace ops
}  // namespace mnq
