// Full-precision ViT / DeiT with timm's module and parameter names (cls_token, pos_embed, dist_token,
// patch_embed.proj, blocks.{i}.norm1 / attn.qkv / attn.proj / norm2 / mlp.fc1 / mlp.fc2, norm, head, head_dist),
// so a timm state_dict loads directly and the forward matches timm's (LayerNorm eps 1e-6, erf GELU, class-token
// pooling; the distilled model returns the mean of head and head_dist, as timm does unless distilled_training).
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <utility>

#include "csrc/models/presets.h"
#include "csrc/models/tap.h"

namespace mnq {
namespace models {

class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(int64_t dim, int64_t num_heads);
  at::Tensor forward(const at::Tensor& x);
  // Reports the softmax as layer `name` to `tap`.
  void attach(const TapSlot& tap, const std::string& name);
  torch::nn::Linear qkv{nullptr}, proj{nullptr};

 private:
  int64_t num_heads_;
  TapSlot tap_;
  std::string softmax_name_;
};
TORCH_MODULE(Attention);

class MlpImpl : public torch::nn::Module {
 public:
  MlpImpl(int64_t dim, int64_t hidden);
  at::Tensor forward(const at::Tensor& x);
  void attach(const TapSlot& tap, const std::string& name);  // the GELU as layer `name`
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};

 private:
  TapSlot tap_;
  std::string gelu_name_;
};
TORCH_MODULE(Mlp);

class BlockImpl : public torch::nn::Module {
 public:
  // drop_path: this block's stochastic-depth rate (drop_path.h).
  BlockImpl(int64_t dim, int64_t num_heads, int64_t hidden, double drop_path = 0);
  at::Tensor forward(const at::Tensor& x);
  // Reports norm1, attn.softmax, norm2 and mlp.gelu under `prefix` (e.g. "blocks.3.") to `tap`.
  void attach(const TapSlot& tap, const std::string& prefix);
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  Attention attn{nullptr};
  Mlp mlp{nullptr};

 private:
  TapSlot tap_;
  std::string norm1_name_, norm2_name_;
  double drop_path_;
};
TORCH_MODULE(Block);

class PatchEmbedImpl : public torch::nn::Module {
 public:
  explicit PatchEmbedImpl(const ViTConfig& c);
  at::Tensor forward(const at::Tensor& x);  // [B, C, H, W] -> [B, N, D]
  torch::nn::Conv2d proj{nullptr};
};
TORCH_MODULE(PatchEmbed);

class VisionTransformerImpl : public torch::nn::Module {
 public:
  explicit VisionTransformerImpl(const ViTConfig& config);
  // Logits [B, num_classes]; for a distilled model the mean of both heads.
  at::Tensor forward(const at::Tensor& x);
  // The normalized token sequence [B, prefix + N, D].
  at::Tensor forward_features(const at::Tensor& x);
  // (head, head_dist) logits of a distilled model (what timm returns with distilled_training in training).
  std::pair<at::Tensor, at::Tensor> forward_heads(const at::Tensor& x);
  const ViTConfig& config() const { return config_; }
  // Calls `tap` at every mixable layer (SPEC §6 names) of later forwards; an empty function removes it.
  void set_tap(LayerTap tap) const { tap_.set(std::move(tap)); }

  at::Tensor cls_token, pos_embed, dist_token;
  PatchEmbed patch_embed{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::LayerNorm norm{nullptr};
  torch::nn::Linear head{nullptr}, head_dist{nullptr};

 private:
  ViTConfig config_;
  TapSlot tap_;
};
TORCH_MODULE(VisionTransformer);

// Initialisation of the embedding parameters as timm (pos_embed, dist_token: N(0, 0.02²) truncated at ±2σ;
// cls_token: N(0, 1e-12)); linear layers keep LibTorch's default. Shared by the quantized model.
void init_embeddings(at::Tensor& cls_token, at::Tensor& pos_embed, at::Tensor& dist_token);

}  // namespace models
}  // namespace mnq
