// Full-precision ViT / DeiT, the computation of timm's VisionTransformer (and VisionTransformerDistilled).
#include "csrc/models/vit.h"

#include <ATen/ATen.h>

#include <cmath>

#include "csrc/models/drop_path.h"

namespace mnq {
namespace models {

using torch::nn::LayerNormOptions;

void init_embeddings(at::Tensor& cls_token, at::Tensor& pos_embed, at::Tensor& dist_token) {
  at::NoGradGuard no_grad;
  cls_token.normal_(0.0, 1e-6);
  // timm's trunc_normal_(std=.02) truncates at ±2 (absolute), far beyond 2σ of 0.02: clamp is equivalent
  // up to a negligible tail.
  pos_embed.normal_(0.0, 0.02).clamp_(-2.0, 2.0);
  if (dist_token.defined()) dist_token.normal_(0.0, 0.02).clamp_(-2.0, 2.0);
}

AttentionImpl::AttentionImpl(int64_t dim, int64_t num_heads) : num_heads_(num_heads) {
  qkv = register_module("qkv", torch::nn::Linear(torch::nn::LinearOptions(dim, 3 * dim).bias(true)));
  proj = register_module("proj", torch::nn::Linear(dim, dim));
}

at::Tensor AttentionImpl::forward(const at::Tensor& x) {
  const int64_t B = x.size(0), N = x.size(1), C = x.size(2), hd = C / num_heads_;
  const at::Tensor qkv_ = qkv(x).reshape({B, N, 3, num_heads_, hd}).permute({2, 0, 3, 1, 4});
  const at::Tensor q = qkv_[0] * std::pow(static_cast<double>(hd), -0.5), k = qkv_[1], v = qkv_[2];
  const at::Tensor scores = at::matmul(q, k.transpose(-2, -1));
  const at::Tensor attn = tap_(softmax_name_, scores, at::softmax(scores, -1));
  return proj(at::matmul(attn, v).transpose(1, 2).reshape({B, N, C}));
}

MlpImpl::MlpImpl(int64_t dim, int64_t hidden) {
  fc1 = register_module("fc1", torch::nn::Linear(dim, hidden));
  fc2 = register_module("fc2", torch::nn::Linear(hidden, dim));
}

void AttentionImpl::attach(const TapSlot& tap, const std::string& name) {
  tap_ = tap;
  softmax_name_ = name;
}

at::Tensor MlpImpl::forward(const at::Tensor& x) {
  const at::Tensor h = fc1(x);
  return fc2(tap_(gelu_name_, h, at::gelu(h)));
}

void MlpImpl::attach(const TapSlot& tap, const std::string& name) {
  tap_ = tap;
  gelu_name_ = name;
}

BlockImpl::BlockImpl(int64_t dim, int64_t num_heads, int64_t hidden, double drop_path) : drop_path_(drop_path) {
  norm1 = register_module("norm1", torch::nn::LayerNorm(LayerNormOptions({dim}).eps(1e-6)));
  attn = register_module("attn", Attention(dim, num_heads));
  norm2 = register_module("norm2", torch::nn::LayerNorm(LayerNormOptions({dim}).eps(1e-6)));
  mlp = register_module("mlp", Mlp(dim, hidden));
}

at::Tensor BlockImpl::forward(const at::Tensor& x) {
  const at::Tensor h = x + drop_path(attn(tap_(norm1_name_, x, norm1(x))), drop_path_, is_training());
  return h + drop_path(mlp(tap_(norm2_name_, h, norm2(h))), drop_path_, is_training());
}

void BlockImpl::attach(const TapSlot& tap, const std::string& prefix) {
  tap_ = tap;
  norm1_name_ = prefix + "norm1";
  norm2_name_ = prefix + "norm2";
  attn->attach(tap, prefix + "attn.softmax");
  mlp->attach(tap, prefix + "mlp.gelu");
}

PatchEmbedImpl::PatchEmbedImpl(const ViTConfig& c) {
  proj = register_module(
      "proj", torch::nn::Conv2d(torch::nn::Conv2dOptions(c.in_chans, c.embed_dim, c.patch_size).stride(c.patch_size)));
}

at::Tensor PatchEmbedImpl::forward(const at::Tensor& x) { return proj(x).flatten(2).transpose(1, 2); }

VisionTransformerImpl::VisionTransformerImpl(const ViTConfig& config) : config_(config) {
  config_.validate();
  const int64_t D = config_.embed_dim;
  cls_token = register_parameter("cls_token", at::zeros({1, 1, D}));
  pos_embed = register_parameter("pos_embed", at::zeros({1, config_.num_patches() + config_.num_prefix_tokens(), D}));
  if (config_.distilled) dist_token = register_parameter("dist_token", at::zeros({1, 1, D}));
  init_embeddings(cls_token, pos_embed, dist_token);
  patch_embed = register_module("patch_embed", PatchEmbed(config_));
  blocks = register_module("blocks", torch::nn::ModuleList());
  const std::vector<double> dpr = drop_path_rates(config_.drop_path_rate, config_.depth);
  for (int64_t i = 0; i < config_.depth; ++i) {
    Block blk(D, config_.num_heads, config_.mlp_hidden, dpr[size_t(i)]);
    blk->attach(tap_, "blocks." + std::to_string(i) + ".");
    blocks->push_back(blk);
  }
  norm = register_module("norm", torch::nn::LayerNorm(LayerNormOptions({D}).eps(1e-6)));
  head = register_module("head", torch::nn::Linear(D, config_.num_classes));
  if (config_.distilled) head_dist = register_module("head_dist", torch::nn::Linear(D, config_.num_classes));
}

at::Tensor VisionTransformerImpl::forward_features(const at::Tensor& x) {
  at::Tensor t = patch_embed(x);
  const int64_t B = t.size(0);
  std::vector<at::Tensor> parts = {cls_token.expand({B, -1, -1})};
  if (config_.distilled) parts.push_back(dist_token.expand({B, -1, -1}));
  parts.push_back(t);
  t = at::cat(parts, 1) + pos_embed;
  for (const auto& blk : *blocks) t = blk->as<Block>()->forward(t);
  static const std::string kNorm = "norm";
  return tap_(kNorm, t, norm(t));
}

std::pair<at::Tensor, at::Tensor> VisionTransformerImpl::forward_heads(const at::Tensor& x) {
  TORCH_CHECK(config_.distilled, "forward_heads: '", config_.name, "' has no distillation head");
  const at::Tensor f = forward_features(x);
  return {head(f.select(1, 0)), head_dist(f.select(1, 1))};
}

at::Tensor VisionTransformerImpl::forward(const at::Tensor& x) {
  if (config_.distilled) {
    auto [a, b] = forward_heads(x);
    return (a + b) / 2;
  }
  return head(forward_features(x).select(1, 0));
}

}  // namespace models
}  // namespace mnq
