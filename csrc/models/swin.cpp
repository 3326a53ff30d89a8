// Full-precision Swin Transformer: the computation of timm's SwinTransformer (swin_transformer.py, timm 1.0),
// with the module tree built from plain modules so every parameter carries timm's name.
#include "csrc/models/swin.h"

#include <ATen/ATen.h>

#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <utility>

#include "csrc/models/drop_path.h"

namespace mnq {
namespace models {
namespace {

using torch::nn::LayerNormOptions;

torch::nn::LayerNorm layer_norm(torch::nn::Module& parent, const std::string& name, int64_t dim) {
  return parent.register_module(name, torch::nn::LayerNorm(LayerNormOptions({dim}).eps(1e-5)));
}

const std::map<std::string, SwinConfig>& table() {
  static const std::map<std::string, SwinConfig> presets = [] {
    std::map<std::string, SwinConfig> t;
    SwinConfig tiny;
    tiny.name = "swin_tiny_patch4_window7_224";
    t[tiny.name] = tiny;
    SwinConfig small = tiny;
    small.name = "swin_small_patch4_window7_224";
    small.depths = {2, 2, 18, 2};
    t[small.name] = small;
    // 28×28×1 input, patch 2: stage 0 at 14×14 (2×2 shifted windows of 7), stage 1 at 7×7 (one window, no shift)
    SwinConfig mnist;
    mnist.name = "swin_mnist_tiny";
    mnist.img_size = 28;
    mnist.patch_size = 2;
    mnist.in_chans = 1;
    mnist.num_classes = 10;
    mnist.embed_dim = 32;
    mnist.depths = {2, 2};
    mnist.num_heads = {2, 4};
    t[mnist.name] = mnist;
    return t;
  }();
  return presets;
}

}  // namespace

void SwinConfig::validate() const {
  auto require = [&](bool ok, const std::string& what) {
    if (!ok) throw std::invalid_argument("Swin config '" + name + "': " + what);
  };
  require(!depths.empty() && depths.size() == num_heads.size(), "depths and num_heads need one entry per stage");
  require(img_size % patch_size == 0, "img_size must be a multiple of patch_size");
  require(drop_path_rate >= 0 && drop_path_rate < 1, "drop_path_rate must be in [0, 1)");
  int64_t res = img_size / patch_size, dim = embed_dim;
  for (size_t s = 0; s < depths.size(); ++s) {
    if (s > 0) {
      require(res % 2 == 0, "stage " + std::to_string(s) + " halves an odd resolution");
      res /= 2;
      dim *= 2;
    }
    require(dim % num_heads[s] == 0, "stage " + std::to_string(s) + ": dim must be a multiple of num_heads");
    require(res % std::min(res, window_size) == 0,
            "stage " + std::to_string(s) + ": resolution " + std::to_string(res) + " is not a multiple of the window");
  }
}

SwinConfig swin_preset(const std::string& name) {
  auto it = table().find(name);
  if (it == table().end()) {
    std::string known;
    for (const auto& n : swin_preset_names()) known += (known.empty() ? "" : ", ") + n;
    throw std::invalid_argument("unknown Swin preset '" + name + "' (known: " + known + ")");
  }
  return it->second;
}

std::vector<std::string> swin_preset_names() {
  std::vector<std::string> names;
  for (const auto& [name, config] : table()) names.push_back(name);
  return names;
}

std::vector<std::string> swin_layer_names(const SwinConfig& config) {
  std::vector<std::string> names;
  for (size_t s = 0; s < config.depths.size(); ++s) {
    const std::string l = "layers." + std::to_string(s) + ".";
    if (s > 0) names.push_back(l + "downsample.norm");
    for (int64_t i = 0; i < config.depths[s]; ++i) {
      const std::string b = l + "blocks." + std::to_string(i) + ".";
      for (const char* suffix : {"norm1", "attn.softmax", "norm2", "mlp.gelu"}) names.push_back(b + suffix);
    }
  }
  names.push_back("norm");
  return names;
}

std::shared_ptr<torch::nn::Module> named_scope(torch::nn::Module& parent, const std::string& name) {
  return parent.register_module(name, std::make_shared<torch::nn::Module>());
}

at::Tensor window_partition(const at::Tensor& x, int64_t ws) {
  const int64_t B = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3);
  return x.view({B, H / ws, ws, W / ws, ws, C}).permute({0, 1, 3, 2, 4, 5}).reshape({-1, ws * ws, C});
}

at::Tensor window_reverse(const at::Tensor& windows, int64_t ws, int64_t H, int64_t W) {
  const int64_t C = windows.size(-1);
  return windows.view({-1, H / ws, W / ws, ws, ws, C}).permute({0, 1, 3, 2, 4, 5}).reshape({-1, H, W, C});
}

at::Tensor patch_merge(const at::Tensor& x) {
  const int64_t B = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3);
  return x.reshape({B, H / 2, 2, W / 2, 2, C}).permute({0, 1, 3, 4, 2, 5}).flatten(3);
}

