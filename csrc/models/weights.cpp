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

#include "csrc/util/atomic_file.h"

namespace mnq {
namespace models {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors data is little-endian");

const std::map<std::string, at::ScalarType>& dtypes() {
  static const std::map<std::string, at::ScalarType> m = {
      {"F64", at::kDouble}, {"F32", at::kFloat}, {"F16", at::kHalf}, {"BF16", at::kBFloat16}, {"I64", at::kLong},
      {"I32", at::kInt},    {"I16", at::kShort}, {"I8", at::kChar},  {"U8", at::kByte},       {"BOOL", at::kBool}};
  return m;
}

std::string dtype_name(at::ScalarType t, const std::string& key) {
  for (const auto& [name, type] : dtypes()) {
    if (type == t) return name;
  }
  throw std::invalid_argument("safetensors: tensor '" + key + "' has unsupported dtype " +
                              std::string(c10::toString(t)));
}

std::string shape_str(at::IntArrayRef s) {
  std::ostringstream o;
  o << s;
  return o.str();
}

}  // namespace

NamedTensors read_safetensors(const std::string& path) {
  auto fail = [&](const std::string& what) { throw std::invalid_argument("safetensors file '" + path + "': " + what); };
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot be opened");
  in.seekg(0, std::ios::end);
  const uint64_t file_size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  uint64_t header_len = 0;
  if (file_size < 8 || !in.read(reinterpret_cast<char*>(&header_len), 8)) fail("too short for a header");
  if (header_len > file_size - 8) fail("header length " + std::to_string(header_len) + " exceeds the file");
  std::string header(header_len, '\0');
  in.read(header.data(), static_cast<std::streamsize>(header_len));
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(header);
  } catch (const nlohmann::json::exception& e) {
    fail(std::string("bad JSON header: ") + e.what());
  }
  if (!j.is_object()) fail("the header is not a JSON object");
  const uint64_t data_start = 8 + header_len, data_size = file_size - data_start;
  // Order by data offset, which is the writer's order (JSON objects are unordered).
  std::vector<std::pair<uint64_t, std::string>> order;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    try {
      order.emplace_back(it.value().at("data_offsets").at(0).get<uint64_t>(), it.key());
    } catch (const nlohmann::json::exception& e) {
      fail("tensor '" + it.key() + "': " + e.what());
    }
  }
  std::sort(order.begin(), order.end());
  NamedTensors out;
  for (const auto& [offset, key] : order) {
    const auto& e = j.at(key);
    std::vector<int64_t> shape;
    uint64_t begin = 0, end = 0;
    std::string dtype;
    try {
      dtype = e.at("dtype").get<std::string>();
      shape = e.at("shape").get<std::vector<int64_t>>();
      begin = e.at("data_offsets").at(0).get<uint64_t>();
      end = e.at("data_offsets").at(1).get<uint64_t>();
    } catch (const nlohmann::json::exception& ex) {
      fail("tensor '" + key + "': " + ex.what());
    }
    auto dt = dtypes().find(dtype);
    if (dt == dtypes().end()) fail("tensor '" + key + "': unsupported dtype " + dtype);
    at::Tensor t = at::empty(shape, at::TensorOptions().dtype(dt->second));
    if (end < begin || end > data_size || end - begin != static_cast<uint64_t>(t.nbytes())) {
      fail("tensor '" + key + "': data_offsets do not match dtype " + dtype + " and shape " + shape_str(t.sizes()));
    }
    in.seekg(static_cast<std::streamoff>(data_start + begin));
    if (!in.read(static_cast<char*>(t.data_ptr()), static_cast<std::streamsize>(end - begin))) {
      fail("tensor '" + key + "': truncated data");
    }
    out.emplace_back(key, t);
  }
  return out;
}

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
    if (!params.contains(k) && !buffers.contains(k)) fail("unexpected key '" + k + "' (not in the model)");
  }
  at::NoGradGuard no_grad;
  auto copy_into = [&](const torch::OrderedDict<std::string, at::Tensor>& dict, bool required) {
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
      at::Tensor dst = item.value();
      dst.copy_(src);
    }
  };
  copy_into(params, true);
  copy_into(buffers, require_buffers);
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
