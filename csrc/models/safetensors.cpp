// The validating safetensors reader (the rules are listed in safetensors.h).
#include "csrc/models/safetensors.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>

namespace mnq {
namespace models {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors data is little-endian");

// The format's own limit on the header (safetensors' MAX_HEADER_SIZE): a length field of 2^60 is an error, not
// an allocation.
constexpr uint64_t kMaxHeader = 100'000'000;

struct DType {
  at::ScalarType type;
  uint64_t size;
};

const std::map<std::string, DType>& dtypes() {
  static const std::map<std::string, DType> m = {
      {"F64", {at::kDouble, 8}}, {"F32", {at::kFloat, 4}}, {"F16", {at::kHalf, 2}}, {"BF16", {at::kBFloat16, 2}},
      {"I64", {at::kLong, 8}},   {"I32", {at::kInt, 4}},   {"I16", {at::kShort, 2}}, {"I8", {at::kChar, 1}},
      {"U8", {at::kByte, 1}},    {"BOOL", {at::kBool, 1}}};
  return m;
}

[[noreturn]] void fail(const std::string& what) { throw std::invalid_argument(what); }

// A JSON value for a message: one line (dump escapes control characters), at most 80 characters.
std::string brief(const nlohmann::json& v) {
  std::string s = v.dump();
  return s.size() <= 80 ? s : s.substr(0, 77) + "...";
}

// The offset of the first byte that is not part of well-formed UTF-8 (RFC 3629: no overlong forms, no
// surrogates, nothing above U+10FFFF), or npos.
size_t invalid_utf8_at(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  for (size_t i = 0; i < n;) {
    const unsigned c = p[i];
    size_t len;
    unsigned lo = 0x80, hi = 0xBF;  // the allowed range of the second byte
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;  // overlong
      if (c == 0xED) hi = 0x9F;  // surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;  // overlong
      if (c == 0xF4) hi = 0x8F;  // above U+10FFFF
    } else {
      return i;
    }
    if (i + len > n || p[i + 1] < lo || p[i + 1] > hi) return i;
    for (size_t k = 2; k < len; ++k) {
      if (p[i + k] < 0x80 || p[i + k] > 0xBF) return i;
    }
    i += len;
  }
  return std::string_view::npos;
}

// Parses the header, rejecting a key repeated within one object and nesting deeper than the format's three
// levels (file object → tensor object → shape/offsets array).
nlohmann::json parse_json(std::string_view header) {
  std::vector<std::set<std::string>> keys;  // the keys seen in each open object
  auto cb = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    if (depth > 3) fail("the header nests deeper than the format's tensor entries");
    if (event == E::object_start) keys.emplace_back();
    if (event == E::object_end) keys.pop_back();
    if (event == E::key && !keys.back().insert(parsed.get<std::string>()).second) {
      fail("key " + quote_name(parsed.get<std::string>()) + " appears twice in the header" +
           (depth > 1 ? " (inside a tensor entry)" : ""));
    }
    return true;
  };
  try {
    return nlohmann::json::parse(header.begin(), header.end(), cb);
  } catch (const nlohmann::json::exception& e) {
    fail(std::string("the header is not valid JSON (") + e.what() + ")");
  }
}

uint64_t unsigned_value(const nlohmann::json& v, const std::string& where) {
  if (!v.is_number_unsigned()) fail(where + " must be a non-negative integer, got " + brief(v));
  return v.get<uint64_t>();
}

SafetensorsEntry parse_entry(const std::string& key, const nlohmann::json& e) {
  const std::string at = "tensor " + quote_name(key);
  if (!e.is_object()) fail(at + ": expected an object {dtype, shape, data_offsets}, got " + brief(e));
  for (auto it = e.begin(); it != e.end(); ++it) {
    if (it.key() != "dtype" && it.key() != "shape" && it.key() != "data_offsets") {
      fail(at + ": unknown field " + quote_name(it.key()));
    }
  }
  for (const char* f : {"dtype", "shape", "data_offsets"}) {
    if (!e.contains(f)) fail(at + ": missing field '" + f + "'");
  }
  SafetensorsEntry out;
  out.name = key;
  const auto& dtype = e.at("dtype");
  if (!dtype.is_string() || !dtypes().count(dtype.get<std::string>())) {
    fail(at + ": unsupported dtype " + brief(dtype) + " (expected F64, F32, F16, BF16, I64, I32, I16, I8, U8 or BOOL)");
  }
  out.dtype = dtype.get<std::string>();
  const auto& shape = e.at("shape");
  if (!shape.is_array()) fail(at + ": shape must be a list of non-negative integers, got " + brief(shape));
  // numel · itemsize without overflow: every factor is bounded by the checked running product.
  uint64_t bytes = dtypes().at(out.dtype).size;
  for (const auto& d : shape) {
    const uint64_t n = unsigned_value(d, at + ": each shape entry");
    if (n > uint64_t(INT64_MAX) || __builtin_mul_overflow(bytes, n, &bytes)) {
      fail(at + ": shape " + brief(shape) + " overflows a 64-bit byte count");
    }
    out.shape.push_back(int64_t(n));
  }
  const auto& offsets = e.at("data_offsets");
  if (!offsets.is_array() || offsets.size() != 2) {
    fail(at + ": data_offsets must be [begin, end], got " + brief(offsets));
  }
  out.begin = unsigned_value(offsets[0], at + ": data_offsets[0]");
  out.end = unsigned_value(offsets[1], at + ": data_offsets[1]");
  if (out.end < out.begin) fail(at + ": data_offsets " + brief(offsets) + " end before they begin");
  if (out.end - out.begin != bytes) {
    fail(at + ": data_offsets " + brief(offsets) + " span " + std::to_string(out.end - out.begin) +
         " bytes but dtype " + out.dtype + " and shape " + brief(shape) + " need " + std::to_string(bytes));
  }
  return out;
}

}  // namespace

