// The Swin program on integer codes: the wiring of csrc/models/qswin.cpp (see qswin.h) with every step integer.
#include <ATen/ATen.h>

#include <memory>
#include <stdexcept>
#include <vector>

#include "csrc/deploy/int_blocks.h"
#include "csrc/deploy/int_fused.h"
#include "csrc/deploy/integer_model.h"
#include "csrc/models/swin.h"

namespace mnq {
namespace deploy {
namespace {

struct IntStage {
  bool downsample = false;
  IntNormAct merge_norm;  // layers.{s}.downsample.norm → qact_norm
  IntLinear reduction;    // no bias
  Requant merge_out;      // qact_out (the next residual quantizer)
  std::vector<IntBlock> blocks;
};

class IntSwin : public Program {
 public:
  explicit IntSwin(const Store& s) {
    const json& c = s.value("config");
    std::vector<int64_t> depths, heads;
    int64_t window = 0;
    try {
      dim0_ = c.at("embed_dim").get<int64_t>();
      classes_ = c.at("num_classes").get<int64_t>();
      patch_ = c.at("patch_size").get<int64_t>();
      in_chans_ = c.at("in_chans").get<int64_t>();
      img_ = c.at("img_size").get<int64_t>();
      window = c.at("window_size").get<int64_t>();
      depths = c.at("depths").get<std::vector<int64_t>>();
      heads = c.at("num_heads").get<std::vector<int64_t>>();
    } catch (const json::exception& e) {
      throw std::invalid_argument(std::string("integer model: value 'config' is incomplete: ") + e.what());
    }
    models::SwinConfig cfg;
    cfg.img_size = img_;
    cfg.patch_size = patch_;
    cfg.in_chans = in_chans_;
    cfg.num_classes = classes_;
    cfg.embed_dim = dim0_;
    cfg.depths = depths;
    cfg.num_heads = heads;
    cfg.window_size = window;
    cfg.validate();  // std::invalid_argument naming the field
    embed_ = IntPatchEmbed::read(s, in_chans_, patch_, dim0_);
    embed_act_ = Requant::read(s, "qact_embed", dim0_);
    patch_norm_ = IntNormAct::read(s, "patch_embed.norm", "qact_patch_norm", dim0_);
    int64_t res = img_ / patch_, dim = dim0_;
    for (size_t st = 0; st < depths.size(); ++st) {
      const std::string l = "layers." + std::to_string(st) + ".";
      IntStage stage;
      if (st > 0) {
        stage.downsample = true;
        stage.merge_norm = IntNormAct::read(s, l + "downsample.norm", l + "downsample.qact_norm", 4 * dim);
        stage.reduction = IntLinear::read(s, l + "downsample.reduction", 4 * dim, 2 * dim, false);
        stage.merge_out = Requant::read(s, l + "downsample.qact_out", 2 * dim);
        res /= 2;
        dim *= 2;
      }
      for (int64_t i = 0; i < depths[st]; ++i) {
        const models::SwinWindow w(res, window, i % 2 == 0 ? 0 : window / 2);
        const BlockShape shape{dim, heads[st], 4 * dim, w.window, w.shift, res};
        stage.blocks.push_back(IntBlock::read(s, l + "blocks." + std::to_string(i), shape));
      }
      stages_.push_back(std::move(stage));
    }
    dim_ = dim;
    norm_ = IntNormAct::read(s, "norm", "qact_norm", dim);
    pool_ = Requant::read(s, "qact_pool", 1);
    head_ = IntLinear::read(s, "head.fc", dim, classes_, true);
    head_scale_ = s.vector("head.fc.scale", at::kDouble, classes_);
  }

  std::pair<at::Tensor, at::Tensor> forward_int(const at::Tensor& images, Profile* prof) const override {
    TORCH_CHECK_VALUE(images.dim() == 4 && images.size(2) == img_ && images.size(3) == img_,
                      "integer model: expected images [B, ", in_chans_, ", ", img_, ", ", img_, "], got shape ",
                      images.sizes());
    at::Tensor h = embed_(images, embed_act_, prof);  // NHWC
    h = patch_norm_(h, prof);
    for (const auto& st : stages_) {
      if (st.downsample) {
        {
          ProfileScope scope(prof, "other");
          h = models::patch_merge(h);
        }
        h = linear_act(st.reduction, st.merge_norm(h, prof), st.merge_out, codes_dtype(st.merge_out), prof);
      }
      for (const auto& blk : st.blocks) h = blk(h, prof);
    }
    h = norm_(h, prof);
    at::Tensor pooled;
    {
      // The token mean as a sum of codes; its 1/(H·W) is folded into qact_pool's multiplier.
      ProfileScope scope(prof, "other");
      pooled = h.sum({1, 2}, /*keepdim=*/false, at::kLong);
    }
    pooled = requant(pool_, pooled, prof);
    return {head_(pooled, prof), head_scale_};
  }

  void to(at::Device d) override {
    embed_.to(d);
    embed_act_.to(d);
    patch_norm_.to(d);
    for (auto& st : stages_) {
      if (st.downsample) {
        st.merge_norm.to(d);
        st.reduction.to(d);
        st.merge_out.to(d);
      }
      for (auto& b : st.blocks) b.to(d);
    }
    norm_.to(d);
    pool_.to(d);
    head_.to(d);
    head_scale_ = head_scale_.to(d);
  }

 private:
  int64_t dim0_, dim_, classes_, patch_, in_chans_, img_;
  IntPatchEmbed embed_;
  Requant embed_act_, pool_;
  IntNormAct patch_norm_, norm_;
  std::vector<IntStage> stages_;
  IntLinear head_;
  at::Tensor head_scale_;
};

}  // namespace

std::shared_ptr<Program> read_swin(const Store& s) { return std::make_shared<IntSwin>(s); }

}  // namespace deploy
}  // namespace mnq
