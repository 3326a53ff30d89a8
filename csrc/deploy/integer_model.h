// The integer model (issue 11): a calibrated fake-quant ViT / DeiT / Swin converted to integer-only inference.
//
//   IntegerModel m = convert(model);      // models::Model from create_quant, calibrated, in eval mode
//   at::Tensor logits = m.forward(images);  // float images → dequantized logits (float32)
//   auto [q, s] = m.forward_int(images);    // integer logits (head accumulators) and their float64 scale
//   m.save("m.safetensors");  IntegerModel m2 = load_integer_model("m.safetensors");  // bit-exact reload
//
// Float appears only in the input quantizer (qact_input: images → codes) and the final dequantization (q·s).
// A model is built from its Store (store.h), whether converted or loaded, so both run the same program.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <utility>

#include "csrc/deploy/profile.h"
#include "csrc/deploy/store.h"

namespace mnq {
namespace models {
struct Model;
}
namespace deploy {

// The program of one model family on integer codes (int_vit.cpp, int_swin.cpp).
class Program {
 public:
  virtual ~Program() = default;
  // Integer logits: int32/int64 [B, K] ([B, 2, K] for a distilled DeiT: head, head_dist), scale float64 [K] / [2, K].
  virtual std::pair<at::Tensor, at::Tensor> forward_int(const at::Tensor& images, Profile* prof) const = 0;
  virtual void to(at::Device d) = 0;
};

class IntegerModel {
 public:
  // Validates every tensor and value the family's program reads; throws std::invalid_argument naming the key.
  static IntegerModel from_store(Store store);

  at::Tensor forward(const at::Tensor& images, Profile* prof = nullptr) const;
  std::pair<at::Tensor, at::Tensor> forward_int(const at::Tensor& images, Profile* prof = nullptr) const;
  // forward's last step: q·s in float64 (the mean of both heads when distilled, as timm in eval), as float32.
  static at::Tensor dequantize(const at::Tensor& q, const at::Tensor& s);
  // Atomically (temporary file beside it, then rename), as format `version` (1..kFormatVersion, store.h).
  void save(const std::string& path, int64_t version = kFormatVersion) const;
  // Moves the program's tensors (the Store kept for save stays on the CPU).
  void to(at::Device d);
  at::Device device() const { return device_; }

  std::string family() const;  // "vit" or "swin"
  const json& config() const;  // the architecture config
  const json& plan() const;    // layer -> method
  int64_t bits() const;
  bool distilled() const;
  int64_t in_chans() const;
  int64_t img_size() const;
  int64_t num_classes() const;
  const Store& store() const { return store_; }

 private:
  Store store_;
  std::shared_ptr<Program> program_;
  at::Device device_ = at::kCPU;
};

// Converts a calibrated, eval-mode quantized model (models::create_quant). Throws std::invalid_argument for a
// full-precision or training-mode model, an uncalibrated quantizer or W/A above 8.
IntegerModel convert(const models::Model& model);
// Reads a file written by IntegerModel::save; errors name the file and what is wrong (truncated, dtype, shape,
// missing or unexpected key, newer format version).
IntegerModel load_integer_model(const std::string& path);

// Family programs, built from a Store (int_vit.cpp, int_swin.cpp).
std::shared_ptr<Program> read_vit(const Store& s);
std::shared_ptr<Program> read_swin(const Store& s);

}  // namespace deploy
}  // namespace mnq
