// The quantized ViT / DeiT wiring of SPEC §6; see qvit.h for the data flow and python/mnq/models/vit.py for
// its twin.
#include "csrc/models/qvit.h"

#include <ATen/ATen.h>

#include <memory>
#include <vector>

#include "csrc/models/drop_path.h"
#include "csrc/models/vit.h"
#include "csrc/ops.h"

namespace mnq {
namespace models {

QuantVisionTransformerImpl::QuantVisionTransformerImpl(const ViTConfig& config, const QuantOptions& options)
    : config_(config), bits_(nn::check_bits(options.bits)) {
  config_.validate();
  const auto methods = options.plan.resolve(vit_layer_names(config_));
  const int64_t D = config_.embed_dim, b = bits_;
  // Registration order is python's (cls_token, qact_input, patch_embed, qact_embed, dist_token, pos_embed, …),
  // so both state_dicts list their keys in the same order.
  cls_token = register_parameter("cls_token", at::zeros({1, 1, D}));
  qact_input = register_module("qact_input", nn::QuantAct(b));
  auto patch_embed = register_module("patch_embed", std::make_shared<torch::nn::Module>());
  patch_proj = patch_embed->register_module(
      "proj",
      nn::QuantConv2d(torch::nn::Conv2dOptions(config_.in_chans, D, config_.patch_size).stride(config_.patch_size), b));
  qact_embed = register_module("qact_embed", nn::QuantAct(16));
  if (config_.distilled) dist_token = register_parameter("dist_token", at::zeros({1, 1, D}));
  pos_embed = register_parameter("pos_embed", at::zeros({1, config_.num_patches() + config_.num_prefix_tokens(), D}));
  init_embeddings(cls_token, pos_embed, dist_token);
  qact_pos = register_module("qact_pos", nn::QuantAct(16));
  qact_pos_add = register_module("qact_pos_add", nn::QuantAct(residual_bits(methods.at("blocks.0.norm1"))));
  blocks = register_module("blocks", torch::nn::ModuleList());
  const std::vector<double> dpr = drop_path_rates(config_.drop_path_rate, config_.depth);
  for (int64_t i = 0; i < config_.depth; ++i) {
    const std::string p = "blocks." + std::to_string(i) + ".";
    const std::string next_norm = i + 1 < config_.depth ? "blocks." + std::to_string(i + 1) + ".norm1" : "norm";
    QuantBlockSpec spec{D,
                        config_.num_heads,
                        config_.mlp_hidden,
                        b,
                        methods.at(p + "norm1"),
                        methods.at(p + "attn.softmax"),
                        methods.at(p + "norm2"),
                        methods.at(p + "mlp.gelu"),
                        residual_bits(methods.at(p + "norm2")),
                        residual_bits(methods.at(next_norm))};
    spec.eps = kEps;
    spec.drop_path = dpr[size_t(i)];
    blocks->push_back(QuantBlock(spec));
  }
  norm = register_module("norm", nn::IntLayerNorm(D, methods.at("norm"), kEps, b));
  qact_norm = register_module("qact_norm", nn::QuantAct(b));
  head = register_module("head", nn::QuantLinear(D, config_.num_classes, true, b));
  if (config_.distilled) head_dist = register_module("head_dist", nn::QuantLinear(D, config_.num_classes, true, b));
}

nn::ScaledTensor QuantVisionTransformerImpl::embed(const at::Tensor& x) {
  auto [h, s] = qact_input(x);
  std::tie(h, s) = patch_proj(h, s);
  h = h.flatten(2).transpose(1, 2);  // [B, N, C], the per-channel conv scale on the last dim
  const int64_t B = h.size(0);
  std::vector<at::Tensor> parts = {cls_token.expand({B, -1, -1})};
  if (config_.distilled) parts.push_back(dist_token.expand({B, -1, -1}));
  const at::Tensor prefix = at::cat(parts, 1);
  // qact_embed quantizes the joined sequence: one range over all of it (observed as one QuantAct does), the
  // class/dist tokens (float parameters) quantized, the patch tokens (codes on the conv's per-channel scale)
  // requantized by the dyadic requant of their codes — what the integer engine (csrc/deploy) computes — rather
  // than re-rounded from their float32 values, whose rounding could move a code by one.
  if (qact_embed->is_training()) {
    qact_embed->observe(at::cat({prefix, h}, 1));
  } else {
    TORCH_CHECK(qact_embed->is_initialized(),
                "QuantAct: used in eval mode before any training/calibration batch set its range");
  }
  const at::Tensor& s_embed = qact_embed->scale();
  const int64_t b_embed = qact_embed->bits();
  h = at::cat({ops::quantize_qat(prefix, s_embed, b_embed),
               ops::requant_qat(h, s.detach().to(at::kDouble), s_embed, b_embed, std::nullopt, std::nullopt)},
              1);
  s = s_embed.clone();
  auto [pos, s_pos] = qact_pos(pos_embed);
  return qact_pos_add(h, s, pos.expand_as(h), s_pos);
}

nn::ScaledTensor QuantVisionTransformerImpl::forward_features(const at::Tensor& x) {
  auto [h, s] = embed(x);
  for (const auto& blk : *blocks) std::tie(h, s) = blk->as<QuantBlockImpl>()->forward(h, s);
  return norm_then_act(norm, qact_norm, kEps, h, s, config_.num_prefix_tokens());
}

std::pair<at::Tensor, at::Tensor> QuantVisionTransformerImpl::forward_heads(const at::Tensor& x) {
  TORCH_CHECK_VALUE(config_.distilled, "forward_heads: '", config_.name, "' has no distillation head");
  auto [f, s] = forward_features(x);
  return {head(f.select(1, 0), s).first, head_dist(f.select(1, 1), s).first};
}

at::Tensor QuantVisionTransformerImpl::forward(const at::Tensor& x) {
  if (config_.distilled) {
    auto [a, b] = forward_heads(x);
    return (a + b) / 2;
  }
  auto [f, s] = forward_features(x);
  return head(f.select(1, 0), s).first;
}

std::map<std::string, std::string> QuantVisionTransformerImpl::layer_methods() const {
  std::map<std::string, std::string> out;
  for (size_t i = 0; i < blocks->size(); ++i) {
    const auto* blk = blocks->ptr(i)->as<QuantBlockImpl>();
    add_block_methods(out, "blocks." + std::to_string(i) + ".", *blk);
  }
  out["norm"] = norm->method();
  return out;
}

void QuantVisionTransformerImpl::freeze_alpha() { models::freeze_alpha(*this); }

}  // namespace models
}  // namespace mnq
