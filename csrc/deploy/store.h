// The content of an integer model (deploy): named tensors plus a JSON document of scalars. `convert` fills one from
// a calibrated fake-quant model, `save` writes it as a safetensors file, `load` reads one back, and the engine is
// always built from a Store, so a converted model and its reloaded file run the same program on the same numbers.
// Every read states what it expects (dtype, shape, kind of value) and throws std::invalid_argument naming the key
// when the content disagrees; check_all_used() rejects keys the program never asked for.
//
// Format versions (file.cpp): a Store holds its tensors as a file of its version has them (a converted model: the
// current version; a loaded one: its file's). Version 2 stores some tensors narrower than the engine computes with
// (put_narrowed / narrowed: the dyadic multipliers m as int32, their shifts k and PtfAct's α as int8, the 16-bit
// embedding / position codes as int16); version 1 stored them at the engine's width (int64, int32). A reader asks
// for the engine's dtype and gets it from either version, so a version-1 file runs the same program bit for bit.
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

// The format version IntegerModel::save writes by default; load reads versions 1..kFormatVersion.
constexpr int64_t kFormatVersion = 2;

class Store {
 public:
  // Writing (convert): CPU contiguous copies; a name may be set once.
  void put(const std::string& name, const at::Tensor& t);
  void set(const std::string& name, json value);
  // t at the engine's dtype `wide`, stored as `narrow` from version 2 on; throws naming the tensor when a value
  // does not fit `narrow` (the callers state why their values always fit).
  void put_narrowed(const std::string& name, const at::Tensor& t, at::ScalarType narrow);

  // Reading. `shape` entries of -1 accept any size; per_channel_or_one accepts [1] or [n].
  at::Tensor tensor(const std::string& name, at::ScalarType dtype, const std::vector<int64_t>& shape) const;
  at::Tensor vector(const std::string& name, at::ScalarType dtype, int64_t n, bool per_channel_or_one = false) const;
  // A tensor of put_narrowed: `narrow` in a version ≥ 2 Store, `wide` in a version-1 one; returned as `wide`.
  at::Tensor narrowed(const std::string& name, at::ScalarType wide, at::ScalarType narrow,
                      const std::vector<int64_t>& shape, bool per_channel_or_one = false) const;
  double number(const std::string& name) const;
  int64_t integer(const std::string& name) const;
  std::string text(const std::string& name) const;
  const json& value(const std::string& name) const;
  bool has_value(const std::string& name) const { return values_.contains(name); }

  // Throws naming the first tensor or value no reader asked for.
  void check_all_used() const;

  const std::map<std::string, at::Tensor>& tensors() const { return tensors_; }
  // The tensors as a file of `version` stores them (narrowed ones converted, checked to fit).
  std::map<std::string, at::Tensor> tensors_for(int64_t version) const;
  const json& values() const { return values_; }
  int64_t version() const { return version_; }
  // The file reader's way in: every tensor and the values document as read, and the file's format version.
  void assign(std::map<std::string, at::Tensor> tensors, json values, int64_t version);

 private:
  struct Widths {
    at::ScalarType wide, narrow;
  };
  std::map<std::string, at::Tensor> tensors_;
  json values_ = json::object();
  int64_t version_ = kFormatVersion;
  mutable std::set<std::string> used_tensors_, used_values_;
  mutable std::map<std::string, Widths> narrowed_;  // by put_narrowed, or by narrowed() when read
};

}  // namespace deploy
}  // namespace mnq
