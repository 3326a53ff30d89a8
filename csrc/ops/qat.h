// Shared by the fake-quant (QAT) entry points (SPEC §5): scale arguments that stay device tensors, and the NaN
// policy of the float path.
//
// Scales. A QAT op takes its scale as a tensor (0-d or one element) so a module never reads it back to the host:
// on CUDA every such read is a device synchronization, and under torch.compile a graph break. The output scale is
// returned as a tensor computed from it with device ops.
//
// NaN policy. A fake-quant op never raises on its data (that would need a host read of an error flag): an input
// whose code round(x / S) is not finite or lies outside the op's declared range gives NaN — in every output of its
// row for the row-wise ops, in its own element for the element-wise ones — and the other rows are exact. The loss
// turns NaN into a stop (the trainer keeps its last good checkpoint). Argument errors (dtype, shape, device, a
// scale outside the op's supported range on the CPU) still raise.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <utility>

namespace mnq {
namespace ops {

// A per-tensor scale argument: floating point, exactly one element, on the CPU or on the device of `x`. Returned
// as a 0-d float64 tensor on x's device (device ops only: no value is read).
at::Tensor scale_arg(const char* op, const char* name, const at::Tensor& scale, const at::Tensor& x);

// The value of a 0-d float64 scale on the CPU, read from its memory (no dispatcher op, nothing to wait for). A CUDA
// scale is copied back, which synchronizes: only the CUDA paths that still compute their constants on the host do
// that (see README, "GPU path").
double scale_value(const at::Tensor& s);

// The device path of a QAT op on CUDA: the scale's device memory (a scale_arg result), from which the kernel
// computes the op's constants with the host's functions (kernels/<op>.h *_device_consts): nothing is read back. A
// scale outside the op's supported range gives an all-NaN output there (the CPU raises), a bad code a NaN row, and
// no error flag is used. nullptr for a CPU scale (the CPU path reads it with scale_value).
const double* device_scale(const at::Tensor& s);

// Runs `run` (the op's backend, returning ok = every code in range) and applies the NaN policy when it reports a
// bad code: the bad rows (rowwise) or elements are found with tensor ops, replaced by 0 for a second run, and
// their outputs set to NaN. `inv_scale` broadcasts against x (0-d or [C]); codes are rint(x · inv_scale) in float64,
// the loaders' expression (kernels/io.h).
using QatRun = std::function<bool(const at::Tensor& x, const at::Tensor& out)>;

// 1/S of the QAT input: one value (no tensor is made unless a bad code needs it, so the hot path allocates
// nothing) or a per-channel tensor [C].
struct InvScale {
  double value = 0.0;
  at::Tensor per_channel;
  InvScale(double v) : value(v) {}  // NOLINT(google-explicit-constructor): a plain 1/S reads as one
  explicit InvScale(at::Tensor t) : per_channel(std::move(t)) {}
  at::Tensor tensor() const;
};

void run_qat(const at::Tensor& x, const at::Tensor& out, const InvScale& inv_scale, int64_t lo, int64_t hi,
             bool rowwise, const QatRun& run);

// The common tail of an entry point: a QAT call (`qat`) runs run_qat; an integer op raises (fail_range, naming
// `name`) when the backend reports a code outside [lo, hi].
void run_checked(const char* op, const char* name, bool qat, const at::Tensor& in, const at::Tensor& out,
                 const InvScale& inv_scale, int64_t lo, int64_t hi, bool rowwise, const QatRun& run);

}  // namespace ops
}  // namespace mnq
