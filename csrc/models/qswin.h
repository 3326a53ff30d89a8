// The quantized Swin Transformer (SPEC §6): the C++ twin of python/mnq/models/swin.py (same module tree,
// state_dict keys and statements). The block wiring of qblocks.h applied to windows, plus:
//  - window partition and cyclic shift: pure permutations of codes;
//  - attn.qact_bias(16) quantizes the relative-position bias, which qact_scores(b) fuses into the scores like a
//    residual; the shift mask is then added as whole codes on the scores' scale (−100 in real units, which the
//    integer softmaxes' clamp of x − max turns into exp ≈ 0; quantized, it would set the range);
//  - ivit softmax with 8 output bits (I-ViT's Swin), ibert 16, fqvit 4-bit log codes; LayerNorm eps 1e-5;
//  - patch merging layers.{s}.downsample: merge → norm (mixable) → qact_norm(b) → reduction → qact_out (the next
//    residual quantizer);
//  - embedding: qact_input(b) → patch_embed.proj → qact_embed(16) → patch_embed.norm (I-LayerNorm, as I-ViT's
//    Swin; not a mixable layer in SPEC §6) → qact_patch_norm; head: norm → qact_norm(b) → token mean
//    → qact_pool(b) (a requant of the sum of codes) → head.fc.
// Every residual-stream quantizer has 22 bits when the LayerNorm it feeds is ibert, else 16. Parameter names are
// timm's, so FP Swin weights load directly.
#pragma once

#include <torch/nn/module.h>

#include <map>
#include <string>
#include <vector>

#include "csrc/models/qblocks.h"
#include "csrc/models/swin.h"

namespace mnq {
namespace models {

class QuantWindowAttentionImpl : public QuantAttentionImpl {
 public:
  QuantWindowAttentionImpl(int64_t dim, int64_t num_heads, int64_t bits, const std::string& softmax_method,
                           const SwinWindow& window);
  at::Tensor relative_position_bias_table;
  nn::QuantAct qact_bias{nullptr};

 protected:
  nn::ScaledTensor quantize_scores(const at::Tensor& scores, const at::Tensor& scale) override;

 private:
  SwinWindow window_;
};

class QuantSwinBlockImpl : public QuantBlockImpl {
 public:
  QuantSwinBlockImpl(const QuantBlockSpec& spec, const SwinWindow& window);
  nn::ScaledTensor forward(const at::Tensor& x, const at::Tensor& scale) override;  // [B, H, W, C]

 private:
  SwinWindow window_;
};

class QuantPatchMergingImpl : public torch::nn::Module {
 public:
  QuantPatchMergingImpl(int64_t dim, int64_t bits, const std::string& norm_method, int64_t residual_bits, double eps);
  nn::ScaledTensor forward(const at::Tensor& x, const at::Tensor& scale);  // [B, H, W, C] -> [B, H/2, W/2, 2C]
  nn::IntLayerNorm norm{nullptr};
  nn::QuantAct qact_norm{nullptr}, qact_out{nullptr};
  nn::QuantLinear reduction{nullptr};

 private:
  double eps_;
};
TORCH_MODULE(QuantPatchMerging);

class QuantSwinTransformerImpl : public torch::nn::Module {
 public:
  // Throws (naming the key) when the plan leaves a layer without a method or names a layer the model lacks.
  QuantSwinTransformerImpl(const SwinConfig& config, const QuantOptions& options);
  at::Tensor forward(const at::Tensor& x);
  // The method each mixable layer runs, read back from the modules themselves.
  std::map<std::string, std::string> layer_methods() const;
  void freeze_alpha();
  const SwinConfig& config() const { return config_; }

  static constexpr double kEps = 1e-5;  // timm's Swin LayerNorm eps (nn.LayerNorm's default)

 private:
  struct Stage {
    QuantPatchMerging downsample{nullptr};
    std::vector<QuantBlock> blocks;
  };
  SwinConfig config_;
  nn::QuantAct qact_input{nullptr}, qact_embed{nullptr}, qact_patch_norm{nullptr}, qact_norm{nullptr},
      qact_pool{nullptr};
  nn::QuantConv2d patch_proj{nullptr};                  // patch_embed.proj
  nn::IntLayerNorm patch_norm{nullptr}, norm{nullptr};  // patch_embed.norm, norm
  std::vector<Stage> stages_;
  nn::QuantLinear head_fc{nullptr};  // head.fc
};
TORCH_MODULE(QuantSwinTransformer);

}  // namespace models
}  // namespace mnq
