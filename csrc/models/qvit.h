// The quantized ViT / DeiT of SPEC §6 (I-ViT layout), each non-linear layer using the method its plan names:
// the C++ twin of python/mnq/models/vit.py (same module tree, state_dict keys and statements; blocks in
// qblocks.h). Parameters carry timm's names, so a timm or FP state_dict loads directly; quantizers carry
// mnq.nn's buffers (min_val, max_val, scale, initialized; PtfAct alpha, alpha_err, alpha_frozen under <norm>.ptf).
// Model (b = the W/A bit-width setting):
//   qact_input(b) → patch_embed.proj (QuantConv2d) → tokens; cat(cls_token[, dist_token], patches)
//   → qact_embed(16) (the float class tokens join: quantized afresh); pos_embed → qact_pos(16);
//   qact_pos_add(16, or 22 before an ibert blocks.0.norm1) fuses the two → blocks.{i} (qblocks.h)
//   → norm (over every token) → qact_norm(b) (on the prefix tokens only: what the heads read) → head
//   (and head_dist on the distillation token; the logits of the two heads are averaged, as timm in eval).
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>

#include <map>
#include <string>
#include <utility>

#include "csrc/models/presets.h"
#include "csrc/models/qblocks.h"

namespace mnq {
namespace models {

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

  static constexpr double kEps = 1e-6;  // timm's ViT/DeiT LayerNorm eps

  at::Tensor cls_token, dist_token, pos_embed;
  nn::QuantAct qact_input{nullptr}, qact_embed{nullptr}, qact_pos{nullptr}, qact_pos_add{nullptr}, qact_norm{nullptr};
  nn::QuantConv2d patch_proj{nullptr};  // patch_embed.proj
  torch::nn::ModuleList blocks{nullptr};
  nn::IntLayerNorm norm{nullptr};
  nn::QuantLinear head{nullptr}, head_dist{nullptr};

 private:
  // Image → the token sequence on the residual scale (before the blocks).
  nn::ScaledTensor embed(const at::Tensor& x);
  // The prefix tokens after the final norm and qact_norm: ([B, P, C], scale).
  nn::ScaledTensor forward_features(const at::Tensor& x);
  ViTConfig config_;
  int64_t bits_;
};
TORCH_MODULE(QuantVisionTransformer);

}  // namespace models
}  // namespace mnq
