// The content of an integer model (deploy): named tensors plus a JSON document of scalars. `convert` fills one from
// a calibrated fake-quant model, `save` writes it as a safetensors file, `load` reads one back, and the engine is
// always built from a Store, so a converted model and its reloaded file run the same program on the same numbers.
// Every read states what it expects (dtype, shape, kind of value) and throws std::invalid_argument naming the key
// when the content disagrees; check_all_used() rejects keys the program never asked for.
#pragma once

#include <ATen/core/Tensor.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace mnq {
namespace deploy {

using json = nlohmann::json;

class Store {
 public:
  // Writing (convert): CPU contiguous copies; a name may be set once.
  void put(const std::string& name, const at::Tensor& t);
  void set(const std::string& name, json value);

  // Reading. `shape` entries of -1 accept any size; per_channel_or_one accepts [1] or [n].
  at::Tensor tensor(const std::string& name, at::ScalarType dtype, const std::vector<int64_t>& shape) const;
  at::Tensor vector(const std::string& name, at::ScalarType dtype, int64_t n, bool per_channel_or_one = false) const;
  double number(const std::string& name) const;
  int64_t integer(const std::string& name) const;
  std::string text(const std::string& name) const;
  const json& value(const std::string& name) const;
  bool has_value(const std::string& name) const { return values_.contains(name); }

  // Throws naming the first tensor or value no reader asked for.
  void check_all_used() const;

  const std::map<std::string, at::Tensor>& tensors() const { return tensors_; }
  const json& values() const { return values_; }
  // The file reader's way in: every tensor and the values document as read.
  void assign(std::map<std::string, at::Tensor> tensors, json values);

 private:
  std::map<std::string, at::Tensor> tensors_;
  json values_ = json::object();
  mutable std::set<std::string> used_tensors_, used_values_;
};

}  // namespace deploy
}  // namespace mnq
