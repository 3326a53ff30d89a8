// The quantized ViT / DeiT wiring of SPEC §6; see qvit.h for the data flow and the module names.
#include "csrc/models/qvit.h"

#include <ATen/ATen.h>

#include <cmath>

#include "csrc/models/vit.h"

namespace mnq {
namespace models {
namespace {

// Residual quantizers are 16-bit, or 22-bit when they feed an I-BERT LayerNorm (SPEC §4.2, §6).
int64_t residual_bits(const std::string& layernorm_method) { return layernorm_method == "ibert" ? 22 : 16; }

}  // namespace

QuantAttentionImpl::QuantAttentionImpl(int64_t dim, int64_t num_heads, int64_t bits, const std::string& softmax_method)
    : num_heads_(num_heads) {
  qkv = register_module("qkv", nn::QuantLinear(dim, 3 * dim, true, bits));
  qact1 = register_module("qact1", nn::QuantAct(bits));
  qact_attn1 = register_module("qact_attn1", nn::QuantAct(bits));
  softmax = register_module("softmax", nn::IntSoftmax(softmax_method, 16, 4));
  qact2 = register_module("qact2", nn::QuantAct(bits));
  proj = register_module("proj", nn::QuantLinear(dim, dim, true, bits));
  qact3 = register_module("qact3", nn::QuantAct(16));
}

nn::ScaledTensor QuantAttentionImpl::forward(const at::Tensor& x, const at::Tensor& scale) {
  const int64_t B = x.size(0), N = x.size(1), C = x.size(2), hd = C / num_heads_;
  auto [h, s] = qkv(x, scale);
  std::tie(h, s) = qact1(h, s);
  const at::Tensor t = h.reshape({B, N, 3, num_heads_, hd}).permute({2, 0, 3, 1, 4});
  const at::Tensor q = t[0], k = t[1], v = t[2];
  // Scores on S_qkv²·d^-½: the float multiply keeps them exact multiples of that scale (requant recovers q).
  const double d_scale = std::pow(static_cast<double>(hd), -0.5);
  auto [a, sa] = nn::quant_matmul(q, s, k.transpose(-2, -1), s);
  std::tie(a, sa) = qact_attn1(a * d_scale, sa * d_scale);
  std::tie(a, sa) = softmax(a, sa);
  auto [o, so] = nn::quant_matmul(a, sa, v, s);
  std::tie(o, so) = qact2(o.transpose(1, 2).reshape({B, N, C}), so);
  std::tie(o, so) = proj(o, so);
  return qact3(o, so);
}

QuantMlpImpl::QuantMlpImpl(int64_t dim, int64_t hidden, int64_t bits, const std::string& gelu_method) {
  fc1 = register_module("fc1", nn::QuantLinear(dim, hidden, true, bits));
  // I-BERT's i-GELU is conditioned for accumulator-precision input (SPEC §3.1): no quantizer before it.
  if (gelu_method != "ibert") qact_gelu = register_module("qact_gelu", nn::QuantAct(bits));
  gelu = register_module("gelu", nn::IntGELU(gelu_method, 8));
  qact1 = register_module("qact1", nn::QuantAct(bits));
  fc2 = register_module("fc2", nn::QuantLinear(hidden, dim, true, bits));
  qact2 = register_module("qact2", nn::QuantAct(16));
}

nn::ScaledTensor QuantMlpImpl::forward(const at::Tensor& x, const at::Tensor& scale) {
  auto [h, s] = fc1(x, scale);
  if (qact_gelu) std::tie(h, s) = qact_gelu(h, s);
  std::tie(h, s) = gelu(h, s);
  std::tie(h, s) = qact1(h, s);  // s undefined after the float (fqvit) GELU: qact1 quantizes afresh
  std::tie(h, s) = fc2(h, s);
  return qact2(h, s);
}

QuantBlockImpl::QuantBlockImpl(const QuantBlockSpec& p) {
  norm1 = register_module("norm1", nn::IntLayerNorm(p.dim, p.norm1, 1e-6, p.bits));
  qact1 = register_module("qact1", nn::QuantAct(p.bits));
  attn = register_module("attn", QuantAttention(p.dim, p.num_heads, p.bits, p.softmax));
  qact2 = register_module("qact2", nn::QuantAct(p.attn_residual_bits));
  norm2 = register_module("norm2", nn::IntLayerNorm(p.dim, p.norm2, 1e-6, p.bits));
  qact3 = register_module("qact3", nn::QuantAct(p.bits));
  mlp = register_module("mlp", QuantMlp(p.dim, p.hidden, p.bits, p.gelu));
  qact4 = register_module("qact4", nn::QuantAct(p.mlp_residual_bits));
}

nn::ScaledTensor QuantBlockImpl::forward(const at::Tensor& x, const at::Tensor& scale) {
  auto [h, s] = norm1(x, scale, qact1->scale());
  std::tie(h, s) = qact1(h, s);
  std::tie(h, s) = attn(h, s);
  auto [x2, s2] = qact2(h, s, x, scale);
  std::tie(h, s) = norm2(x2, s2, qact3->scale());
  std::tie(h, s) = qact3(h, s);
  std::tie(h, s) = mlp(h, s);
  return qact4(h, s, x2, s2);
}

QuantPatchEmbedImpl::QuantPatchEmbedImpl(const ViTConfig& c, int64_t bits) {
  proj = register_module(
      "proj",
      nn::QuantConv2d(torch::nn::Conv2dOptions(c.in_chans, c.embed_dim, c.patch_size).stride(c.patch_size), bits));
  qact = register_module("qact", nn::QuantAct(16));
}

nn::ScaledTensor QuantPatchEmbedImpl::forward(const at::Tensor& x, const at::Tensor& scale) {
  auto [h, s] = proj(x, scale);
  // Tokens first, so the per-output-channel conv scale lies along the last dim, where requant expects it.
  return qact(h.flatten(2).transpose(1, 2), s);
}

QuantVisionTransformerImpl::QuantVisionTransformerImpl(const ViTConfig& config, const QuantOptions& options)
    : config_(config), bits_(nn::check_bits(options.bits)) {
  config_.validate();
  const auto methods = options.plan.resolve(vit_layer_names(config_));
  const int64_t D = config_.embed_dim, b = bits_;
  cls_token = register_parameter("cls_token", at::zeros({1, 1, D}));
  pos_embed = register_parameter("pos_embed", at::zeros({1, config_.num_patches() + config_.num_prefix_tokens(), D}));
  if (config_.distilled) dist_token = register_parameter("dist_token", at::zeros({1, 1, D}));
  init_embeddings(cls_token, pos_embed, dist_token);
  qact_input = register_module("qact_input", nn::QuantAct(b));
  patch_embed = register_module("patch_embed", QuantPatchEmbed(config_, b));
  qact_pos = register_module("qact_pos", nn::QuantAct(residual_bits(methods.at("blocks.0.norm1"))));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < config_.depth; ++i) {
    const std::string p = "blocks." + std::to_string(i) + ".";
    const std::string next_norm = i + 1 < config_.depth ? "blocks." + std::to_string(i + 1) + ".norm1" : "norm";
    blocks->push_back(
        QuantBlock(QuantBlockSpec{D, config_.num_heads, config_.mlp_hidden, b, methods.at(p + "norm1"),
                                  methods.at(p + "attn.softmax"), methods.at(p + "norm2"), methods.at(p + "mlp.gelu"),
                                  residual_bits(methods.at(p + "norm2")), residual_bits(methods.at(next_norm))}));
  }
  norm = register_module("norm", nn::IntLayerNorm(D, methods.at("norm"), 1e-6, b));
  qact2 = register_module("qact2", nn::QuantAct(b));
  head = register_module("head", nn::QuantLinear(D, config_.num_classes, true, b));
  if (config_.distilled) head_dist = register_module("head_dist", nn::QuantLinear(D, config_.num_classes, true, b));
}

nn::ScaledTensor QuantVisionTransformerImpl::forward_features(const at::Tensor& x) {
  auto [h, s] = qact_input(x);
  std::tie(h, s) = patch_embed(h, s);
  const int64_t B = h.size(0);
  std::vector<at::Tensor> parts = {cls_token.expand({B, -1, -1})};
  if (config_.distilled) parts.push_back(dist_token.expand({B, -1, -1}));
  parts.push_back(h);
  // The float class/distillation tokens and position embedding join the 16-bit patch tokens here, so the sum
  // is quantized afresh rather than requantized.
  std::tie(h, s) = qact_pos(at::cat(parts, 1) + pos_embed);
  for (const auto& blk : *blocks) std::tie(h, s) = blk->as<QuantBlock>()->forward(h, s);
  std::tie(h, s) = norm(h, s, qact2->scale());
  return qact2(h, s);
}

std::pair<at::Tensor, at::Tensor> QuantVisionTransformerImpl::forward_heads(const at::Tensor& x) {
  TORCH_CHECK(config_.distilled, "forward_heads: '", config_.name, "' has no distillation head");
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
    const auto* blk = blocks->ptr(i)->as<QuantBlock>();
    const std::string p = "blocks." + std::to_string(i) + ".";
    out[p + "norm1"] = blk->norm1->method();
    out[p + "attn.softmax"] = blk->attn->softmax->method();
    out[p + "norm2"] = blk->norm2->method();
    out[p + "mlp.gelu"] = blk->mlp->gelu->method();
  }
  out["norm"] = norm->method();
  return out;
}

void QuantVisionTransformerImpl::freeze_alpha() {
  for (const auto& m : modules()) {
    if (auto* ptf = m->as<nn::PtfActImpl>()) ptf->freeze_alpha();
  }
}

}  // namespace models
}  // namespace mnq