struct SwinWindow::Cache {
  std::mutex mu;                                      // forwards of one model may run on several threads
  std::vector<std::pair<at::Tensor, at::Tensor>> on;  // (index, mask) per non-CPU device, copied once
};

SwinWindow::SwinWindow(int64_t res, int64_t target_window, int64_t target_shift) : resolution(res) {
  // timm's _calc_window_shift (always_partition=False): shrink the window to the map, drop the shift then
  window = std::min(res, target_window);
  shift = res <= target_window ? 0 : target_shift;
  const at::Tensor coords = at::stack(at::meshgrid({at::arange(window), at::arange(window)}, "ij")).flatten(1);
  at::Tensor rel = (coords.unsqueeze(2) - coords.unsqueeze(1)).permute({1, 2, 0}).contiguous();
  rel.select(2, 0).add_(window - 1).mul_(2 * window - 1);
  rel.select(2, 1).add_(window - 1);
  relative_position_index = rel.sum(-1);
  if (shift > 0) {
    at::Tensor img = at::zeros({1, res, res, 1});
    const int64_t bounds[4] = {0, res - window, res - shift, res};
    int64_t cnt = 0;
    for (int hi = 0; hi < 3; ++hi) {
      for (int wi = 0; wi < 3; ++wi) {
        img.slice(1, bounds[hi], bounds[hi + 1]).slice(2, bounds[wi], bounds[wi + 1]).fill_(static_cast<double>(cnt++));
      }
    }
    const at::Tensor mw = window_partition(img, window).squeeze(-1);  // [nW, N]
    const at::Tensor diff = mw.unsqueeze(1) - mw.unsqueeze(2);
    mask = at::where(diff != 0, at::full({}, -100.0), at::zeros({}));
  }
  cache_ = std::make_shared<Cache>();
}

std::pair<at::Tensor, at::Tensor> SwinWindow::tensors_on(at::Device device) const {
  if (device.is_cpu()) return {relative_position_index, mask};
  std::lock_guard<std::mutex> lock(cache_->mu);
  for (const auto& p : cache_->on) {
    if (p.first.device() == device) return p;
  }
  cache_->on.emplace_back(relative_position_index.to(device), mask.defined() ? mask.to(device) : at::Tensor());
  return cache_->on.back();
}

at::Tensor SwinWindow::index_on(at::Device device) const { return tensors_on(device).first; }

at::Tensor SwinWindow::mask_on(at::Device device) const { return tensors_on(device).second; }

SwinBlockImpl::SwinBlockImpl(int64_t dim, int64_t num_heads, const SwinWindow& window, double drop_path)
    : num_heads_(num_heads), drop_path_(drop_path), window_(window) {
  norm1 = layer_norm(*this, "norm1", dim);
  auto attn = named_scope(*this, "attn");
  const int64_t w = window_.window;
  relative_position_bias_table =
      attn->register_parameter("relative_position_bias_table", at::zeros({(2 * w - 1) * (2 * w - 1), num_heads}));
  {
    at::NoGradGuard no_grad;
    relative_position_bias_table.normal_(0.0, 0.02).clamp_(-2.0, 2.0);  // timm: trunc_normal_(std=.02)
  }
  qkv = attn->register_module("qkv", torch::nn::Linear(dim, 3 * dim));
  proj = attn->register_module("proj", torch::nn::Linear(dim, dim));
  norm2 = layer_norm(*this, "norm2", dim);
  auto mlp = named_scope(*this, "mlp");
  fc1 = mlp->register_module("fc1", torch::nn::Linear(dim, 4 * dim));
  fc2 = mlp->register_module("fc2", torch::nn::Linear(4 * dim, dim));
}

at::Tensor SwinBlockImpl::attention(const at::Tensor& x) {
  const int64_t Bw = x.size(0), N = x.size(1), C = x.size(2), hd = C / num_heads_;
  const at::Tensor t = qkv(x).reshape({Bw, N, 3, num_heads_, hd}).permute({2, 0, 3, 1, 4});
  const at::Tensor q = t[0] * std::pow(static_cast<double>(hd), -0.5), k = t[1], v = t[2];
  at::Tensor attn = at::matmul(q, k.transpose(-2, -1));
  const at::Tensor bias = relative_position_bias_table.index({window_.index_on(attn.device()).view(-1)})
                              .view({N, N, -1})
                              .permute({2, 0, 1})
                              .unsqueeze(0);
  attn = attn + bias;
  if (window_.mask.defined()) {
    const int64_t nw = window_.mask.size(0);
    attn = (attn.view({-1, nw, num_heads_, N, N}) + window_.mask_on(attn.device()).unsqueeze(1).unsqueeze(0))
               .view({-1, num_heads_, N, N});
  }
  attn = tap_(softmax_name_, attn, at::softmax(attn, -1));
  return proj(at::matmul(attn, v).transpose(1, 2).reshape({Bw, N, C}));
}

