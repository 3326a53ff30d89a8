// IDX files (the MNIST / Fashion-MNIST format, http://yann.lecun.com/exdb/mnist/), read directly from their
// gzip-compressed form with zlib. Layout: a big-endian header `0x00 0x00 <type> <ndim>` (type 0x08 = uint8),
// then ndim big-endian uint32 sizes, then the data, row-major. Images are idx3 (N, H, W), labels idx1 (N).
#pragma once

#include <ATen/ATen.h>

#include <string>

namespace mnq {
namespace data {

// The decompressed bytes of a .gz file (or of a plain file: zlib reads uncompressed input transparently).
// Throws std::runtime_error naming the file when it cannot be opened or the gzip stream is corrupt/truncated.
std::string read_gz(const std::string& path);

// uint8 images [N, H, W]; throws naming the file on a wrong magic number, zero dims or a size mismatch.
at::Tensor read_idx_images(const std::string& path);
// int64 labels [N]; throws naming the file on a wrong magic number or a size mismatch.
at::Tensor read_idx_labels(const std::string& path);

}  // namespace data
}  // namespace mnq
