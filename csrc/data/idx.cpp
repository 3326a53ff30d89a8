#include "csrc/data/idx.h"

#include <zlib.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

namespace mnq {
namespace data {
namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error("IDX file " + path + ": " + what);
}

uint32_t big_endian_u32(const std::string& bytes, size_t offset) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data() + offset);
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

// Checks the header `0 0 0x08 ndim` and returns the ndim sizes; the data must fill the rest of the file exactly.
std::vector<int64_t> parse_header(const std::string& path, const std::string& bytes, int expected_ndim) {
  if (bytes.size() < 4) fail(path, "too short for an IDX header (" + std::to_string(bytes.size()) + " bytes)");
  const uint32_t magic = big_endian_u32(bytes, 0);
  const uint32_t expected_magic = 0x0800u | uint32_t(expected_ndim);
  if (magic != expected_magic) {
    char buf[96];
    std::snprintf(buf, sizeof(buf), "bad magic number 0x%08x (expected 0x%08x: uint8 data, %d dims)", magic,
                  expected_magic, expected_ndim);
    fail(path, buf);
  }
  const size_t header = 4 + 4 * size_t(expected_ndim);
  if (bytes.size() < header) fail(path, "truncated header");
  std::vector<int64_t> dims;
  int64_t count = 1;
  for (int d = 0; d < expected_ndim; ++d) {
    const int64_t n = big_endian_u32(bytes, 4 + 4 * size_t(d));
    if (n == 0) fail(path, "dimension " + std::to_string(d) + " is 0");
    dims.push_back(n);
    count *= n;
  }
  if (int64_t(bytes.size() - header) != count) {
    fail(path, "expected " + std::to_string(count) + " data bytes after the header, found " +
                   std::to_string(bytes.size() - header) +
                   (int64_t(bytes.size() - header) < count ? " (truncated)" : ""));
  }
  return dims;
}

at::Tensor to_tensor(const std::string& bytes, size_t header, const std::vector<int64_t>& dims) {
  at::Tensor t = at::empty(dims, at::kByte);
  std::memcpy(t.data_ptr<uint8_t>(), bytes.data() + header, bytes.size() - header);
  return t;
}

}  // namespace

std::string read_gz(const std::string& path) {
  std::unique_ptr<gzFile_s, int (*)(gzFile)> f(gzopen(path.c_str(), "rb"), gzclose);
  if (!f) fail(path, "cannot open (" + std::string(std::strerror(errno)) + ")");
  gzbuffer(f.get(), 1 << 17);
  std::string out;
  std::vector<char> chunk(1 << 20);
  for (;;) {
    const int n = gzread(f.get(), chunk.data(), unsigned(chunk.size()));
    if (n < 0) {
      int code = 0;
      const char* msg = gzerror(f.get(), &code);
      fail(path, std::string("corrupt gzip data (") + msg + ")");
    }
    if (n == 0) break;
    out.append(chunk.data(), size_t(n));
  }
  // gzread returns 0 both at a clean end and at a truncated stream; zlib reports the latter through gzerror.
  int code = Z_OK;
  const char* msg = gzerror(f.get(), &code);
  if (code != Z_OK && code != Z_STREAM_END) fail(path, std::string("corrupt or truncated gzip data (") + msg + ")");
  return out;
}

at::Tensor read_idx_images(const std::string& path) {
  const std::string bytes = read_gz(path);
  return to_tensor(bytes, 16, parse_header(path, bytes, 3));
}

at::Tensor read_idx_labels(const std::string& path) {
  const std::string bytes = read_gz(path);
  return to_tensor(bytes, 8, parse_header(path, bytes, 1)).to(at::kLong);
}

}  // namespace data
}  // namespace mnq
