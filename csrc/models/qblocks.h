// Quantized transformer blocks in the I-ViT layout (SPEC §6): the C++ twins of python/mnq/models/blocks.py,
// with the same module names, registration order and statements, so a state_dict moves between the two and the
// same weights, plan, bits and calibration batches give bit-identical outputs.
//
// Every tensor between modules is a pair (x, scale): x = q·scale (scale per tensor, or per channel of the last
// dim after a LayerNorm or a linear layer). Per block (b = the W/A bit-width setting):
//   norm1 → qact_norm1(b) → attn[ qkv → qact_qkv(b) → q@kᵀ·d^-½ → qact_scores(b) → softmax → attn@v
//   → qact_av(b) → proj → qact_proj(16) ] → qact_res1(16, + residual) → norm2 → qact_norm2(b)
//   → mlp[ fc1 → qact_fc1(b) (absent when GELU is ibert: i-GELU reads the fc1 accumulator) → gelu
//   → qact_gelu(b) → fc2 → qact_fc2(16) ] → qact_res2(16, + residual).
// A residual quantizer feeding an ibert LayerNorm has 22 bits (SPEC §4.2). An fqvit LayerNorm reads the stream
// through its own PtfAct(b) and quantizes its output on the scale of the QuantAct after it (norm_then_act).
// The softmax output goes to attn@v without a quantizer: it is already integer on a power-of-two scale.
#pragma once

#include <torch/nn/module.h>

#include <map>
#include <string>

#include "csrc/models/plan.h"
#include "csrc/nn/layers.h"
#include "csrc/nn/nonlinear.h"
#include "csrc/nn/quant.h"

namespace mnq {
namespace models {

struct QuantOptions {
  int64_t bits = 8;  // W/A bit-width setting b (SPEC §6), 2..16
  Plan plan = Plan::uniform("ivit");
};

// Width of the QuantAct producing the residual stream read by a LayerNorm using `norm_method`: 22 for ibert
// (its f = floor(2^31/std) keeps log2(2^31/std) bits, SPEC §4.2), else 16.
int64_t residual_bits(const std::string& norm_method);

// LayerNorm followed by its output QuantAct (python's norm_then_act). An fqvit LayerNorm quantizes its output
// directly on act's scale; on the first calibration batch that scale has no range yet, so act's range is seeded
// from the float LayerNorm (eps: the LayerNorm's) first. keep_tokens > 0 keeps only the first keep_tokens tokens
// (dim 1) between the two: ViT's final norm normalises every token but feeds the head only the prefix tokens.
nn::ScaledTensor norm_then_act(nn::IntLayerNorm& norm, nn::QuantAct& act, double eps, const at::Tensor& x,
                               const at::Tensor& scale, int64_t keep_tokens = 0);

class QuantAttentionImpl : public torch::nn::Module {
 public:
  // softmax_out_bits: the ivit Shiftmax output width (16 in ViT, 8 in Swin); ibert always 16, fqvit 4-bit log.
  QuantAttentionImpl(int64_t dim, int64_t num_heads, int64_t bits, const std::string& softmax_method,
                     int64_t softmax_out_bits = 16);
  ~QuantAttentionImpl() override = default;
  nn::ScaledTensor forward(const at::Tensor& x, const at::Tensor& scale);  // [B, N, C] -> [B, N, C] on 16 bits
  nn::QuantLinear qkv{nullptr}, proj{nullptr};
  nn::QuantAct qact_qkv{nullptr}, qact_scores{nullptr}, qact_av{nullptr}, qact_proj{nullptr};
  nn::IntSoftmax softmax{nullptr};

 protected:
  // The scores quantizer; Swin's window attention also adds its relative-position bias and shift mask here.
  virtual nn::ScaledTensor quantize_scores(const at::Tensor& scores, const at::Tensor& scale);
  int64_t num_heads_;
};
TORCH_MODULE(QuantAttention);

class QuantMlpImpl : public torch::nn::Module {
 public:
  QuantMlpImpl(int64_t dim, int64_t hidden, int64_t bits, const std::string& gelu_method);
  nn::ScaledTensor forward(const at::Tensor& x, const at::Tensor& scale);
  nn::QuantLinear fc1{nullptr}, fc2{nullptr};
  nn::QuantAct qact_fc1{nullptr}, qact_gelu{nullptr}, qact_fc2{nullptr};
  nn::IntGELU gelu{nullptr};
};
TORCH_MODULE(QuantMlp);

// What one block needs from the model: its methods and the widths of its two residual quantizers.
struct QuantBlockSpec {
  int64_t dim, num_heads, hidden, bits;
  std::string norm1, softmax, norm2, gelu;
  int64_t attn_residual_bits, mlp_residual_bits;  // residual_bits() of the LayerNorm each feeds
  double eps = 1e-6;                              // LayerNorm eps: ViT 1e-6, Swin 1e-5 (timm's)
  int64_t softmax_out_bits = 16;                  // ivit Shiftmax output: ViT 16, Swin 8
  double drop_path = 0;                           // stochastic-depth rate of both branches (drop_path.h)
};

// Pre-norm block; both residual adds are fused into the QuantAct ending each branch. In training, drop-path
// scales each branch's output per sample before that QuantAct, which re-rounds it to the branch's codes
// (round(x/S) of the fake-quant path), as I-ViT's blocks do. The attention is a
// QuantAttention (ViT) or set by the subclass (Swin's window attention) through the protected constructor.
class QuantBlockImpl : public torch::nn::Module {
 public:
  explicit QuantBlockImpl(const QuantBlockSpec& spec);
  ~QuantBlockImpl() override = default;
  virtual nn::ScaledTensor forward(const at::Tensor& x, const at::Tensor& scale);
  nn::IntLayerNorm norm1{nullptr}, norm2{nullptr};
  nn::QuantAct qact_norm1{nullptr}, qact_res1{nullptr}, qact_norm2{nullptr}, qact_res2{nullptr};
  QuantAttention attn{nullptr};
  QuantMlp mlp{nullptr};

 protected:
  QuantBlockImpl(const QuantBlockSpec& spec, QuantAttention attention);
  // The MLP half (from qact_res1's output x, scale on): norm2 → … → qact_res2.
  nn::ScaledTensor mlp_branch(const at::Tensor& x, const at::Tensor& scale);
  // The branch output after stochastic depth (unchanged in eval).
  at::Tensor drop(const at::Tensor& branch) const;
  double eps_;
  double drop_path_;
};
TORCH_MODULE(QuantBlock);

// What QuantVisionTransformer and QuantSwinTransformer share:
// The methods of a block's mixable layers, read back from its modules, as out[prefix + "norm1"],
// "attn.softmax", "norm2" and "mlp.gelu" (prefix: the block's module path and a dot, e.g. "blocks.3.").
void add_block_methods(std::map<std::string, std::string>& out, const std::string& prefix,
                       const QuantBlockImpl& block);
// Ends the α search of every PtfAct under `model` (after calibration, before QAT), as mnq.nn.PtfAct.freeze_alpha.
void freeze_alpha(const torch::nn::Module& model);

}  // namespace models
}  // namespace mnq
