// Full-precision Swin Transformer with timm's (1.0) module and parameter names and computation: NHWC
// activations, patch_embed.{proj,norm}, layers.{s}.downsample.{norm,reduction} (patch merging at the start of
// stages 1..), layers.{s}.blocks.{i}.{norm1, attn.{qkv, proj, relative_position_bias_table}, norm2, mlp.fc1/fc2},
// norm, head.fc (global average pooling). LayerNorm eps 1e-5 (timm's Swin uses nn.LayerNorm's default). The
// relative position index and the shift mask are derived tensors, not part of the state (timm: non-persistent).
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "csrc/models/tap.h"

namespace mnq {
namespace models {

struct SwinConfig {
  std::string name;
  int64_t img_size = 224;
  int64_t patch_size = 4;
  int64_t in_chans = 3;
  int64_t num_classes = 1000;
  int64_t embed_dim = 96;
  std::vector<int64_t> depths = {2, 2, 6, 2};
  std::vector<int64_t> num_heads = {3, 6, 12, 24};
  int64_t window_size = 7;
  double drop_path_rate = 0;  // stochastic depth of the last block (drop_path.h), training only
  // Throws std::invalid_argument naming the field when the shapes do not fit together.
  void validate() const;
};

SwinConfig swin_preset(const std::string& name);
std::vector<std::string> swin_preset_names();
// Mixable layers in forward order: layers.{s}.downsample.norm (s ≥ 1), layers.{s}.blocks.{i}.{norm1,
// attn.softmax, norm2, mlp.gelu}, norm.
std::vector<std::string> swin_layer_names(const SwinConfig& config);

// Window geometry of one block: the window and shift timm uses at this resolution (a window no larger than the
// feature map, no shift when one window covers it), the relative position index and the shift mask.
//
// The index and the mask are built once on the CPU; they are derived, not state (no module buffers: libtorch has
// no non-persistent buffers and they must stay out of the state_dict), so a model moved to a GPU does not move
// them. Forwards read them through index_on / mask_on, which copy them to a device once and keep that copy (one
// per device, shared by the copies of this SwinWindow): no per-forward host-to-device copy.
struct SwinWindow {
  SwinWindow(int64_t resolution, int64_t window, int64_t shift);
  int64_t resolution, window, shift;
  at::Tensor relative_position_index;  // [window², window²] int64, CPU
  at::Tensor mask;                     // [num_windows, window², window²] 0 / -100, CPU; undefined without shift

  at::Tensor index_on(at::Device device) const;
  at::Tensor mask_on(at::Device device) const;  // undefined without shift

 private:
  struct Cache;
  std::pair<at::Tensor, at::Tensor> tensors_on(at::Device device) const;  // (index, mask)
  std::shared_ptr<Cache> cache_;
};

// [B, H, W, C] -> [B·nW, ws², C] and back.
at::Tensor window_partition(const at::Tensor& x, int64_t ws);
at::Tensor window_reverse(const at::Tensor& windows, int64_t ws, int64_t H, int64_t W);
// timm's patch merging order: [B, H, W, C] -> [B, H/2, W/2, 4C].
at::Tensor patch_merge(const at::Tensor& x);

// A plain module registered under `name` in `parent`, used as a named scope of the timm state_dict (attn, mlp,
// layers.{s}, downsample, head, …): shared by SwinTransformer and QuantSwin so both spell the same keys.
std::shared_ptr<torch::nn::Module> named_scope(torch::nn::Module& parent, const std::string& name);

class SwinBlockImpl : public torch::nn::Module {
 public:
  SwinBlockImpl(int64_t dim, int64_t num_heads, const SwinWindow& window, double drop_path = 0);
  at::Tensor forward(const at::Tensor& x);  // [B, H, W, C]
  // Reports norm1, attn.softmax (scores [B·nW, heads, N, N], windows of one image consecutive), norm2 and
  // mlp.gelu under `prefix` (e.g. "layers.0.blocks.1.") to `tap`.
  void attach(const TapSlot& tap, const std::string& prefix);
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  torch::nn::Linear qkv{nullptr}, proj{nullptr}, fc1{nullptr}, fc2{nullptr};
  at::Tensor relative_position_bias_table;  // attn.relative_position_bias_table [(2ws-1)², heads]

 private:
  at::Tensor attention(const at::Tensor& windows);  // [B·nW, N, C]
  int64_t num_heads_;
  double drop_path_;
  SwinWindow window_;
  TapSlot tap_;
  std::string norm1_name_, softmax_name_, norm2_name_, gelu_name_;
};
TORCH_MODULE(SwinBlock);

class SwinTransformerImpl : public torch::nn::Module {
 public:
  explicit SwinTransformerImpl(const SwinConfig& config);
  at::Tensor forward(const at::Tensor& x);           // logits
  at::Tensor forward_features(const at::Tensor& x);  // [B, H, W, C] after the final norm
  const SwinConfig& config() const { return config_; }
  // Calls `tap` at every mixable layer (SPEC §6 names; not patch_embed.norm) of later forwards; empty removes it.
  void set_tap(LayerTap tap) const { tap_.set(std::move(tap)); }

 private:
  // One stage: patch merging (stages ≥ 1) then its blocks.
  struct Stage {
    std::string merge_norm_name;  // layers.{s}.downsample.norm
    torch::nn::LayerNorm merge_norm{nullptr};
    torch::nn::Linear merge_reduction{nullptr};
    std::vector<SwinBlock> blocks;
  };
  SwinConfig config_;
  TapSlot tap_;
  torch::nn::Conv2d patch_proj{nullptr};
  torch::nn::LayerNorm patch_norm{nullptr}, norm{nullptr};
  std::vector<Stage> stages_;
  torch::nn::Linear head_fc{nullptr};
};
TORCH_MODULE(SwinTransformer);

}  // namespace models
}  // namespace mnq
