// Reading safetensors files as strictly as the format's own reader (huggingface/safetensors, tensor.rs:
// read_metadata + Metadata::validate), so a damaged or hand-made file is a one-line error, never garbage:
//   - an 8-byte little-endian header length N with N <= 100 000 000 and 8 + N <= the file size;
//   - the header is valid UTF-8, starts with '{' and is one JSON object (trailing spaces allowed: the padding);
//     no key appears twice in any object (nlohmann, like most JSON readers, would silently keep one);
//   - "__metadata__", when present, maps strings to strings; every other key is a tensor with exactly the fields
//     dtype (one of ours), shape (non-negative integers) and data_offsets ([begin, end], non-negative integers);
//   - sorted by offsets, the tensors tile the data section exactly: the first begins at 0, each begins where the
//     previous ended, the last ends at the end of the file (no gaps, overlaps or trailing bytes), and each
//     range is numel · itemsize bytes, numel computed without overflow;
//   - BOOL data holds only 0 and 1 (any other byte is not a C++ bool).
// Messages name the file and the tensor or field ("safetensors file 'f': tensor 'k': ..."), on one line: names
// are quoted with control and non-ASCII bytes escaped.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "csrc/models/weights.h"

namespace mnq {
namespace models {

struct SafetensorsEntry {
  std::string name;
  std::string dtype;            // "F32", "I64", ...
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte range in the data section
};

// The validated layout of a file: the data section starts at byte `data_start`; entries in offset order.
struct SafetensorsLayout {
  uint64_t data_start = 0;
  std::vector<SafetensorsEntry> tensors;
};

// Validates the header `header` (the N bytes after the length) of a file whose data section has `data_size`
// bytes. Throws std::invalid_argument with the reason (without the file name; read_safetensors adds it).
SafetensorsLayout parse_safetensors_header(std::string_view header, uint64_t data_size);

// Reads a whole file from any byte source: `size` bytes in all, `read(offset, dst, n)` copies n bytes at
// `offset` (returns false on an I/O error). `name` prefixes the messages. read_safetensors(path) is this on a file.
using ReadAt = std::function<bool(uint64_t offset, void* dst, uint64_t n)>;
NamedTensors read_safetensors_from(const ReadAt& read, uint64_t size, const std::string& name);

// The safetensors dtype name of a tensor type ("F32" ...), or "" when the format has none we support.
std::string safetensors_dtype(at::ScalarType type);

// `s` in single quotes, with control characters, quotes, backslashes and non-ASCII bytes escaped (\xNN): a key
// from a hostile file cannot break a one-line message or a terminal.
std::string quote_name(std::string_view s);

}  // namespace models
}  // namespace mnq
