#include "csrc/data/idx.h"

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <vector>

namespace mnq {
namespace data {
namespace {

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw std::runtime_error("IDX file " + path + ": " + what);
}

uint32_t big_endian_u32(const unsigned char* p) {
  return (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | uint32_t(p[3]);
}

// A gzip (or plain) file read in pieces, so the header is checked before any of the payload is decompressed.
class GzReader {
 public:
  explicit GzReader(const std::string& path) : path_(path), file_(open(path), gzclose) {
    if (!file_) fail(path, "cannot open (" + std::string(std::strerror(errno)) + ")");
    gzbuffer(file_.get(), 1 << 17);
    std::error_code ec;
    file_size_ = std::filesystem::file_size(path, ec);
    if (ec) file_size_ = 0;
  }

  // gzopen, after refusing a directory or a device (zlib would read a FIFO forever or fail with a gzip error).
  static gzFile open(const std::string& path) {
    std::error_code ec;
    if (std::filesystem::exists(path, ec) && !std::filesystem::is_regular_file(path, ec)) {
      fail(path, "not a regular file");
    }
    return gzopen(path.c_str(), "rb");
  }

  // Up to n bytes into dst; fewer only at the end of the data. Throws on a corrupt or truncated gzip stream
  // (gzread returns a short count for both a clean end and a cut stream; zlib tells them apart through gzerror).
  uint64_t read(void* dst, uint64_t n) {
    uint64_t got = 0;
    while (got < n) {
      const unsigned chunk = unsigned(std::min<uint64_t>(n - got, 1u << 30));
      const int r = gzread(file_.get(), static_cast<char*>(dst) + got, chunk);
      if (r < 0) check("corrupt gzip data");
      if (r <= 0) break;
      got += uint64_t(r);
      if (unsigned(r) < chunk) break;
    }
    if (got < n) check("corrupt or truncated gzip data");
    return got;
  }

  // The most bytes the file can decompress to: deflate's best ratio is 1032:1 (a 258-byte match in 2 bits), and
  // a plain file is read as it is (less its `header` bytes). A header claiming more is refused before anything
  // is allocated or inflated.
  uint64_t max_payload(uint64_t header) const {
    if (gzdirect(file_.get())) return file_size_ > header ? file_size_ - header : 0;
    return file_size_ > UINT64_MAX / 1032 ? UINT64_MAX : file_size_ * 1032;
  }

 private:
  void check(const char* what) {
    int code = Z_OK;
    const char* msg = gzerror(file_.get(), &code);
    if (code != Z_OK && code != Z_STREAM_END) fail(path_, std::string(what) + " (" + msg + ")");
  }

  std::string path_;
  std::unique_ptr<gzFile_s, int (*)(gzFile)> file_;
  uint64_t file_size_ = 0;
};

// Reads `0 0 0x08 ndim`, the ndim sizes and exactly their product of bytes. Checks (magic, zero or overflowing
// dimensions, more bytes than the file can hold) come before the payload is read; memory grows only with the
// data actually decompressed (at::empty does not touch its pages).
at::Tensor read_idx(const std::string& path, int expected_ndim) {
  GzReader in(path);
  unsigned char head[4 + 4 * 3];
  const uint64_t header = 4 + 4 * uint64_t(expected_ndim);
  const uint64_t got = in.read(head, header);
  if (got < 4) fail(path, "too short for an IDX header (" + std::to_string(got) + " bytes)");
  const uint32_t magic = big_endian_u32(head);
  const uint32_t expected_magic = 0x0800u | uint32_t(expected_ndim);
  if (magic != expected_magic) {
    char buf[96];
    std::snprintf(buf, sizeof(buf), "bad magic number 0x%08x (expected 0x%08x: uint8 data, %d dims)", magic,
                  expected_magic, expected_ndim);
    fail(path, buf);
  }
  if (got < header) fail(path, "truncated header");
  std::vector<int64_t> dims;
  int64_t count = 1;
  for (int d = 0; d < expected_ndim; ++d) {
    const int64_t n = big_endian_u32(head + 4 + 4 * d);
    if (n == 0) fail(path, "dimension " + std::to_string(d) + " is 0");
    dims.push_back(n);
    if (__builtin_mul_overflow(count, n, &count)) fail(path, "the dimensions' product overflows 64 bits");
  }
  if (uint64_t(count) > in.max_payload(header)) {
    fail(path, "the header claims " + std::to_string(count) + " data bytes, more than the file can hold");
  }
  at::Tensor t = at::empty(dims, at::kByte);
  const uint64_t data = in.read(t.data_ptr<uint8_t>(), uint64_t(count));
  char extra = 0;
  if (data < uint64_t(count) || in.read(&extra, 1) != 0) {
    fail(path, "expected " + std::to_string(count) + " data bytes after the header, found " +
                   (data < uint64_t(count) ? std::to_string(data) + " (truncated)" : "more"));
  }
  return t;
}

}  // namespace

at::Tensor read_idx_images(const std::string& path) { return read_idx(path, 3); }

at::Tensor read_idx_labels(const std::string& path) { return read_idx(path, 1).to(at::kLong); }

}  // namespace data
}  // namespace mnq
