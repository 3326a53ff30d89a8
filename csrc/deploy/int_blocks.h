// The transformer block in integers (SPEC §6 wiring, as csrc/models/qblocks.h runs it in fake quant): every
// QuantAct of the fake-quant block becomes a Requant with the same input/output scales, every QuantLinear an
// IntLinear, every non-linear layer its integer op. Tensors between layers are int32 codes (int8 into the matmuls);
// accumulators are int32/int64. The same block serves ViT/DeiT and Swin (window attention: relative-position
// bias codes fused into the scores requant like a residual, shift-mask codes added on the scores' scale).
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <optional>
#include <string>

#include "csrc/deploy/int_layers.h"

namespace mnq {
namespace deploy {

struct Residual;  // int_fused.h

struct BlockShape {
  int64_t dim, heads, hidden;
  int64_t window = 0, shift = 0, resolution = 0;  // Swin only (window > 0)
  int64_t num_windows() const { return window > 0 ? (resolution / window) * (resolution / window) : 1; }
};

struct IntAttention {
  IntLinear qkv, proj;
  Requant qkv_act, scores_act, av_act, proj_act;
  IntSoftmax softmax;
  int64_t bits = 8;                // of the q/k/v codes
  Requant bias_act;                // Swin: the relative-position bias codes onto the scores' scale
  at::Tensor bias_codes;           // Swin: int32 [1, heads, n, n] (qact_bias(16) of the bias table)
  at::Tensor mask_codes;           // shifted Swin windows: int32 [nW, n, n], round(mask / S_scores)

  // [B', n, C]; with `res` the residual add after proj is fused (int_fused.h Residual)
  at::Tensor operator()(const at::Tensor& x, const BlockShape& shape, Profile* prof,
                        const Residual* res = nullptr) const;
  void write(Store& s, const std::string& name) const;
  static IntAttention read(const Store& s, const std::string& name, const BlockShape& shape);
  void to(at::Device d);
};

struct IntMlp {
  IntLinear fc1, fc2;
  std::optional<Requant> fc1_act;  // absent when GELU is ibert (it reads the fc1 accumulator)
  IntGelu gelu;
  Requant gelu_act;  // unused for the fqvit GELU (its table gives qact_gelu's codes)
  Requant fc2_act;

  at::Tensor operator()(const at::Tensor& x, Profile* prof, const Residual* res = nullptr) const;
  void write(Store& s, const std::string& name) const;
  static IntMlp read(const Store& s, const std::string& name, const BlockShape& shape);
  void to(at::Device d);
};

struct IntBlock {
  BlockShape shape;
  IntNorm norm1, norm2;
  Requant norm1_act, norm2_act;
  IntAttention attn;
  IntMlp mlp;
  Requant res1, res1_id, res2, res2_id;  // the fused residual adds: branch and skip onto the stream's scale

  // x: residual-stream codes, [B, N, C] (ViT) or [B, H, W, C] (Swin).
  at::Tensor operator()(const at::Tensor& x, Profile* prof) const;
  void write(Store& s, const std::string& name) const;
  static IntBlock read(const Store& s, const std::string& name, const BlockShape& shape);
  void to(at::Device d);
};

// A LayerNorm and the QuantAct after it.
struct IntNormAct {
  IntNorm norm;
  Requant act;
  at::Tensor operator()(const at::Tensor& x, Profile* prof) const;
  void write(Store& s, const std::string& norm_name, const std::string& act_name) const;
  static IntNormAct read(const Store& s, const std::string& norm_name, const std::string& act_name, int64_t channels);
  void to(at::Device d);
};

// The input quantizer (the one float → integer step) and the patch embedding: a stride-P P×P convolution is a
// matrix product of the non-overlapping patches (flattened in the weight's (c, kh, kw) order) with the weights.
struct IntPatchEmbed {
  double input_scale = 1;  // qact_input
  int64_t input_bits = 8;
  int64_t patch = 16, in_chans = 3;
  IntLinear proj;

  // images float [B, C, H, W] → the int8 patch matrix [B·H/P·W/P, C·P·P] (input codes in the weight's order).
  at::Tensor patches(const at::Tensor& images, Profile* prof) const;
  // images → the codes of `act` (qact_embed) of the accumulators on S_in·S_w, [B, H/P, W/P, D].
  at::Tensor operator()(const at::Tensor& images, const Requant& act, Profile* prof) const;
  void write(Store& s) const;  // qact_input.*, patch_embed.proj.*
  static IntPatchEmbed read(const Store& s, int64_t in_chans, int64_t patch, int64_t dim);
  void to(at::Device d) { proj.to(d); }
};

// Profiled requantization (op type "requant"); codes of b ≤ 8 bits may come as int8 (codes_dtype).
at::Tensor requant(const Requant& r, const at::Tensor& q, Profile* prof);
at::ScalarType codes_dtype(const Requant& r);
// requant(r, op(x)) for a row-wise op; on the CPU in blocks of rows (int_fused.h rows_then_requant).
at::Tensor requant_of(const Requant& r, const at::Tensor& x, const std::function<at::Tensor(const at::Tensor&)>& op,
                      Profile* prof);
at::Tensor requant_add(const Requant& r, const at::Tensor& q, const at::Tensor& q_id, const Requant& id,
                       Profile* prof);

}  // namespace deploy
}  // namespace mnq
