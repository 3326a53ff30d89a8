// A tap on the mixable non-linear layers of the full-precision models (SPEC §6 names): the sensitivity analyzer
// sets one to capture each layer's input and output beside the quantized model's (SPEC §7). Every block of one
// model shares the same slot, so setting it once on the model reaches all of them; unset it costs one branch.
#pragma once

#include <ATen/core/Tensor.h>

#include <functional>
#include <memory>
#include <string>

namespace mnq {
namespace models {

// Called with the layer's name, its input and its output (the tensors of the forward, not copies).
using LayerTap = std::function<void(const std::string& layer, const at::Tensor& in, const at::Tensor& out)>;

// The shared slot: a model owns one, its blocks hold copies of the pointer.
class TapSlot {
 public:
  void set(LayerTap tap) const { *fn_ = std::move(tap); }
  // Reports (name, in, out) to the tap when one is set; returns `out`, so a forward can wrap a layer inline.
  const at::Tensor& operator()(const std::string& name, const at::Tensor& in, const at::Tensor& out) const {
    if (*fn_) (*fn_)(name, in, out);
    return out;
  }

 private:
  std::shared_ptr<LayerTap> fn_ = std::make_shared<LayerTap>();
};

}  // namespace models
}  // namespace mnq