at::Tensor SwinBlockImpl::forward(const at::Tensor& x) {
  const int64_t B = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3), s = window_.shift, w = window_.window;
  at::Tensor h = tap_(norm1_name_, x, norm1(x));
  if (s > 0) h = at::roll(h, {-s, -s}, {1, 2});
  h = window_reverse(attention(window_partition(h, w)), w, H, W);
  if (s > 0) h = at::roll(h, {s, s}, {1, 2});
  at::Tensor y = (x + drop_path(h, drop_path_, is_training())).reshape({B, -1, C});
  const at::Tensor u = fc1(tap_(norm2_name_, y, norm2(y)));
  y = y + drop_path(fc2(tap_(gelu_name_, u, at::gelu(u))), drop_path_, is_training());
  return y.reshape({B, H, W, C});
}

void SwinBlockImpl::attach(const TapSlot& tap, const std::string& prefix) {
  tap_ = tap;
  norm1_name_ = prefix + "norm1";
  softmax_name_ = prefix + "attn.softmax";
  norm2_name_ = prefix + "norm2";
  gelu_name_ = prefix + "mlp.gelu";
}

SwinTransformerImpl::SwinTransformerImpl(const SwinConfig& config) : config_(config) {
  config_.validate();
  auto pe = named_scope(*this, "patch_embed");
  patch_proj = pe->register_module(
      "proj", torch::nn::Conv2d(torch::nn::Conv2dOptions(config_.in_chans, config_.embed_dim, config_.patch_size)
                                    .stride(config_.patch_size)));
  patch_norm = layer_norm(*pe, "norm", config_.embed_dim);
  auto layers = register_module("layers", torch::nn::ModuleList());
  int64_t res = config_.img_size / config_.patch_size, dim = config_.embed_dim;
  int64_t total_blocks = 0, block = 0;
  for (int64_t d : config_.depths) total_blocks += d;
  const std::vector<double> dpr = drop_path_rates(config_.drop_path_rate, total_blocks);
  for (size_t s = 0; s < config_.depths.size(); ++s) {
    auto stage_scope = std::make_shared<torch::nn::Module>();
    layers->push_back(stage_scope);
    Stage stage;
    if (s > 0) {
      auto ds = named_scope(*stage_scope, "downsample");
      stage.merge_norm = layer_norm(*ds, "norm", 4 * dim);
      stage.merge_norm_name = "layers." + std::to_string(s) + ".downsample.norm";
      stage.merge_reduction =
          ds->register_module("reduction", torch::nn::Linear(torch::nn::LinearOptions(4 * dim, 2 * dim).bias(false)));
      res /= 2;
      dim *= 2;
    }
    auto blocks = stage_scope->register_module("blocks", torch::nn::ModuleList());
    for (int64_t i = 0; i < config_.depths[s]; ++i) {
      const SwinWindow window(res, config_.window_size, i % 2 == 0 ? 0 : config_.window_size / 2);
      stage.blocks.push_back(SwinBlock(dim, config_.num_heads[s], window, dpr[size_t(block++)]));
      stage.blocks.back()->attach(tap_, "layers." + std::to_string(s) + ".blocks." + std::to_string(i) + ".");
      blocks->push_back(stage.blocks.back());
    }
    stages_.push_back(stage);
  }
  norm = layer_norm(*this, "norm", dim);
  head_fc = named_scope(*this, "head")->register_module("fc", torch::nn::Linear(dim, config_.num_classes));
}

at::Tensor SwinTransformerImpl::forward_features(const at::Tensor& x) {
  at::Tensor h = patch_norm(patch_proj(x).permute({0, 2, 3, 1}));
  for (auto& stage : stages_) {
    if (stage.merge_norm) {
      const at::Tensor m = patch_merge(h);
      h = stage.merge_reduction(tap_(stage.merge_norm_name, m, stage.merge_norm(m)));
    }
    for (auto& blk : stage.blocks) h = blk(h);
  }
  static const std::string kNorm = "norm";
  return tap_(kNorm, h, norm(h));
}

at::Tensor SwinTransformerImpl::forward(const at::Tensor& x) { return head_fc(forward_features(x).mean({1, 2})); }

}  // namespace models
}  // namespace mnq
