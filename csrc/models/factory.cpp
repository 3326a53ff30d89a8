// Preset dispatch: ViT/DeiT presets live in presets.cpp, Swin presets in swin.cpp.
#include "csrc/models/factory.h"

#include <algorithm>
#include <stdexcept>

#include "csrc/models/presets.h"
#include "csrc/models/qswin.h"
#include "csrc/models/swin.h"
#include "csrc/models/vit.h"

namespace mnq {
namespace models {
namespace {

bool contains(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

template <typename Config>
Config apply(Config c, const ModelOverrides& o) {
  if (o.num_classes) c.num_classes = *o.num_classes;
  if (o.img_size) c.img_size = *o.img_size;
  if (o.in_chans) c.in_chans = *o.in_chans;
  if (o.drop_path) c.drop_path_rate = *o.drop_path;
  c.validate();
  return c;
}

std::vector<std::string> layer_list(const std::string& preset, const ModelOverrides& o) {
  return preset_family(preset) == Family::kViT ? vit_layer_names(apply(vit_preset(preset), o))
                                               : swin_layer_names(apply(swin_preset(preset), o));
}

}  // namespace

std::vector<std::string> preset_names() {
  std::vector<std::string> names = vit_preset_names();
  for (const auto& n : swin_preset_names()) names.push_back(n);
  return names;
}

Family preset_family(const std::string& preset) {
  if (contains(vit_preset_names(), preset)) return Family::kViT;
  if (contains(swin_preset_names(), preset)) return Family::kSwin;
  std::string known;
  for (const auto& n : preset_names()) known += (known.empty() ? "" : ", ") + n;
  throw std::invalid_argument("unknown model preset '" + preset + "' (known: " + known + ")");
}

std::vector<std::pair<std::string, OpType>> mixable_layers(const std::string& preset, const ModelOverrides& o) {
  std::vector<std::pair<std::string, OpType>> out;
  for (const auto& name : layer_list(preset, o)) out.emplace_back(name, *layer_op_type(name));
  return out;
}

Model create_fp(const std::string& preset, const ModelOverrides& o) {
  Model m;
  m.preset = preset;
  m.family = preset_family(preset);
  m.overrides = o;
  if (m.family == Family::kViT) {
    auto net = VisionTransformer(apply(vit_preset(preset), o));
    m.module = net.ptr();
    m.forward = [net](const at::Tensor& x) mutable { return net->forward(x); };
    m.set_tap = [net](LayerTap tap) { net->set_tap(std::move(tap)); };
  } else {
    auto net = SwinTransformer(apply(swin_preset(preset), o));
    m.module = net.ptr();
    m.forward = [net](const at::Tensor& x) mutable { return net->forward(x); };
    m.set_tap = [net](LayerTap tap) { net->set_tap(std::move(tap)); };
  }
  return m;
}

Model create_quant(const std::string& preset, const QuantOptions& options, const ModelOverrides& o) {
  Model m;
  m.preset = preset;
  m.family = preset_family(preset);
  m.overrides = o;
  m.quantized = true;
  m.bits = options.bits;
  if (m.family == Family::kViT) {
    auto net = QuantVisionTransformer(apply(vit_preset(preset), o), options);
    m.module = net.ptr();
    m.methods = net->layer_methods();
    m.forward = [net](const at::Tensor& x) mutable { return net->forward(x); };
    m.freeze_alpha = [net]() mutable { net->freeze_alpha(); };
  } else {
    auto net = QuantSwinTransformer(apply(swin_preset(preset), o), options);
    m.module = net.ptr();
    m.methods = net->layer_methods();
    m.forward = [net](const at::Tensor& x) mutable { return net->forward(x); };
    m.freeze_alpha = [net]() mutable { net->freeze_alpha(); };
  }
  return m;
}

}  // namespace models
}  // namespace mnq
