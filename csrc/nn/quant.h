// Activation quantizers (SPEC §1), C++ twins of python/mnq/nn/quant.py with the same buffers (names, dtypes,
// shapes), so a state_dict moves between the two: min_val, max_val (float32 0-d), scale (float64 0-d),
// initialized (bool 0-d); PtfAct adds alpha (int64 [C]), alpha_err (float64 [C, 4]), alpha_frozen (bool 0-d).
// Calling style of I-ViT: forward(x, scale) -> (y, scale_out), y = q·scale_out as float (fake quant, STE).
// A scale is a float64 tensor, 0-d (per tensor) or [C] (per channel of the last dim).
#pragma once

#include <torch/nn/module.h>

#include <utility>

namespace mnq {
namespace nn {

using ScaledTensor = std::pair<at::Tensor, at::Tensor>;  // (values q·S, S)

// A 0-d bool buffer mirrored on the host, so a forward never reads it back from the device (on CUDA a read is a
// synchronization). The mirror is keyed by the buffer's TensorImpl and version counter: it re-reads the buffer
// (once) only after something else changed it — a state_dict or checkpoint load, a move to another device.
class HostFlag {
 public:
  bool get(const at::Tensor& buffer) const;
  void set(at::Tensor& buffer, bool value);

 private:
  mutable const void* impl_ = nullptr;
  mutable int64_t version_ = -1;
  mutable bool value_ = false;
};

// Checks bits in [2, hi] (as python's _check_bits) and returns it.
int64_t check_bits(int64_t bits, int64_t hi = 16);

// A per-tensor scale (one element) as a 0-d float64 tensor on its device: checked by shape, never read (no host
// sync). `who` names the layer in the error.
at::Tensor per_tensor_scale(const at::Tensor& scale, const char* who);

// Running symmetric range -> S = max(|min|, |max|, 1e-8) / (2^(b-1) - 1); EMA with `momentum` in training, the
// first batch initialises it.
class RangeTracker : public torch::nn::Module {
 public:
  RangeTracker(int64_t bits, double momentum, int64_t max_bits);
  int64_t bits() const { return bits_; }
  const at::Tensor& scale() const { return scale_; }
  bool is_initialized() const { return initialized_flag_.get(initialized_); }
  // Adds a batch to the running range and updates the scale (python's _observe); with y, the batch is x + y (a
  // residual add fused into the quantizer). Public so a model can seed a quantizer's range before its first use (an
  // fqvit LayerNorm's output quantizer, see qvit.h).
  void observe(const at::Tensor& x, const at::Tensor& y = {});

 protected:
  void check_calibrated(const char* who) const;

  int64_t bits_;
  double momentum_;
  at::Tensor min_val_, max_val_, scale_, initialized_;
  HostFlag initialized_flag_;
};

// Symmetric per-tensor activation quantizer. forward(x) quantizes floats; forward(x, scale_in) requantizes an
// already-quantized x (dyadic requant, per-tensor or per-channel scale_in); identity/identity_scale fuse a
// residual add (SPEC §1).
class QuantActImpl : public RangeTracker {
 public:
  explicit QuantActImpl(int64_t bits = 8, double momentum = 0.95);
  ScaledTensor forward(const at::Tensor& x, const at::Tensor& scale_in = {}, const at::Tensor& identity = {},
                       const at::Tensor& identity_scale = {});
  void pretty_print(std::ostream& stream) const override;
};
TORCH_MODULE(QuantAct);

// FQ-ViT power-of-two-factor quantizer, symmetric variant (SPEC §1): channel c uses s_base·2^alpha[c],
// s_base = S/8. In training and until freeze_alpha(), each batch adds its per-channel squared error for alpha
// = 0..3 to alpha_err and alpha = argmin (ties -> smaller alpha).
class PtfActImpl : public RangeTracker {
 public:
  PtfActImpl(int64_t channels, int64_t bits = 8, double momentum = 0.95);
  // The base scale S/8 as a 0-d float64 tensor on the buffers' device.
  at::Tensor s_base() const { return scale_ / 8.0; }
  const at::Tensor& alpha() const { return alpha_; }
  void freeze_alpha() { alpha_frozen_flag_.set(alpha_frozen_, true); }
  void reset_alpha();
  // (y, (s_base, alpha)): y has per-channel scale s_base·2^alpha.
  std::pair<at::Tensor, std::pair<at::Tensor, at::Tensor>> forward(const at::Tensor& x);
  void pretty_print(std::ostream& stream) const override;

 private:
  int64_t channels_;
  at::Tensor alpha_, alpha_err_, alpha_frozen_;
  HostFlag alpha_frozen_flag_;
};
TORCH_MODULE(PtfAct);

}  // namespace nn
}  // namespace mnq
