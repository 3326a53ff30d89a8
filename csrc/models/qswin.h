// The quantized Swin Transformer (SPEC §6): the ViT block wiring of qvit.h applied to windows, plus
//  - the relative position bias added to the scores before the softmax: scores·d^-½ + bias are quantized afresh
//    by attn.qact_attn1(b) (the float bias leaves the scores' grid), and the shift mask is added after that
//    quantizer as a whole number of its steps (−100 would otherwise set its range);
//  - ivit softmax with 8 output bits (I-ViT's Swin), ibert 16, fqvit 4-bit log codes;
//  - patch merging: layers.{s}.downsample: merge → norm (mixable) → qact1(b) → reduction → qact2(16 / 22);
//  - patch_embed: proj → qact_before_norm(16) → norm (I-ViT I-LayerNorm: not a mixable layer in SPEC §6)
//    → qact(16 / 22); head: norm → qact2(b) → token mean → qact_pool(b) → head.fc.
// Every residual-stream quantizer has 22 bits when the LayerNorm it feeds is ibert, else 16. Parameter names are
// timm's, so FP Swin weights load directly.
#pragma once

#include <torch/nn/module.h>

#include <map>
#include <string>

#include "csrc/models/qvit.h"
#include "csrc/models/swin.h"

namespace mnq {
namespace models {

class QuantWindowAttentionImpl : public torch::nn::Module {
 public:
  QuantWindowAttentionImpl(int64_t dim, int64_t num_heads, int64_t bits, const std::string& softmax_method,
                           const SwinWindow& window);
  nn::ScaledTensor forward(const at::Tensor& windows, const at::Tensor& scale);  // [B·nW, N, C]
  nn::QuantLinear qkv{nullptr}, proj{nullptr};
  nn::QuantAct qact1{nullptr}, qact_attn1{nullptr}, qact2{nullptr}, qact3{nullptr};
  nn::IntSoftmax softmax{nullptr};
  at::Tensor relative_position_bias_table;

 private:
  int64_t num_heads_;
  SwinWindow window_;
};
TORCH_MODULE(QuantWindowAttention);

class QuantSwinBlockImpl : public torch::nn::Module {
 public:
  // methods: norm1, softmax, norm2, gelu; residual bits of qact2 (feeds norm2) and qact4 (feeds the next norm)
  QuantSwinBlockImpl(int64_t dim, int64_t num_heads, int64_t bits, const SwinWindow& window,
                     const std::map<std::string, std::string>& methods, int64_t attn_residual_bits,
                     int64_t mlp_residual_bits);
  nn::ScaledTensor forward(const at::Tensor& x, const at::Tensor& scale);  // [B, H, W, C]
  nn::IntLayerNorm norm1{nullptr}, norm2{nullptr};
  nn::QuantAct qact1{nullptr}, qact2{nullptr}, qact3{nullptr}, qact4{nullptr};
  QuantWindowAttention attn{nullptr};
  QuantMlp mlp{nullptr};

 private:
  SwinWindow window_;
};
TORCH_MODULE(QuantSwinBlock);

class QuantPatchMergingImpl : public torch::nn::Module {
 public:
  QuantPatchMergingImpl(int64_t dim, int64_t bits, const std::string& norm_method, int64_t residual_bits);
  nn::ScaledTensor forward(const at::Tensor& x, const at::Tensor& scale);  // [B, H, W, C] -> [B, H/2, W/2, 2C]
  nn::IntLayerNorm norm{nullptr};
  nn::QuantAct qact1{nullptr}, qact2{nullptr};
  nn::QuantLinear reduction{nullptr};
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

 private:
  struct Stage {
    QuantPatchMerging downsample{nullptr};
    std::vector<QuantSwinBlock> blocks;
  };
  SwinConfig config_;
  nn::QuantAct qact_input{nullptr}, pe_qact_before_norm{nullptr}, pe_qact{nullptr}, qact2{nullptr}, qact_pool{nullptr};
  nn::QuantConv2d pe_proj{nullptr};
  nn::IntLayerNorm pe_norm{nullptr}, norm{nullptr};
  std::vector<Stage> stages_;
  nn::QuantLinear head_fc{nullptr};
};
TORCH_MODULE(QuantSwinTransformer);

}  // namespace models
}  // namespace mnq
