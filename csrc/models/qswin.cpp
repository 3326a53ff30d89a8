// The quantized Swin wiring; see qswin.h for the data flow and the module names.
#include "csrc/models/qswin.h"

#include <ATen/ATen.h>

#include <cmath>
#include <memory>

namespace mnq {
namespace models {
namespace {

int64_t residual_bits(const std::string& layernorm_method) { return layernorm_method == "ibert" ? 22 : 16; }

std::shared_ptr<torch::nn::Module> scope(torch::nn::Module& parent, const std::string& name) {
  return parent.register_module(name, std::make_shared<torch::nn::Module>());
}

// Softmax output bits in Swin (SPEC §6): I-ViT's Shiftmax keeps 8 there, I-BERT's 16.
int64_t swin_softmax_bits(const std::string& method) { return method == "ivit" ? 8 : 16; }

}  // namespace

QuantWindowAttentionImpl::QuantWindowAttentionImpl(int64_t dim, int64_t num_heads, int64_t bits,
                                                   const std::string& softmax_method, const SwinWindow& window)
    : num_heads_(num_heads), window_(window) {
  const int64_t w = window_.window;
  relative_position_bias_table =
      register_parameter("relative_position_bias_table", at::zeros({(2 * w - 1) * (2 * w - 1), num_heads}));
  {
    at::NoGradGuard no_grad;
    relative_position_bias_table.normal_(0.0, 0.02).clamp_(-2.0, 2.0);
  }
  qkv = register_module("qkv", nn::QuantLinear(dim, 3 * dim, true, bits));
  qact1 = register_module("qact1", nn::QuantAct(bits));
  qact_attn1 = register_module("qact_attn1", nn::QuantAct(bits));
  softmax = register_module("softmax", nn::IntSoftmax(softmax_method, swin_softmax_bits(softmax_method), 4));
  qact2 = register_module("qact2", nn::QuantAct(bits));
  proj = register_module("proj", nn::QuantLinear(dim, dim, true, bits));
  qact3 = register_module("qact3", nn::QuantAct(16));
}

nn::ScaledTensor QuantWindowAttentionImpl::forward(const at::Tensor& x, const at::Tensor& scale) {
  const int64_t Bw = x.size(0), N = x.size(1), C = x.size(2), hd = C / num_heads_;
  auto [h, s] = qkv(x, scale);
  std::tie(h, s) = qact1(h, s);
  const at::Tensor t = h.reshape({Bw, N, 3, num_heads_, hd}).permute({2, 0, 3, 1, 4});
  const at::Tensor q = t[0], k = t[1], v = t[2];
  const double d_scale = std::pow(static_cast<double>(hd), -0.5);
  const at::Tensor bias = relative_position_bias_table.index({window_.relative_position_index.view(-1)})
                              .view({N, N, -1})
                              .permute({2, 0, 1})
                              .unsqueeze(0);
  auto [a, sa] = nn::quant_matmul(q, s, k.transpose(-2, -1), s);
  // The float bias moves the scores off their grid: quantize the sum afresh.
  std::tie(a, sa) = qact_attn1(a * d_scale + bias);
  if (window_.mask.defined()) {
    // −100 as a whole number of quantizer steps, so the softmax still reads exact integer codes
    const double step = sa.item<double>();
    const at::Tensor mask = (at::round(window_.mask.to(at::kDouble) / step) * step).to(a.scalar_type());
    const int64_t nw = mask.size(0);
    a = (a.view({-1, nw, num_heads_, N, N}) + mask.to(a.device()).unsqueeze(1).unsqueeze(0))
            .view({-1, num_heads_, N, N});
  }
  std::tie(a, sa) = softmax(a, sa);
  auto [o, so] = nn::quant_matmul(a, sa, v, s);
  std::tie(o, so) = qact2(o.transpose(1, 2).reshape({Bw, N, C}), so);
  std::tie(o, so) = proj(o, so);
  return qact3(o, so);
}

QuantSwinBlockImpl::QuantSwinBlockImpl(int64_t dim, int64_t num_heads, int64_t bits, const SwinWindow& window,
                                       const std::map<std::string, std::string>& m, int64_t attn_residual_bits,
                                       int64_t mlp_residual_bits)
    : window_(window) {
  norm1 = register_module("norm1", nn::IntLayerNorm(dim, m.at("norm1"), 1e-5, bits));
  qact1 = register_module("qact1", nn::QuantAct(bits));
  attn = register_module("attn", QuantWindowAttention(dim, num_heads, bits, m.at("softmax"), window));
  qact2 = register_module("qact2", nn::QuantAct(attn_residual_bits));
  norm2 = register_module("norm2", nn::IntLayerNorm(dim, m.at("norm2"), 1e-5, bits));
  qact3 = register_module("qact3", nn::QuantAct(bits));
  mlp = register_module("mlp", QuantMlp(dim, 4 * dim, bits, m.at("gelu")));
  qact4 = register_module("qact4", nn::QuantAct(mlp_residual_bits));
}

nn::ScaledTensor QuantSwinBlockImpl::forward(const at::Tensor& x, const at::Tensor& scale) {
  const int64_t H = x.size(1), W = x.size(2), s = window_.shift, w = window_.window;
  auto [h, sh] = norm1(x, scale, qact1->scale());
  std::tie(h, sh) = qact1(h, sh);
  if (s > 0) h = at::roll(h, {-s, -s}, {1, 2});
  std::tie(h, sh) = attn(window_partition(h, w), sh);
  h = window_reverse(h, w, H, W);
  if (s > 0) h = at::roll(h, {s, s}, {1, 2});
  auto [x2, s2] = qact2(h, sh, x, scale);
  std::tie(h, sh) = norm2(x2, s2, qact3->scale());
  std::tie(h, sh) = qact3(h, sh);
  std::tie(h, sh) = mlp(h, sh);
  return qact4(h, sh, x2, s2);
}

QuantPatchMergingImpl::QuantPatchMergingImpl(int64_t dim, int64_t bits, const std::string& norm_method,
                                             int64_t residual_bits) {
  norm = register_module("norm", nn::IntLayerNorm(4 * dim, norm_method, 1e-5, bits));
  qact1 = register_module("qact1", nn::QuantAct(bits));
  reduction = register_module("reduction", nn::QuantLinear(4 * dim, 2 * dim, false, bits));
  qact2 = register_module("qact2", nn::QuantAct(residual_bits));
}

nn::ScaledTensor QuantPatchMergingImpl::forward(const at::Tensor& x, const at::Tensor& scale) {
  auto [h, s] = norm(patch_merge(x), scale, qact1->scale());  // merging regroups values: same per-tensor scale
  std::tie(h, s) = qact1(h, s);
  std::tie(h, s) = reduction(h, s);
  return qact2(h, s);
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

  qact_input = register_module("qact_input", nn::QuantAct(b));
  auto pe = scope(*this, "patch_embed");
  pe_proj = pe->register_module(
      "proj",
      nn::QuantConv2d(
          torch::nn::Conv2dOptions(config_.in_chans, config_.embed_dim, config_.patch_size).stride(config_.patch_size),
          b));
  pe_qact_before_norm = pe->register_module("qact_before_norm", nn::QuantAct(16));
  pe_norm = pe->register_module("norm", nn::IntLayerNorm(config_.embed_dim, "ivit", 1e-5, b));
  pe_qact = pe->register_module("qact", nn::QuantAct(feeds(next)));

  auto layers = register_module("layers", torch::nn::ModuleList());
  int64_t res = config_.img_size / config_.patch_size, dim = config_.embed_dim;
  for (size_t s = 0; s < config_.depths.size(); ++s) {
    auto stage_scope = std::make_shared<torch::nn::Module>();
    layers->push_back(stage_scope);
    const std::string l = "layers." + std::to_string(s) + ".";
    Stage stage;
    if (s > 0) {
      const std::string& norm_method = methods.at(norms.at(next++));
      stage.downsample =
          stage_scope->register_module("downsample", QuantPatchMerging(dim, b, norm_method, feeds(next)));
      res /= 2;
      dim *= 2;
    }
    auto blocks = stage_scope->register_module("blocks", torch::nn::ModuleList());
    for (int64_t i = 0; i < config_.depths[s]; ++i) {
      const std::string p = l + "blocks." + std::to_string(i) + ".";
      std::map<std::string, std::string> m;
      for (const char* k : {"norm1", "norm2"}) m[k] = methods.at(p + k);
      m["softmax"] = methods.at(p + "attn.softmax");
      m["gelu"] = methods.at(p + "mlp.gelu");
      const SwinWindow window(res, config_.window_size, i % 2 == 0 ? 0 : config_.window_size / 2);
      const int64_t attn_bits = feeds(next + 1), mlp_bits = feeds(next + 2);
      next += 2;
      stage.blocks.push_back(QuantSwinBlock(dim, config_.num_heads[s], b, window, m, attn_bits, mlp_bits));
      blocks->push_back(stage.blocks.back());
    }
    stages_.push_back(stage);
  }
  norm = register_module("norm", nn::IntLayerNorm(dim, methods.at("norm"), 1e-5, b));
  qact2 = register_module("qact2", nn::QuantAct(b));
  qact_pool = register_module("qact_pool", nn::QuantAct(b));
  head_fc = scope(*this, "head")->register_module("fc", nn::QuantLinear(dim, config_.num_classes, true, b));
}

at::Tensor QuantSwinTransformerImpl::forward(const at::Tensor& x) {
  auto [h, s] = qact_input(x);
  std::tie(h, s) = pe_proj(h, s);
  std::tie(h, s) = pe_qact_before_norm(h.permute({0, 2, 3, 1}), s);  // NHWC: the channel scale on the last dim
  std::tie(h, s) = pe_norm(h, s);
  std::tie(h, s) = pe_qact(h, s);
  for (auto& stage : stages_) {
    if (stage.downsample) std::tie(h, s) = stage.downsample(h, s);
    for (auto& blk : stage.blocks) std::tie(h, s) = blk(h, s);
  }
  std::tie(h, s) = norm(h, s, qact2->scale());
  std::tie(h, s) = qact2(h, s);
  std::tie(h, s) = qact_pool(h.mean({1, 2}));  // the mean leaves the grid: quantized afresh
  return head_fc(h, s).first;
}

std::map<std::string, std::string> QuantSwinTransformerImpl::layer_methods() const {
  std::map<std::string, std::string> out;
  for (size_t s = 0; s < stages_.size(); ++s) {
    const std::string l = "layers." + std::to_string(s) + ".";
    if (stages_[s].downsample) out[l + "downsample.norm"] = stages_[s].downsample->norm->method();
    for (size_t i = 0; i < stages_[s].blocks.size(); ++i) {
      const auto& blk = stages_[s].blocks[i];
      const std::string p = l + "blocks." + std::to_string(i) + ".";
      out[p + "norm1"] = blk->norm1->method();
      out[p + "attn.softmax"] = blk->attn->softmax->method();
      out[p + "norm2"] = blk->norm2->method();
      out[p + "mlp.gelu"] = blk->mlp->gelu->method();
    }
  }
  out["norm"] = norm->method();
  return out;
}

void QuantSwinTransformerImpl::freeze_alpha() {
  for (const auto& m : modules()) {
    if (auto* ptf = m->as<nn::PtfActImpl>()) ptf->freeze_alpha();
  }
}

}  // namespace models
}  // namespace mnq
