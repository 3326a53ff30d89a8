// ViT / DeiT architectures by name: timm's (same names, same shapes, so timm weights load) and small ones for
// 28×28 one-channel images (MNIST-sized, for fast tests and CPU training). Torch-free.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mnq {
namespace models {

struct ViTConfig {
  std::string name;
  int64_t img_size = 224;
  int64_t patch_size = 16;
  int64_t in_chans = 3;
  int64_t num_classes = 1000;
  int64_t embed_dim = 768;
  int64_t depth = 12;
  int64_t num_heads = 12;
  int64_t mlp_hidden = 3072;  // embed_dim · mlp_ratio (4 in every preset)
  bool distilled = false;     // DeiT's distillation token and head_dist
  double drop_path_rate = 0;  // stochastic depth of the last block (drop_path.h), training only

  int64_t num_patches() const { return (img_size / patch_size) * (img_size / patch_size); }
  int64_t num_prefix_tokens() const { return distilled ? 2 : 1; }
  // Throws std::invalid_argument naming the field when the shapes do not fit together.
  void validate() const;
};

// The preset `name` (throws std::invalid_argument listing the known names otherwise).
ViTConfig vit_preset(const std::string& name);
std::vector<std::string> vit_preset_names();
// The mixable non-linear layers of a ViT in forward order (SPEC §6 names): blocks.{i}.norm1, .attn.softmax,
// .norm2, .mlp.gelu for every block, then norm.
std::vector<std::string> vit_layer_names(const ViTConfig& config);

}  // namespace models
}  // namespace mnq
