// The ViT / DeiT program on integer codes: the wiring of csrc/models/qvit.cpp (see qvit.h) with every step
// integer. Store layout: the fake-quant model's module names (blocks.{i}.attn.qkv.weight, …), see write_vit in
// convert.cpp.
#include <ATen/ATen.h>

#include <memory>
#include <stdexcept>
#include <vector>

#include "csrc/deploy/int_blocks.h"
#include "csrc/deploy/integer_model.h"

namespace mnq {
namespace deploy {
namespace {

class IntViT : public Program {
 public:
  explicit IntViT(const Store& s) {
    const json& c = s.value("config");
    try {
      dim_ = c.at("embed_dim").get<int64_t>();
      depth_ = c.at("depth").get<int64_t>();
      heads_ = c.at("num_heads").get<int64_t>();
      hidden_ = c.at("mlp_hidden").get<int64_t>();
      classes_ = c.at("num_classes").get<int64_t>();
      distilled_ = c.at("distilled").get<bool>();
      patch_ = c.at("patch_size").get<int64_t>();
      in_chans_ = c.at("in_chans").get<int64_t>();
      img_ = c.at("img_size").get<int64_t>();
    } catch (const json::exception& e) {
      throw std::invalid_argument(std::string("integer model: value 'config' is incomplete: ") + e.what());
    }
    if (dim_ <= 0 || depth_ <= 0 || heads_ <= 0 || dim_ % heads_ || patch_ <= 0 || img_ % patch_ || classes_ <= 0)
      throw std::invalid_argument("integer model: value 'config' has inconsistent shapes");
    const int64_t P = distilled_ ? 2 : 1, T = P + (img_ / patch_) * (img_ / patch_);
    embed_ = IntPatchEmbed::read(s, in_chans_, patch_, dim_);
    embed_act_ = Requant::read(s, "qact_embed", dim_);
    prefix_ = s.narrowed("qact_embed.prefix_codes", at::kInt, at::kShort, {1, P, dim_});
    pos_ = s.narrowed("qact_pos.codes", at::kInt, at::kShort, {1, T, dim_});
    pos_add_ = Requant::read(s, "qact_pos_add", 1);
    pos_add_id_ = Requant::read(s, "qact_pos_add.identity", 1);
    for (int64_t i = 0; i < depth_; ++i) {
      blocks_.push_back(IntBlock::read(s, "blocks." + std::to_string(i), BlockShape{dim_, heads_, hidden_}));
    }
    norm_ = IntNormAct::read(s, "norm", "qact_norm", dim_);
    head_ = IntLinear::read(s, "head", dim_, classes_, true);
    head_scale_ = s.vector("head.scale", at::kDouble, classes_);
    if (distilled_) {
      head_dist_ = IntLinear::read(s, "head_dist", dim_, classes_, true);
      head_scale_ = at::stack({head_scale_, s.vector("head_dist.scale", at::kDouble, classes_)});
    }
  }

  std::pair<at::Tensor, at::Tensor> forward_int(const at::Tensor& images, Profile* prof) const override {
    TORCH_CHECK_VALUE(images.dim() == 4 && images.size(2) == img_ && images.size(3) == img_,
                      "integer model: expected images [B, ", in_chans_, ", ", img_, ", ", img_, "], got shape ",
                      images.sizes());
    const int64_t B = images.size(0), P = prefix_.size(1);
    at::Tensor h = embed_(images, embed_act_, prof).view({B, -1, dim_});
    {
      ProfileScope scope(prof, "other");
      h = at::cat({prefix_.expand({B, -1, -1}), h}, 1);
    }
    h = requant_add(pos_add_, h, pos_.expand_as(h), pos_add_id_, prof);
    for (const auto& blk : blocks_) h = blk(h, prof);
    // The final LayerNorm is row-wise, so normalising only the prefix tokens gives the codes the head reads.
    const at::Tensor f = norm_(h.slice(1, 0, P).contiguous(), prof);
    at::Tensor logits = head_(f.select(1, 0), prof);
    if (distilled_) logits = at::stack({logits.to(at::kLong), head_dist_(f.select(1, 1), prof).to(at::kLong)}, 1);
    return {logits, head_scale_};
  }

  void to(at::Device d) override {
    embed_.to(d);
    embed_act_.to(d);
    prefix_ = prefix_.to(d);
    pos_ = pos_.to(d);
    pos_add_.to(d);
    pos_add_id_.to(d);
    for (auto& b : blocks_) b.to(d);
    norm_.to(d);
    head_.to(d);
    if (distilled_) head_dist_.to(d);
    head_scale_ = head_scale_.to(d);
  }

 private:
  int64_t dim_, depth_, heads_, hidden_, classes_, patch_, in_chans_, img_;
  bool distilled_;
  IntPatchEmbed embed_;
  Requant embed_act_, pos_add_, pos_add_id_;
  at::Tensor prefix_, pos_;
  std::vector<IntBlock> blocks_;
  IntNormAct norm_;
  IntLinear head_, head_dist_;
  at::Tensor head_scale_;
};

}  // namespace

std::shared_ptr<Program> read_vit(const Store& s) { return std::make_shared<IntViT>(s); }

}  // namespace deploy
}  // namespace mnq
