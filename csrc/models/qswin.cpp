// The quantized Swin wiring; see qswin.h for the data flow and python/mnq/models/swin.py for its twin.
#include "csrc/models/qswin.h"

#include <ATen/ATen.h>

#include <memory>

#include "csrc/models/drop_path.h"

namespace mnq {
namespace models {
namespace {

constexpr int64_t kSwinShiftmaxBits = 8;  // I-ViT's Swin: Shiftmax output on 8 bits (16 in ViT/DeiT)

}  // namespace

QuantWindowAttentionImpl::QuantWindowAttentionImpl(int64_t dim, int64_t num_heads, int64_t bits,
                                                   const std::string& softmax_method, const SwinWindow& window)
    : QuantAttentionImpl(dim, num_heads, bits, softmax_method, kSwinShiftmaxBits), window_(window) {
  const int64_t w = window_.window;
  relative_position_bias_table =
      register_parameter("relative_position_bias_table", at::zeros({(2 * w - 1) * (2 * w - 1), num_heads}));
  {
    at::NoGradGuard no_grad;
    relative_position_bias_table.normal_(0.0, 0.02).clamp_(-2.0, 2.0);
  }
  qact_bias = register_module("qact_bias", nn::QuantAct(16));
}

nn::ScaledTensor QuantWindowAttentionImpl::quantize_scores(const at::Tensor& scores, const at::Tensor& scale) {
  const int64_t n = window_.relative_position_index.size(0);
  const at::Tensor index = window_.index_on(relative_position_bias_table.device()).view(-1);
  const at::Tensor bias = relative_position_bias_table.index({index}).view({n, n, -1});
  auto [qb, s_bias] = qact_bias(bias.permute({2, 0, 1}).unsqueeze(0));
  auto [a, s] = qact_scores(scores, scale, qb.expand_as(scores), s_bias);
  if (window_.mask.defined()) {
    const int64_t nw = window_.mask.size(0);
    const at::Tensor step = s.to(a.device(), a.scalar_type());
    const at::Tensor codes = at::round(window_.mask_on(a.device()) / step) * step;  // −100 as whole codes
    a = (a.view({-1, nw, num_heads_, n, n}) + codes.unsqueeze(1).unsqueeze(0)).view({-1, num_heads_, n, n});
  }
  return {a, s};
}

QuantSwinBlockImpl::QuantSwinBlockImpl(const QuantBlockSpec& spec, const SwinWindow& window)
    : QuantBlockImpl(spec,
                     QuantAttention(std::shared_ptr<QuantAttentionImpl>(std::make_shared<QuantWindowAttentionImpl>(
                         spec.dim, spec.num_heads, spec.bits, spec.softmax, window)))),
      window_(window) {}

nn::ScaledTensor QuantSwinBlockImpl::forward(const at::Tensor& x, const at::Tensor& scale) {
  const int64_t H = x.size(1), W = x.size(2), sh = window_.shift, w = window_.window;
  auto [h, s] = norm_then_act(norm1, qact_norm1, eps_, x, scale);
  if (sh > 0) h = at::roll(h, {-sh, -sh}, {1, 2});
  std::tie(h, s) = attn(window_partition(h, w), s);
  h = window_reverse(h, w, H, W);
  if (sh > 0) h = at::roll(h, {sh, sh}, {1, 2});
  auto [x2, s2] = qact_res1(drop(h), s, x, scale);
  return mlp_branch(x2, s2);
}

QuantPatchMergingImpl::QuantPatchMergingImpl(int64_t dim, int64_t bits, const std::string& norm_method,
                                             int64_t residual_bits, double eps)
    : eps_(eps) {
  norm = register_module("norm", nn::IntLayerNorm(4 * dim, norm_method, eps, bits));
  qact_norm = register_module("qact_norm", nn::QuantAct(bits));
  reduction = register_module("reduction", nn::QuantLinear(4 * dim, 2 * dim, false, bits));
  qact_out = register_module("qact_out", nn::QuantAct(residual_bits));
}

nn::ScaledTensor QuantPatchMergingImpl::forward(const at::Tensor& x, const at::Tensor& scale) {
  // merging regroups values: the same per-tensor scale
  auto [h, s] = norm_then_act(norm, qact_norm, eps_, patch_merge(x), scale);
  std::tie(h, s) = reduction(h, s);
  return qact_out(h, s);
}

QuantSwinTransformerImpl::QuantSwinTransformerImpl(const SwinConfig& config, const QuantOptions& options)
    : config_(config) {
  config_.validate();
  const int64_t b = nn::check_bits(options.bits);
  const auto layer_names = swin_layer_names(config_);
  const auto methods = options.plan.resolve(layer_names);
  // LayerNorms in forward order: each residual-stream quantizer feeds the next one of these.
  std::vector<std::string> norms;
  for (const auto& n : layer_names) {
    if (layer_op_type(n) == OpType::kLayerNorm) norms.push_back(n);
  }
  size_t next = 0;
  auto feeds = [&](size_t i) { return residual_bits(methods.at(norms.at(i))); };

  // Registration order is python's: qact_input, patch_embed.{proj, norm}, qact_embed, qact_patch_norm, layers,
  // norm, qact_norm, qact_pool, head.fc.
  qact_input = register_module("qact_input", nn::QuantAct(b));
  auto pe = named_scope(*this, "patch_embed");
  patch_proj = pe->register_module(
      "proj",
      nn::QuantConv2d(
          torch::nn::Conv2dOptions(config_.in_chans, config_.embed_dim, config_.patch_size).stride(config_.patch_size),
          b));
  patch_norm = pe->register_module("norm", nn::IntLayerNorm(config_.embed_dim, "ivit", kEps, b));
  qact_embed = register_module("qact_embed", nn::QuantAct(16));
  qact_patch_norm = register_module("qact_patch_norm", nn::QuantAct(feeds(next)));

  auto layers = register_module("layers", torch::nn::ModuleList());
  int64_t res = config_.img_size / config_.patch_size, dim = config_.embed_dim;
  int64_t total_blocks = 0, block = 0;
  for (int64_t d : config_.depths) total_blocks += d;
  const std::vector<double> dpr = drop_path_rates(config_.drop_path_rate, total_blocks);
  for (size_t s = 0; s < config_.depths.size(); ++s) {
    auto stage_scope = std::make_shared<torch::nn::Module>();
    layers->push_back(stage_scope);
    const std::string l = "layers." + std::to_string(s) + ".";
    Stage stage;
    if (s > 0) {
      const std::string& norm_method = methods.at(norms.at(next++));
      stage.downsample =
          stage_scope->register_module("downsample", QuantPatchMerging(dim, b, norm_method, feeds(next), kEps));
      res /= 2;
      dim *= 2;
    }
    auto blocks = stage_scope->register_module("blocks", torch::nn::ModuleList());
    for (int64_t i = 0; i < config_.depths[s]; ++i) {
      const std::string p = l + "blocks." + std::to_string(i) + ".";
      QuantBlockSpec spec{dim,
                          config_.num_heads[s],
                          4 * dim,
                          b,
                          methods.at(p + "norm1"),
                          methods.at(p + "attn.softmax"),
                          methods.at(p + "norm2"),
                          methods.at(p + "mlp.gelu"),
                          feeds(next + 1),
                          feeds(next + 2)};
      spec.eps = kEps;
      spec.drop_path = dpr[size_t(block++)];
      next += 2;
      const SwinWindow window(res, config_.window_size, i % 2 == 0 ? 0 : config_.window_size / 2);
      stage.blocks.push_back(
          QuantBlock(std::shared_ptr<QuantBlockImpl>(std::make_shared<QuantSwinBlockImpl>(spec, window))));
      blocks->push_back(stage.blocks.back());
    }
    stages_.push_back(stage);
  }
  norm = register_module("norm", nn::IntLayerNorm(dim, methods.at("norm"), kEps, b));
  qact_norm = register_module("qact_norm", nn::QuantAct(b));
  qact_pool = register_module("qact_pool", nn::QuantAct(b));
  head_fc = named_scope(*this, "head")->register_module("fc", nn::QuantLinear(dim, config_.num_classes, true, b));
}

at::Tensor QuantSwinTransformerImpl::forward(const at::Tensor& x) {
  auto [h, s] = qact_input(x);
  std::tie(h, s) = patch_proj(h, s);
  std::tie(h, s) = qact_embed(h.permute({0, 2, 3, 1}), s);  // NHWC: the per-channel conv scale on the last dim
  std::tie(h, s) = patch_norm(h, s);
  std::tie(h, s) = qact_patch_norm(h, s);
  for (auto& stage : stages_) {
    if (stage.downsample) std::tie(h, s) = stage.downsample(h, s);
    for (auto& blk : stage.blocks) std::tie(h, s) = blk(h, s);
  }
  std::tie(h, s) = norm_then_act(norm, qact_norm, kEps, h, s);
  // The token mean Σq·S/(H·W) is requantized from the exact sum of the codes on the scale S/(H·W) (what the
  // integer engine, csrc/deploy, computes): the float32 sum of at most 2^24/2^(b−1) codes recovers exactly.
  const double tokens = static_cast<double>(h.size(1) * h.size(2));
  std::tie(h, s) = qact_pool(h.sum({1, 2}) / tokens, s / tokens);
  return head_fc(h, s).first;
}

std::map<std::string, std::string> QuantSwinTransformerImpl::layer_methods() const {
  std::map<std::string, std::string> out;
  for (size_t s = 0; s < stages_.size(); ++s) {
    const std::string l = "layers." + std::to_string(s) + ".";
    if (stages_[s].downsample) out[l + "downsample.norm"] = stages_[s].downsample->norm->method();
    for (size_t i = 0; i < stages_[s].blocks.size(); ++i) {
      add_block_methods(out, l + "blocks." + std::to_string(i) + ".", *stages_[s].blocks[i]);
    }
  }
  out["norm"] = norm->method();
  return out;
}

void QuantSwinTransformerImpl::freeze_alpha() { models::freeze_alpha(*this); }

}  // namespace models
}  // namespace mnq
