// Preset table. The timm entries copy timm's model_args (vision_transformer.py / deit.py): patch 16, 224×224,
// 1000 classes, mlp_ratio 4, qkv bias; DeiT's distilled variants add dist_token and head_dist.
#include "csrc/models/presets.h"

#include <map>
#include <stdexcept>

namespace mnq {
namespace models {
namespace {

ViTConfig make(const std::string& name, int64_t dim, int64_t depth, int64_t heads, bool distilled = false) {
  ViTConfig c;
  c.name = name;
  c.embed_dim = dim;
  c.depth = depth;
  c.num_heads = heads;
  c.mlp_hidden = 4 * dim;
  c.distilled = distilled;
  return c;
}

// 28×28×1 input, patch 4 (7×7 = 49 patches), 10 classes.
ViTConfig mnist(const std::string& name, int64_t dim, int64_t depth, int64_t heads, bool distilled = false) {
  ViTConfig c = make(name, dim, depth, heads, distilled);
  c.img_size = 28;
  c.patch_size = 4;
  c.in_chans = 1;
  c.num_classes = 10;
  return c;
}

const std::map<std::string, ViTConfig>& table() {
  static const std::map<std::string, ViTConfig> presets = [] {
    std::map<std::string, ViTConfig> t;
    for (const ViTConfig& c : {
             make("vit_small_patch16_224", 384, 12, 6),
             make("vit_base_patch16_224", 768, 12, 12),
             make("deit_tiny_patch16_224", 192, 12, 3),
             make("deit_small_patch16_224", 384, 12, 6),
             make("deit_base_patch16_224", 768, 12, 12),
             make("deit_tiny_distilled_patch16_224", 192, 12, 3, true),
             make("deit_small_distilled_patch16_224", 384, 12, 6, true),
             make("deit_base_distilled_patch16_224", 768, 12, 12, true),
             mnist("vit_mnist_tiny", 64, 4, 4),
             mnist("vit_mnist_small", 128, 6, 4),
             mnist("deit_mnist_tiny_distilled", 64, 4, 4, true),
         }) {
      t.emplace(c.name, c);
    }
    return t;
  }();
  return presets;
}

}  // namespace

void ViTConfig::validate() const {
  auto require = [&](bool ok, const std::string& what) {
    if (!ok) throw std::invalid_argument("ViT config '" + name + "': " + what);
  };
  require(img_size > 0 && patch_size > 0 && img_size % patch_size == 0, "img_size must be a multiple of patch_size");
  require(in_chans > 0 && num_classes > 0 && depth > 0 && mlp_hidden > 0, "sizes must be positive");
  require(num_heads > 0 && embed_dim % num_heads == 0, "embed_dim must be a multiple of num_heads");
  require(drop_path_rate >= 0 && drop_path_rate < 1, "drop_path_rate must be in [0, 1)");
}

ViTConfig vit_preset(const std::string& name) {
  auto it = table().find(name);
  if (it == table().end()) {
    std::string known;
    for (const auto& n : vit_preset_names()) known += (known.empty() ? "" : ", ") + n;
    throw std::invalid_argument("unknown ViT preset '" + name + "' (known: " + known + ")");
  }
  return it->second;
}

std::vector<std::string> vit_preset_names() {
  std::vector<std::string> names;
  for (const auto& [name, config] : table()) names.push_back(name);
  return names;
}

std::vector<std::string> vit_layer_names(const ViTConfig& config) {
  std::vector<std::string> names;
  for (int64_t i = 0; i < config.depth; ++i) {
    const std::string b = "blocks." + std::to_string(i) + ".";
    for (const char* suffix : {"norm1", "attn.softmax", "norm2", "mlp.gelu"}) names.push_back(b + suffix);
  }
  names.push_back("norm");
  return names;
}

}  // namespace models
}  // namespace mnq
