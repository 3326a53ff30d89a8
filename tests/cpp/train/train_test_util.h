// Helpers of the trainer tests: temporary folders, gzip IDX files written with zlib, JPEGs encoded with
// libjpeg-turbo, and a small synthetic Fashion-MNIST-shaped dataset whose classes are learnable.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

namespace mnq_test {

// A fresh empty folder under the system temp dir, removed by the destructor.
struct TempDir {
  explicit TempDir(const std::string& tag);
  ~TempDir();
  std::string path;
  std::string operator/(const std::string& name) const { return path + "/" + name; }
};

// Writes `bytes` gzip-compressed to `path`.
void write_gz(const std::string& path, const std::string& bytes);
// An IDX file's bytes: header 0 0 8 ndim, big-endian dims, uint8 data (`data` may be shorter: a truncated file).
std::string idx_bytes(const std::vector<uint32_t>& dims, const std::vector<uint8_t>& data);

// Writes {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz with n_train / n_test 28×28 images of 10 classes in
// `dir`: class c is a bright 7×7 square at one of 10 positions, plus noise (seeded), so a tiny ViT learns it.
void write_synthetic_fashion(const std::string& dir, int64_t n_train, int64_t n_test, uint64_t seed);

// Encodes an RGB (channels 3) or grey image [h, w, channels] as a JPEG file.
void write_jpeg(const std::string& path, const std::vector<uint8_t>& pixels, int w, int h, int channels,
                int quality = 95);

}  // namespace mnq_test
