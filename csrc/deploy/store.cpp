// Store: checked reads and writes of an integer model's tensors and scalar values (see store.h).
#include "csrc/deploy/store.h"

#include <ATen/ATen.h>

#include <sstream>
#include <stdexcept>

namespace mnq {
namespace deploy {
namespace {

std::string shape_str(at::IntArrayRef s) {
  std::ostringstream o;
  o << s;
  return o.str();
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + (s[i] < 0 ? std::string("*") : std::to_string(s[i]));
  return out + "]";
}

[[noreturn]] void fail(const std::string& msg) { throw std::invalid_argument("integer model: " + msg); }

}  // namespace

void Store::put(const std::string& name, const at::Tensor& t) {
  if (tensors_.count(name)) fail("tensor '" + name + "' written twice");
  tensors_[name] = t.detach().to(at::kCPU).contiguous().clone();
}

void Store::set(const std::string& name, json value) {
  if (values_.contains(name)) fail("value '" + name + "' written twice");
  values_[name] = std::move(value);
}

void Store::assign(std::map<std::string, at::Tensor> tensors, json values) {
  tensors_ = std::move(tensors);
  values_ = std::move(values);
  if (!values_.is_object()) fail("the values document must be a JSON object");
  used_tensors_.clear();
  used_values_.clear();
}

at::Tensor Store::tensor(const std::string& name, at::ScalarType dtype, const std::vector<int64_t>& shape) const {
  const auto it = tensors_.find(name);
  if (it == tensors_.end()) fail("missing tensor '" + name + "'");
  const at::Tensor& t = it->second;
  if (t.scalar_type() != dtype) {
    fail("tensor '" + name + "' has dtype " + std::string(c10::toString(t.scalar_type())) + ", expected " +
         c10::toString(dtype));
  }
  bool ok = t.dim() == static_cast<int64_t>(shape.size());
  for (size_t d = 0; ok && d < shape.size(); ++d) ok = shape[d] < 0 || t.size(int64_t(d)) == shape[d];
  if (!ok) fail("tensor '" + name + "' has shape " + shape_str(t.sizes()) + ", expected " + shape_str(shape));
  used_tensors_.insert(name);
  return t;
}

at::Tensor Store::vector(const std::string& name, at::ScalarType dtype, int64_t n, bool per_channel_or_one) const {
  if (per_channel_or_one) {
    const auto it = tensors_.find(name);
    if (it != tensors_.end() && it->second.dim() == 1 && it->second.size(0) == 1) return tensor(name, dtype, {1});
  }
  return tensor(name, dtype, {n});
}

const json& Store::value(const std::string& name) const {
  if (!values_.contains(name)) fail("missing value '" + name + "'");
  used_values_.insert(name);
  return values_.at(name);
}

double Store::number(const std::string& name) const {
  const json& v = value(name);
  if (!v.is_number()) fail("value '" + name + "' must be a number, got " + v.dump());
  return v.get<double>();
}

int64_t Store::integer(const std::string& name) const {
  const json& v = value(name);
  if (!v.is_number_integer()) fail("value '" + name + "' must be an integer, got " + v.dump());
  return v.get<int64_t>();
}

std::string Store::text(const std::string& name) const {
  const json& v = value(name);
  if (!v.is_string()) fail("value '" + name + "' must be a string, got " + v.dump());
  return v.get<std::string>();
}

void Store::check_all_used() const {
  for (const auto& [name, t] : tensors_) {
    if (!used_tensors_.count(name)) fail("unexpected tensor '" + name + "' (not part of this model)");
  }
  for (const auto& [name, v] : values_.items()) {
    if (!used_values_.count(name)) fail("unexpected value '" + name + "' (not part of this model)");
  }
}

}  // namespace deploy
}  // namespace mnq