std::string quote_name(std::string_view s) {
  std::string out = "'";
  for (unsigned char c : s) {
    if (c < 0x20 || c >= 0x7F || c == '\'' || c == '\\') {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    } else {
      out += char(c);
    }
  }
  return out + "'";
}

std::string safetensors_dtype(at::ScalarType type) {
  for (const auto& [name, d] : dtypes()) {
    if (d.type == type) return name;
  }
  return "";
}

SafetensorsLayout parse_safetensors_header(std::string_view header, uint64_t data_size) {
  if (const size_t bad = invalid_utf8_at(header); bad != std::string_view::npos) {
    fail("the header is not valid UTF-8 (byte " + std::to_string(8 + bad) + " of the file)");
  }
  if (header.empty() || header.front() != '{') fail("the header does not start with '{'");
  const nlohmann::json j = parse_json(header);
  if (!j.is_object()) fail("the header is not a JSON object");
  SafetensorsLayout layout;
  layout.data_start = 8 + header.size();
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "__metadata__") {
      if (!it.value().is_object()) fail("__metadata__ must map strings to strings");
      for (auto m = it.value().begin(); m != it.value().end(); ++m) {
        if (!m.value().is_string()) fail("__metadata__ " + quote_name(m.key()) + " must be a string, got " + brief(m.value()));
      }
      continue;
    }
    layout.tensors.push_back(parse_entry(it.key(), it.value()));
  }
  // The data section is tiled exactly, in offset order (the writer's order: JSON objects are unordered).
  auto& ts = layout.tensors;
  std::sort(ts.begin(), ts.end(), [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
    return std::tie(a.begin, a.end) < std::tie(b.begin, b.end);
  });
  uint64_t expected = 0;
  for (const auto& t : ts) {
    if (t.begin != expected) {
      fail("tensor " + quote_name(t.name) + ": data_offsets begin at " + std::to_string(t.begin) + ", expected " +
           std::to_string(expected) + (t.begin < expected ? " (overlaps the previous tensor)" : " (a gap before it)"));
    }
    expected = t.end;
  }
  if (expected > data_size) {
    fail("the tensors need " + std::to_string(expected) + " data bytes but the file has " + std::to_string(data_size) +
         " (truncated)");
  }
  if (expected < data_size) {
    fail(std::to_string(data_size - expected) + " trailing bytes after the last tensor's data");
  }
  return layout;
}

NamedTensors read_safetensors_from(const ReadAt& read, uint64_t size, const std::string& name) {
  const std::string prefix = "safetensors file '" + name + "': ";
  try {
    uint64_t header_len = 0;
    if (size < 8 || !read(0, &header_len, 8)) fail("too short for a header (" + std::to_string(size) + " bytes)");
    if (header_len > kMaxHeader) fail("header length " + std::to_string(header_len) + " exceeds the format's limit");
    if (header_len > size - 8) {
      fail("header length " + std::to_string(header_len) + " exceeds the file (" + std::to_string(size) + " bytes)");
    }
    std::string header(header_len, '\0');
    if (!read(8, header.data(), header_len)) fail("cannot read the header");
    const SafetensorsLayout layout = parse_safetensors_header(header, size - 8 - header_len);
    NamedTensors out;
    for (const auto& e : layout.tensors) {
      const DType d = dtypes().at(e.dtype);
      at::Tensor t = at::empty(e.shape, at::TensorOptions().dtype(d.type));
      if (e.end > e.begin && !read(layout.data_start + e.begin, t.data_ptr(), e.end - e.begin)) {
        fail("tensor " + quote_name(e.name) + ": cannot read its data");
      }
      if (d.type == at::kBool) {
        const auto* b = static_cast<const uint8_t*>(t.data_ptr());
        if (std::any_of(b, b + t.numel(), [](uint8_t v) { return v > 1; })) {
          fail("tensor " + quote_name(e.name) + ": BOOL data holds a byte other than 0 or 1");
        }
      }
      out.emplace_back(e.name, std::move(t));
    }
    return out;
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(prefix + e.what());
  }
}

NamedTensors read_safetensors(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::exists(path, ec) && !std::filesystem::is_regular_file(path, ec)) {
    throw std::invalid_argument("safetensors file '" + path + "': not a regular file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::invalid_argument("safetensors file '" + path + "': cannot be opened");
  in.seekg(0, std::ios::end);
  const std::streamoff end = in.tellg();
  if (end < 0) throw std::invalid_argument("safetensors file '" + path + "': cannot be read (not a regular file?)");
  const ReadAt read = [&](uint64_t offset, void* dst, uint64_t n) {
    in.seekg(std::streamoff(offset));
    return bool(in.read(static_cast<char*>(dst), std::streamsize(n)));
  };
  return read_safetensors_from(read, uint64_t(end), path);
}

}  // namespace models
}  // namespace mnq
