// The per-layer method plan (SPEC §6, §7): which integer method each mixable non-linear layer uses.
//
// File format (shared with the Python side), a YAML mapping of method names:
//   all: ivit            # default for every mixable layer
//   softmax: ibert       # default per op type (softmax, gelu, layernorm); overrides `all`
//   blocks.3.norm1: fqvit  # one layer by name; overrides both
// Layer names: blocks.{i}.norm1, blocks.{i}.attn.softmax, blocks.{i}.norm2, blocks.{i}.mlp.gelu, norm; Swin
// layers.{s}.blocks.{i}.<same> and layers.{s}.downsample.norm. A layer's op type is read from its name's suffix.
// Methods: ivit, ibert, fqvit. Torch-free (yaml-cpp only).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace mnq {
namespace models {

enum class OpType { kSoftmax, kGelu, kLayerNorm };

// "softmax", "gelu", "layernorm": the plan key of an op type.
const char* op_type_key(OpType type);
// The methods a plan may name, in tie-break order: ivit, ibert, fqvit.
const std::vector<std::string>& plan_methods();
// The W/A bit-widths b (SPEC §6 "W/A = b") with which a method's integer kernels accept the scales a trained ViT
// produces; jobs are refused other widths at config time, before any pretraining (the kernels would reject the
// scales only at calibration). Each bound comes from an op's supported scale range, S = r / (2^(b−1) − 1) for an
// activation range r (plan.cpp has the arithmetic).
struct BitRange {
  int64_t lo, hi;
};
BitRange supported_bits(const std::string& method);
// "" when every method of `methods` supports `bits`, else the reason naming the first that does not.
std::string unsupported_bits(int64_t bits, const std::vector<std::string>& methods);
// The op type of a mixable layer name (by suffix), or nullopt when `name` is not a mixable layer name.
std::optional<OpType> layer_op_type(const std::string& name);

class Plan {
 public:
  Plan() = default;
  // Parses YAML text; `origin` (a file name) is named in every error. Throws std::invalid_argument on a
  // non-mapping document, an unknown key, or a value that is not one of plan_methods().
  static Plan parse(const std::string& yaml_text, const std::string& origin = "<string>");
  static Plan load(const std::string& path);
  // A plan giving `method` to every layer.
  static Plan uniform(const std::string& method);

  // Sets one key (all, softmax, gelu, layernorm or a layer name), validated as parse does.
  Plan& set(const std::string& key, const std::string& method);
  const std::map<std::string, std::string>& entries() const { return entries_; }

  // The method of `layer`: its own key, else its op type's key, else `all`. Throws naming the layer if none.
  std::string method_for(const std::string& layer) const;
  // Every layer of a model resolved; throws if a layer-name key is not one of `layers` (a typo would otherwise
  // be silently ignored) or a layer is left without a method.
  std::map<std::string, std::string> resolve(const std::vector<std::string>& layers) const;

  // Canonical YAML: all, softmax, gelu, layernorm, then layer names in model order (numeric indices).
  std::string to_yaml() const;
  // Writes to_yaml() atomically (a temporary file in the same folder, then rename).
  void save(const std::string& path) const;

  bool operator==(const Plan& other) const { return entries_ == other.entries_; }

 private:
  std::string origin_ = "<plan>";
  std::map<std::string, std::string> entries_;
};

}  // namespace models
}  // namespace mnq
