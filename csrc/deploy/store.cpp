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

// t as `dtype`, every value checked to be representable (an integer conversion would wrap silently).
at::Tensor converted(const std::string& name, const at::Tensor& t, at::ScalarType dtype) {
  if (t.scalar_type() == dtype) return t;
  const at::Tensor out = t.to(dtype);
  if (t.numel() > 0 && !at::equal(out.to(t.scalar_type()), t)) {
    const at::Tensor bad = t.reshape({-1}).index({(out.to(t.scalar_type()) != t).reshape({-1})});
    fail("tensor '" + name + "' holds " + std::to_string(bad[0].item<int64_t>()) + ", which " +
         c10::toString(dtype) + " cannot store");
  }
  return out;
}

}  // namespace

void Store::put(const std::string& name, const at::Tensor& t) {
  if (tensors_.count(name)) fail("tensor '" + name + "' written twice");
  tensors_[name] = t.detach().to(at::kCPU).contiguous().clone();
}

void Store::put_narrowed(const std::string& name, const at::Tensor& t, at::ScalarType narrow) {
  const at::Tensor c = t.detach().to(at::kCPU).contiguous();
  narrowed_[name] = Widths{c.scalar_type(), narrow};
  put(name, converted(name, c, version_ >= 2 ? narrow : c.scalar_type()));
}

void Store::set(const std::string& name, json value) {
  if (values_.contains(name)) fail("value '" + name + "' written twice");
  values_[name] = std::move(value);
}

void Store::assign(std::map<std::string, at::Tensor> tensors, json values, int64_t version) {
  tensors_ = std::move(tensors);
  values_ = std::move(values);
  version_ = version;
  if (!values_.is_object()) fail("the values document must be a JSON object");
  used_tensors_.clear();
  used_values_.clear();
  narrowed_.clear();
}

std::map<std::string, at::Tensor> Store::tensors_for(int64_t version) const {
  if (version < 1 || version > kFormatVersion) {
    fail("cannot write format version " + std::to_string(version) + " (this mnq writes 1.." +
         std::to_string(kFormatVersion) + ")");
  }
  std::map<std::string, at::Tensor> out = tensors_;
  for (const auto& [name, w] : narrowed_) out[name] = converted(name, out.at(name), version >= 2 ? w.narrow : w.wide);
  return out;
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

at::Tensor Store::narrowed(const std::string& name, at::ScalarType wide, at::ScalarType narrow,
                           const std::vector<int64_t>& shape, bool per_channel_or_one) const {
  const at::ScalarType stored = version_ >= 2 ? narrow : wide;
  const at::Tensor t =
      shape.size() == 1 ? vector(name, stored, shape[0], per_channel_or_one) : tensor(name, stored, shape);
  narrowed_[name] = Widths{wide, narrow};
  return t.to(wide);
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
