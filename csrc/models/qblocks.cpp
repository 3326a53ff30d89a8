// The quantized blocks: the statements of python/mnq/models/blocks.py in the same order (see qblocks.h).
#include "csrc/models/qblocks.h"

#include <ATen/ATen.h>

#include <cmath>
#include <utility>

#include "csrc/models/drop_path.h"

namespace mnq {
namespace models {

int64_t residual_bits(const std::string& norm_method) { return norm_method == "ibert" ? 22 : 16; }

nn::ScaledTensor norm_then_act(nn::IntLayerNorm& norm, nn::QuantAct& act, double eps, const at::Tensor& x,
                               const at::Tensor& scale, int64_t keep_tokens) {
  auto keep = [&](const at::Tensor& t) { return keep_tokens > 0 ? t.slice(1, 0, keep_tokens) : t; };
  if (norm->method() != "fqvit") {
    auto [y, s] = norm(x, scale);
    return act(keep(y), s);
  }
  if (act->is_training() && !act->is_initialized()) {
    // First calibration batch: the PTF LayerNorm quantizes its output on act's scale, which has no range yet.
    // Seed the range from the float LayerNorm so that first output is not rounded on the placeholder scale 1.
    at::NoGradGuard no_grad;
    act->observe(keep(at::layer_norm(x.detach(), {x.size(-1)}, norm->weight.detach(), norm->bias.detach(), eps)));
  }
  auto [y, s] = norm(x, at::Tensor(), act->scale());
  return act(keep(y), s);
}

QuantAttentionImpl::QuantAttentionImpl(int64_t dim, int64_t num_heads, int64_t bits, const std::string& softmax_method,
                                       int64_t softmax_out_bits)
    : num_heads_(num_heads) {
  TORCH_CHECK_VALUE(num_heads > 0 && dim % num_heads == 0, "QuantAttention: dim ", dim,
                    " is not divisible by num_heads ", num_heads);
  qkv = register_module("qkv", nn::QuantLinear(dim, 3 * dim, true, bits));
  qact_qkv = register_module("qact_qkv", nn::QuantAct(bits));
  qact_scores = register_module("qact_scores", nn::QuantAct(bits));
  const int64_t out_bits = softmax_method == "ivit" ? softmax_out_bits : 16;  // fqvit: 4-bit log codes
  softmax = register_module("softmax", nn::IntSoftmax(softmax_method, out_bits, 4));
  qact_av = register_module("qact_av", nn::QuantAct(bits));
  proj = register_module("proj", nn::QuantLinear(dim, dim, true, bits));
  qact_proj = register_module("qact_proj", nn::QuantAct(16));
}

nn::ScaledTensor QuantAttentionImpl::quantize_scores(const at::Tensor& scores, const at::Tensor& scale) {
  return qact_scores(scores, scale);
}

nn::ScaledTensor QuantAttentionImpl::forward(const at::Tensor& x, const at::Tensor& scale) {
  const int64_t B = x.size(0), N = x.size(1), C = x.size(2), hd = C / num_heads_;
  auto [h, s] = qkv(x, scale);
  auto [hq, s_qkv] = qact_qkv(h, s);
  const auto qkv_heads = hq.reshape({B, N, 3, num_heads_, hd}).permute({2, 0, 3, 1, 4}).unbind(0);
  const at::Tensor &q = qkv_heads[0], &k = qkv_heads[1], &v = qkv_heads[2];
  auto [a, sa] = nn::quant_matmul(q, s_qkv, k.transpose(-2, -1), s_qkv);
  // d^-½ multiplies values and scale alike, so the integer codes are unchanged (as in I-ViT)
  const double d_scale = std::pow(static_cast<double>(hd), -0.5);
  std::tie(a, sa) = quantize_scores(a.mul_(d_scale), sa * d_scale);  // in place: the product owns its buffer
  std::tie(a, sa) = softmax(a, sa);
  auto [o, so] = nn::quant_matmul(a, sa, v, s_qkv);
  std::tie(o, so) = qact_av(o.transpose(1, 2).reshape({B, N, C}), so);
  std::tie(o, so) = proj(o, so);
  return qact_proj(o, so);
}

QuantMlpImpl::QuantMlpImpl(int64_t dim, int64_t hidden, int64_t bits, const std::string& gelu_method) {
  fc1 = register_module("fc1", nn::QuantLinear(dim, hidden, true, bits));
  // I-BERT's i-GELU is conditioned for accumulator-precision input (SPEC §3.1): no quantizer before it.
  if (gelu_method != "ibert") qact_fc1 = register_module("qact_fc1", nn::QuantAct(bits));
  gelu = register_module("gelu", nn::IntGELU(gelu_method, 8));
  qact_gelu = register_module("qact_gelu", nn::QuantAct(bits));
  fc2 = register_module("fc2", nn::QuantLinear(hidden, dim, true, bits));
  qact_fc2 = register_module("qact_fc2", nn::QuantAct(16));
}

nn::ScaledTensor QuantMlpImpl::forward(const at::Tensor& x, const at::Tensor& scale) {
  auto [h, s] = fc1(x, scale);
  if (qact_fc1) std::tie(h, s) = qact_fc1(h, s);
  std::tie(h, s) = gelu(h, s);
  std::tie(h, s) = qact_gelu(h, s);  // s undefined after the float (fqvit) GELU: quantized afresh
  std::tie(h, s) = fc2(h, s);
  return qact_fc2(h, s);
}

QuantBlockImpl::QuantBlockImpl(const QuantBlockSpec& p)
    : QuantBlockImpl(p, QuantAttention(p.dim, p.num_heads, p.bits, p.softmax, p.softmax_out_bits)) {}

QuantBlockImpl::QuantBlockImpl(const QuantBlockSpec& p, QuantAttention attention)
    : eps_(p.eps), drop_path_(p.drop_path) {
  norm1 = register_module("norm1", nn::IntLayerNorm(p.dim, p.norm1, p.eps, p.bits));
  qact_norm1 = register_module("qact_norm1", nn::QuantAct(p.bits));
  attn = register_module("attn", std::move(attention));
  qact_res1 = register_module("qact_res1", nn::QuantAct(p.attn_residual_bits));
  norm2 = register_module("norm2", nn::IntLayerNorm(p.dim, p.norm2, p.eps, p.bits));
  qact_norm2 = register_module("qact_norm2", nn::QuantAct(p.bits));
  mlp = register_module("mlp", QuantMlp(p.dim, p.hidden, p.bits, p.gelu));
  qact_res2 = register_module("qact_res2", nn::QuantAct(p.mlp_residual_bits));
}

nn::ScaledTensor QuantBlockImpl::mlp_branch(const at::Tensor& x, const at::Tensor& scale) {
  auto [h, s] = norm_then_act(norm2, qact_norm2, eps_, x, scale);
  std::tie(h, s) = mlp(h, s);
  return qact_res2(drop(h), s, x, scale);
}

at::Tensor QuantBlockImpl::drop(const at::Tensor& branch) const {
  return models::drop_path(branch, drop_path_, is_training());
}

nn::ScaledTensor QuantBlockImpl::forward(const at::Tensor& x, const at::Tensor& scale) {
  auto [h, s] = norm_then_act(norm1, qact_norm1, eps_, x, scale);
  std::tie(h, s) = attn(h, s);
  auto [x2, s2] = qact_res1(drop(h), s, x, scale);
  return mlp_branch(x2, s2);
}

void add_block_methods(std::map<std::string, std::string>& out, const std::string& prefix,
                       const QuantBlockImpl& block) {
  out[prefix + "norm1"] = block.norm1->method();
  out[prefix + "attn.softmax"] = block.attn->softmax->method();
  out[prefix + "norm2"] = block.norm2->method();
  out[prefix + "mlp.gelu"] = block.mlp->gelu->method();
}

void freeze_alpha(const torch::nn::Module& model) {
  for (const auto& m : model.modules()) {
    if (auto* ptf = m->as<nn::PtfActImpl>()) ptf->freeze_alpha();
  }
}

}  // namespace models
}  // namespace mnq
