// IntegerModel: the family program built from a Store, its forwards and accessors (see integer_model.h).
#include "csrc/deploy/integer_model.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <stdexcept>

namespace mnq {
namespace deploy {

IntegerModel IntegerModel::from_store(Store store) {
  IntegerModel m;
  const std::string family = store.text("family");
  store.text("preset");
  store.value("plan");
  const int64_t bits = store.integer("bits");
  if (bits < 2 || bits > 8) throw std::invalid_argument("integer model: value 'bits' must be in [2, 8]");
  if (family == "vit") {
    m.program_ = read_vit(store);
  } else if (family == "swin") {
    m.program_ = read_swin(store);
  } else {
    throw std::invalid_argument("integer model: value 'family' must be 'vit' or 'swin', got '" + family + "'");
  }
  store.check_all_used();
  m.store_ = std::move(store);
  return m;
}

std::pair<at::Tensor, at::Tensor> IntegerModel::forward_int(const at::Tensor& images, Profile* prof) const {
  c10::InferenceMode guard;
  TORCH_CHECK_VALUE(images.device() == device_, "integer model: the images are on ", images.device(),
                    " but the model is on ", device_);
  return program_->forward_int(images, prof);
}

at::Tensor IntegerModel::forward(const at::Tensor& images, Profile* prof) const {
  auto [q, s] = forward_int(images, prof);
  ProfileScope scope(prof, "dequantize");
  return dequantize(q, s);
}

at::Tensor IntegerModel::dequantize(const at::Tensor& q, const at::Tensor& s) {
  at::Tensor logits = q.to(at::kDouble) * s;  // the one float step after the input quantizer
  if (logits.dim() == 3) logits = logits.mean(1);  // distilled: the mean of both heads, as timm in eval
  return logits.to(at::kFloat);
}

void IntegerModel::to(at::Device d) {
  program_->to(d);
  device_ = d;
}

std::string IntegerModel::family() const { return store_.values().at("family").get<std::string>(); }
const json& IntegerModel::config() const { return store_.values().at("config"); }
const json& IntegerModel::plan() const { return store_.values().at("plan"); }
int64_t IntegerModel::bits() const { return store_.values().at("bits").get<int64_t>(); }
bool IntegerModel::distilled() const { return config().value("distilled", false); }
int64_t IntegerModel::in_chans() const { return config().at("in_chans").get<int64_t>(); }
int64_t IntegerModel::img_size() const { return config().at("img_size").get<int64_t>(); }
int64_t IntegerModel::num_classes() const { return config().at("num_classes").get<int64_t>(); }

}  // namespace deploy
}  // namespace mnq
