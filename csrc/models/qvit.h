// The quantized ViT / DeiT of SPEC §6 (I-ViT layout), each non-linear layer using the method its plan names.
// Parameters carry timm's names (a timm or FP state_dict loads directly); the quantizers' buffers follow
// I-ViT's module names (qact1, qact_attn1, …) and mnq.nn's buffer names (min_val, max_val, scale, initialized;
// PtfAct alpha, alpha_err, alpha_frozen under <norm>.ptf). Per block:
//   norm1 → qact1(b) → attn[ qkv → qact1(b) → q@kᵀ·d^-½ → qact_attn1(b) → softmax → attn@v → qact2(b) → proj
//   → qact3(16) ] → qact2(16, + residual) → norm2 → qact3(b) → mlp[ fc1 → qact_gelu(b) (absent for ibert GELU,
//   which reads the fc1 accumulator) → gelu → qact1(b) → fc2 → qact2(16) ] → qact4(16, + residual).
// Model: qact_input(b) → patch_embed[ proj → qact(16) ] → cat(cls[, dist]) + pos_embed → qact_pos(16)
//   → blocks → norm → qact2(b) → head (and head_dist).
// A residual quantizer feeding an ibert LayerNorm has 22 bits (SPEC §4.2); an fqvit LayerNorm reads the stream
// through its PtfAct(b) and is given the scale of the quantizer after it. The softmax output is already
// quantized on a fixed scale (ivit/ibert 16 bits, fqvit 4-bit log codes), so attn@v reads it directly.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>

#include <map>
#include <string>
#include <utility>

#include "csrc/models/plan.h"
#include "csrc/models/presets.h"
#include "csrc/nn/layers.h"
#include "csrc/nn/nonlinear.h"
#include "csrc/nn/quant.h"

namespace mnq {
namespace models {

struct QuantOptions {
  int64_t bits = 8;  // W/A bit-width setting b (SPEC §6), 2..16
  Plan plan = Plan::uniform("ivit");
};

class QuantAttentionImpl : public torch::nn::Module {
 public:
  QuantAttentionImpl(int64_t dim, int64_t num_heads, int64_t bits, const std::string& softmax_method);
  nn::ScaledTensor forward(const at::Tensor& x, const at::Tensor& scale);
  nn::QuantLinear qkv{nullptr}, proj{nullptr};
  nn::QuantAct qact1{nullptr}, qact_attn1{nullptr}, qact2{nullptr}, qact3{nullptr};
  nn::IntSoftmax softmax{nullptr};

 private:
  int64_t num_heads_;
};
TORCH_MODULE(QuantAttention);

class QuantMlpImpl : public torch::nn::Module {
 public:
  QuantMlpImpl(int64_t dim, int64_t hidden, int64_t bits, const std::string& gelu_method);
  nn::ScaledTensor forward(const at::Tensor& x, const at::Tensor& scale);
  nn::QuantLinear fc1{nullptr}, fc2{nullptr};
  nn::QuantAct qact_gelu{nullptr}, qact1{nullptr}, qact2{nullptr};
  nn::IntGELU gelu{nullptr};
};
TORCH_MODULE(QuantMlp);

// What one block needs from the model: its methods and the widths of its two residual quantizers.
struct QuantBlockSpec {
  int64_t dim, num_heads, hidden, bits;
  std::string norm1, softmax, norm2, gelu;
  int64_t attn_residual_bits, mlp_residual_bits;  // 22 when the LayerNorm they feed is ibert, else 16
};

class QuantBlockImpl : public torch::nn::Module {
 public:
  explicit QuantBlockImpl(const QuantBlockSpec& spec);
  nn::ScaledTensor forward(const at::Tensor& x, const at::Tensor& scale);
  nn::IntLayerNorm norm1{nullptr}, norm2{nullptr};
  nn::QuantAct qact1{nullptr}, qact2{nullptr}, qact3{nullptr}, qact4{nullptr};
  QuantAttention attn{nullptr};
  QuantMlp mlp{nullptr};
};
TORCH_MODULE(QuantBlock);

class QuantPatchEmbedImpl : public torch::nn::Module {
 public:
  QuantPatchEmbedImpl(const ViTConfig& c, int64_t bits);
  nn::ScaledTensor forward(const at::Tensor& x, const at::Tensor& scale);  // -> [B, N, D] on 16 bits
  nn::QuantConv2d proj{nullptr};
  nn::QuantAct qact{nullptr};
};
TORCH_MODULE(QuantPatchEmbed);

class QuantVisionTransformerImpl : public torch::nn::Module {
 public:
  // Throws (naming the key) when the plan leaves a layer without a method or names a layer the model lacks.
  QuantVisionTransformerImpl(const ViTConfig& config, const QuantOptions& options);
  // Logits; for a distilled model the mean of both heads (as the FP model and timm).
  at::Tensor forward(const at::Tensor& x);
  std::pair<at::Tensor, at::Tensor> forward_heads(const at::Tensor& x);
  // The method each mixable layer runs, read back from the modules themselves.
  std::map<std::string, std::string> layer_methods() const;
  // Ends PtfAct's α search (call after calibration, before QAT), as mnq.nn.PtfAct.freeze_alpha.
  void freeze_alpha();
  const ViTConfig& config() const { return config_; }
  int64_t bits() const { return bits_; }

  at::Tensor cls_token, pos_embed, dist_token;
  nn::QuantAct qact_input{nullptr}, qact_pos{nullptr}, qact2{nullptr};
  QuantPatchEmbed patch_embed{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  nn::IntLayerNorm norm{nullptr};
  nn::QuantLinear head{nullptr}, head_dist{nullptr};

 private:
  // The normalized, requantized token sequence on a per-tensor scale.
  nn::ScaledTensor forward_features(const at::Tensor& x);
  ViTConfig config_;
  int64_t bits_;
};
TORCH_MODULE(QuantVisionTransformer);

}  // namespace models
}  // namespace mnq
