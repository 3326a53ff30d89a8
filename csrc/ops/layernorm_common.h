// Host helpers shared by the three LayerNorm entry points (SPEC §4): argument checks, the affine constants of
// I-LayerNorm / I-BERT LayerNorm, and the common driver of those two (they differ only in their row factor).
#pragma once

#include <ATen/core/Tensor.h>

#include <tuple>

#include "kernels/layernorm_common.h"

namespace mnq {
namespace ops {

// The input of a LayerNorm: integer codes (`q`) or float32 values (`x`, QAT), CPU or CUDA, ≥ 1 dim, and a last
// dim of at most 2^16 (the bound every intermediate of kernels/*layernorm.h assumes).
void check_ln_input(const char* op, const char* name, const at::Tensor& in, bool qat);

// eps of the QAT ops (used by the layer_norm backward only): finite, ≥ 0.
void check_ln_eps(const char* op, double eps);

// A per-tensor input scale S: finite, positive, with a finite 1/S (QAT recovers q = round(x·(1/S))).
void check_ln_scale(const char* op, const char* name, double scale);

// weight and bias: floating [C] vectors on the device of `in`.
void check_ln_affine_args(const char* op, const at::Tensor& in, const at::Tensor& weight, const at::Tensor& bias);

// The float64 values of a floating [C] vector on the host: read in place when it is a contiguous CPU float32 or
// float64 tensor (widening a float32 is exact, as .to(kDouble) is), else from a float64 host copy. At batch 1 the
// two conversions this replaces were ~5 µs of a LayerNorm call (a float layer_norm call costs ~4 µs in all).
class HostValues {
 public:
  explicit HostValues(const at::Tensor& t);
  double operator[](int64_t c) const { return f_ != nullptr ? static_cast<double>(f_[c]) : d_[c]; }
  const float* f32() const { return f_; }   // the float32 values in place, or nullptr
  const double* f64() const { return d_; }  // else the float64 ones

 private:
  at::Tensor copy_;
  const float* f_ = nullptr;
  const double* d_ = nullptr;
};

// bias_int[c] = floor((β[c]/γ[c]) / Sy) (int64) and S_out[c] = Sy·γ[c] (float64), Sy = √C / 2^30, both [C] on
// the device of `weight`. Computed in float64 with plain IEEE host arithmetic (the reference's expressions, in
// its order). Rejects a γ that is 0 or not finite (`weight`) and |bias_int| > 2^62 or not finite (`bias`).
struct LnAffine {
  at::Tensor bias_int;
  at::Tensor s_out;
};
LnAffine ln_affine(const char* op, const at::Tensor& weight, const at::Tensor& bias);

namespace cuda {
// The CUDA QAT path's affine constants, on the device (csrc/cuda/layernorm_common.cu): gamma, beta float64 [C] →
// bias_int int64 [C], s_out float64 [C]; a channel the host would reject gets S_out = NaN. Nothing is read back.
void ln_affine_consts(const char* op, const at::Tensor& gamma, const at::Tensor& beta, const at::Tensor& bias_int,
                      const at::Tensor& s_out);
}  // namespace cuda

// The backends of I-LayerNorm and I-BERT LayerNorm: `in` integer codes or float32 values on scale 1/inv_scale,
// `out` int64 codes or float32 values out·s_out[c]; both contiguous [rows, cols]. Return false when an input
// code lies outside [p.lo, p.hi] (CUDA: checked only when `check`).
struct AffineLnBackends {
  bool (*cpu)(const at::Tensor& in, const at::Tensor& out, const kernels::LnParams& p, double inv_scale,
              const at::Tensor& s_out);
  bool (*cuda)(const at::Tensor& in, const at::Tensor& out, const kernels::LnParams& p, double inv_scale,
               const at::Tensor& s_out, bool check);  // nullptr in a CPU-only build
};

// Validates, computes the affine constants, runs the backend: (int64 codes or float32 values, S_out [C]).
std::tuple<at::Tensor, at::Tensor> run_affine_ln(const char* op, const at::Tensor& in, double scale,
                                                 const at::Tensor& weight, const at::Tensor& bias, bool qat, int64_t lo,
                                                 int64_t hi, const AffineLnBackends& backends);

// The fake-quant form: x float32 on the per-tensor scale tensor `scale` (see csrc/ops/qat.h), eps checked; NaN
// policy of qat.h. Returns (float32 values out·S_out, S_out [C]).
std::tuple<at::Tensor, at::Tensor> run_affine_ln_qat(const char* op, const at::Tensor& x, const at::Tensor& scale,
                                                     const at::Tensor& weight, const at::Tensor& bias, double eps,
                                                     int64_t lo, int64_t hi, const AffineLnBackends& backends);

// run_affine_ln of integer codes with the affine constants computed before (ln_affine, on the input's device):
// no host work on weight and bias per call, so on CUDA nothing is read back (ilayernorm_prepared, ops.h).
std::tuple<at::Tensor, at::Tensor> run_affine_ln_prepared(const char* op, const at::Tensor& in, double scale,
                                                          const LnAffine& aff, int64_t lo, int64_t hi,
                                                          const AffineLnBackends& backends);

// Meta (shape-only) version of run_affine_ln; `scale` is checked when given (the integer ops' float scale).
std::tuple<at::Tensor, at::Tensor> affine_ln_meta(const char* op, const at::Tensor& in, const double* scale,
                                                  const at::Tensor& weight, const at::Tensor& bias, bool qat);

}  // namespace ops
}  // namespace mnq
