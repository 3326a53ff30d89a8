// The integer model file: safetensors (https://huggingface.co/docs/safetensors) — 8-byte little-endian header
// length, a JSON header {name: {dtype, shape, data_offsets}}, the raw little-endian data — whose "__metadata__"
// (string values, as the format requires) holds:
//   format          "mnq-integer-model"
//   format_version  "2" ("1" where written so; a reader refuses a newer version than it knows: its layout may differ)
//   mnq_version     the writing library's version
//   model           the JSON document of the Store: family, preset, config, plan, bits, every scalar constant
// Tensors: int8 weights, int32 biases and constant codes, the dyadic pairs (m int32, k int8) and α (int8),
// int16 embedding / position codes, float32 γ/β of the LayerNorm ops, float64 per-channel scales of I-BERT GELU
// and of the logits. Version 1 (the files written before 2026-12-07) is the same file with m, k and α as int64 and the
// embedding / position codes as int32; it is read bit-exactly (store.h) and can still be written (save(path, 1)).
// Python's `safetensors` reads both. Reading checks the whole structure (sizes, offsets, dtypes) before any tensor
// is used, and each tensor's dtype, shape (and the dyadic pairs' range, int_layers.cpp) where the program asks for it.
#include <ATen/ATen.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "csrc/deploy/integer_model.h"
#include "csrc/util/atomic_file.h"

#ifndef MNQ_VERSION
#define MNQ_VERSION "unknown"
#endif

namespace mnq {
namespace deploy {
namespace {

const std::map<std::string, at::ScalarType>& dtypes() {
  static const std::map<std::string, at::ScalarType> d = {{"I8", at::kChar},   {"U8", at::kByte},
                                                          {"I16", at::kShort}, {"I32", at::kInt},
                                                          {"I64", at::kLong},  {"F32", at::kFloat},
                                                          {"F64", at::kDouble}, {"BOOL", at::kBool}};
  return d;
}

std::string dtype_name(at::ScalarType t) {
  for (const auto& [name, type] : dtypes()) {
    if (type == t) return name;
  }
  throw std::invalid_argument(std::string("integer model: unsupported dtype ") + c10::toString(t));
}

[[noreturn]] void fail(const std::string& path, const std::string& msg) {
  throw std::invalid_argument("integer model file '" + path + "': " + msg);
}

}  // namespace

void IntegerModel::save(const std::string& path, int64_t version) const {
  const std::map<std::string, at::Tensor> tensors = store_.tensors_for(version);
  json header = json::object();
  header["__metadata__"] = {{"format", "mnq-integer-model"},
                            {"format_version", std::to_string(version)},
                            {"mnq_version", MNQ_VERSION},
                            {"model", store_.values().dump()}};
  int64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    const int64_t bytes = t.numel() * static_cast<int64_t>(t.element_size());
    header[name] = {{"dtype", dtype_name(t.scalar_type())}, {"shape", t.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // data aligned to 8 bytes, as the safetensors writers do
  util::AtomicFile out(path);  // the one atomic write (csrc/util): a kill leaves the previous file or this one
  const uint64_t n = text.size();
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>((n >> (8 * i)) & 0xff);
  out.write(len, 8);
  out.write(text);
  for (const auto& [name, t] : tensors) {
    out.write(t.data_ptr(), static_cast<size_t>(t.numel() * t.element_size()));
  }
  out.commit();
}

IntegerModel load_integer_model(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path, "cannot open it for reading");
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const uint64_t size = bytes.size();
  if (size < 8) fail(path, "truncated: " + std::to_string(size) + " bytes, shorter than the 8-byte header length");
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[size_t(i)])) << (8 * i);
  if (n > size - 8) fail(path, "truncated: the header says " + std::to_string(n) + " bytes, the file has " +
                                   std::to_string(size - 8) + " after the length");
  json header;
  try {
    header = json::parse(bytes.begin() + 8, bytes.begin() + 8 + static_cast<std::ptrdiff_t>(n));
  } catch (const json::exception& e) {
    fail(path, std::string("the header is not valid JSON (") + e.what() + ")");
  }
  if (!header.is_object() || !header.contains("__metadata__") || !header["__metadata__"].is_object()) {
    fail(path, "no __metadata__: not an mnq integer model (a plain safetensors file?)");
  }
  const json& meta = header["__metadata__"];
  if (meta.value("format", "") != "mnq-integer-model") fail(path, "__metadata__.format is not 'mnq-integer-model'");
  int64_t version = 0;
  try {
    version = std::stoll(meta.value("format_version", "0"));
  } catch (const std::exception&) {
    fail(path, "__metadata__.format_version is not an integer");
  }
  if (version > kFormatVersion) {
    fail(path, "format version " + std::to_string(version) + " is newer than this mnq reads (" +
                   std::to_string(kFormatVersion) + "); written by mnq " + meta.value("mnq_version", "?") +
                   ", upgrade mnq");
  }
  if (version < 1) fail(path, "__metadata__.format_version must be >= 1");
  json values;
  try {
    values = json::parse(meta.value("model", ""));
  } catch (const json::exception& e) {
    fail(path, std::string("__metadata__.model is not valid JSON (") + e.what() + ")");
  }
  const uint64_t data_size = size - 8 - n;
  const char* data = bytes.data() + 8 + n;
  std::map<std::string, at::Tensor> tensors;
  uint64_t covered = 0;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") continue;
    try {
      const std::string dt = entry.at("dtype").get<std::string>();
      const auto it = dtypes().find(dt);
      if (it == dtypes().end()) fail(path, "tensor '" + name + "' has unsupported dtype " + dt);
      const std::vector<int64_t> shape = entry.at("shape").get<std::vector<int64_t>>();
      const std::vector<uint64_t> off = entry.at("data_offsets").get<std::vector<uint64_t>>();
      int64_t numel = 1;
      for (int64_t d : shape) {
        if (d < 0 || d > (int64_t(1) << 40)) fail(path, "tensor '" + name + "' has an invalid shape");
        numel *= d;
      }
      const uint64_t want = static_cast<uint64_t>(numel) * c10::elementSize(it->second);
      if (off.size() != 2 || off[0] > off[1] || off[1] - off[0] != want) {
        fail(path, "tensor '" + name + "': data_offsets do not match its dtype and shape");
      }
      if (off[1] > data_size) {
        fail(path, "truncated: tensor '" + name + "' ends at byte " + std::to_string(off[1]) + " of the data, which has " +
                       std::to_string(data_size));
      }
      covered = std::max(covered, off[1]);
      at::Tensor t = at::empty(shape, at::TensorOptions().dtype(it->second));
      if (want > 0) std::memcpy(t.data_ptr(), data + off[0], want);
      tensors[name] = t;
    } catch (const json::exception& e) {
      fail(path, "tensor '" + name + "' has a malformed header entry (" + e.what() + ")");
    }
  }
  if (covered != data_size) fail(path, std::to_string(data_size - covered) + " bytes after the last tensor");
  Store st;
  st.assign(std::move(tensors), std::move(values), version);
  try {
    return IntegerModel::from_store(std::move(st));
  } catch (const std::invalid_argument& e) {
    fail(path, e.what());
  }
}

}  // namespace deploy
}  // namespace mnq
