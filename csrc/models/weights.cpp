// safetensors reading and writing with nlohmann-json for the header.
#include "csrc/models/weights.h"

#include <ATen/ATen.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "csrc/models/safetensors.h"
#include "csrc/util/atomic_file.h"

namespace mnq {
namespace models {
namespace {

std::string dtype_name(at::ScalarType t, const std::string& key) {
  const std::string name = safetensors_dtype(t);
  if (name.empty()) {
    throw std::invalid_argument("safetensors: tensor '" + key + "' has unsupported dtype " +
                                std::string(c10::toString(t)));
  }
  return name;
}

std::string shape_str(at::IntArrayRef s) {
  std::ostringstream o;
  o << s;
  return o.str();
}

}  // namespace

void write_safetensors(const std::string& path, const NamedTensors& tensors) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  std::vector<at::Tensor> data;
  uint64_t offset = 0;
  for (const auto& [key, tensor] : tensors) {
    at::Tensor t = tensor.detach().to(at::kCPU).contiguous();
    header[key] = {{"dtype", dtype_name(t.scalar_type(), key)},
                   {"shape", t.sizes().vec()},
                   {"data_offsets", {offset, offset + t.nbytes()}}};
    offset += t.nbytes();
    data.push_back(t);
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // the format pads the header with spaces to 8-byte alignment
  util::AtomicFile out(path);
  const uint64_t n = h.size();  // little-endian u64, as on every platform mnq builds for
  out.write(&n, 8);
  out.write(h);
  for (const auto& t : data) out.write(t.data_ptr(), t.nbytes());
  out.commit();
}

void load_weights(torch::nn::Module& module, const std::string& path, bool require_buffers) {
  const NamedTensors file = read_safetensors(path);
  std::map<std::string, const at::Tensor*> by_name;
  for (const auto& [k, t] : file) by_name[k] = &t;
  auto params = module.named_parameters();
  auto buffers = module.named_buffers();
  auto fail = [&](const std::string& what) { throw std::invalid_argument("weights file '" + path + "': " + what); };
  for (const auto& [k, t] : file) {
    if (!params.contains(k) && !buffers.contains(k)) fail("unexpected key " + quote_name(k) + " (not in the model)");
  }
  // Every check first, every copy after: a file that fails leaves the module untouched. The dtype must be the
  // model's own (an I32 or F16 file for an F32 weight is a wrong file, not something to cast silently).
  std::vector<std::pair<at::Tensor, const at::Tensor*>> copies;
  auto check = [&](const torch::OrderedDict<std::string, at::Tensor>& dict, bool required) {
    for (const auto& item : dict) {
      auto it = by_name.find(item.key());
      if (it == by_name.end()) {
        if (required) fail("missing key '" + item.key() + "' of shape " + shape_str(item.value().sizes()));
        continue;
      }
      const at::Tensor& src = *it->second;
      if (src.sizes() != item.value().sizes()) {
        fail("key '" + item.key() + "' has shape " + shape_str(src.sizes()) + " in the file but " +
             shape_str(item.value().sizes()) + " in the model");
      }
      if (src.scalar_type() != item.value().scalar_type()) {
        fail("key '" + item.key() + "' has dtype " + safetensors_dtype(src.scalar_type()) + " in the file but " +
             safetensors_dtype(item.value().scalar_type()) + " in the model");
      }
      copies.emplace_back(item.value(), &src);
    }
  };
  check(params, true);
  check(buffers, require_buffers);
  at::NoGradGuard no_grad;
  for (auto& [dst, src] : copies) dst.copy_(*src);
}

void save_weights(const torch::nn::Module& module, const std::string& path) {
  NamedTensors all;
  for (const auto& item : module.named_parameters()) all.emplace_back(item.key(), item.value());
  for (const auto& item : module.named_buffers()) all.emplace_back(item.key(), item.value());
  write_safetensors(path, all);
}

void copy_parameters(const torch::nn::Module& src, torch::nn::Module& dst) {
  const auto from = src.named_parameters();
  at::NoGradGuard no_grad;
  for (auto& item : dst.named_parameters()) {
    const at::Tensor* s = from.find(item.key());
    if (s == nullptr) throw std::invalid_argument("copy_parameters: the source has no parameter '" + item.key() + "'");
    if (s->sizes() != item.value().sizes()) {
      throw std::invalid_argument("copy_parameters: '" + item.key() + "' has shape " + shape_str(s->sizes()) +
                                  " in the source but " + shape_str(item.value().sizes()) + " in the destination");
    }
    item.value().copy_(*s);
  }
}

}  // namespace models
}  // namespace mnq
