// IDX files (the MNIST / Fashion-MNIST format, http://yann.lecun.com/exdb/mnist/), read directly from their
// gzip-compressed form with zlib. Layout: a big-endian header `0x00 0x00 <type> <ndim>` (type 0x08 = uint8),
// then ndim big-endian uint32 sizes, then the data, row-major. Images are idx3 (N, H, W), labels idx1 (N).
#pragma once

#include <ATen/ATen.h>

#include <string>

namespace mnq {
namespace data {

// uint8 images [N, H, W]; throws naming the file on a wrong magic number, zero or overflowing dims, a size
// mismatch or a corrupt/truncated gzip stream. The header is checked before the payload is inflated, and a header
// claiming more bytes than the file can decompress to is refused before anything is allocated.
at::Tensor read_idx_images(const std::string& path);
// int64 labels [N]; the same checks.
at::Tensor read_idx_labels(const std::string& path);

}  // namespace data
}  // namespace mnq
