#include "train_test_util.h"

#include <turbojpeg.h>
#include <unistd.h>
#include <zlib.h>

#include <filesystem>
#include <random>
#include <stdexcept>

namespace mnq_test {

TempDir::TempDir(const std::string& tag) {
  static int counter = 0;
  path = (std::filesystem::temp_directory_path() /
          ("mnq_" + tag + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++)))
             .string();
  std::filesystem::remove_all(path);
  std::filesystem::create_directories(path);
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}

void write_gz(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  if (!f) throw std::runtime_error("cannot write " + path);
  if (!bytes.empty() && gzwrite(f, bytes.data(), unsigned(bytes.size())) != int(bytes.size())) {
    gzclose(f);
    throw std::runtime_error("gzwrite failed: " + path);
  }
  gzclose(f);
}

std::string idx_bytes(const std::vector<uint32_t>& dims, const std::vector<uint8_t>& data) {
  std::string out = {0, 0, 8, char(dims.size())};
  for (uint32_t d : dims) {
    for (int s = 24; s >= 0; s -= 8) out.push_back(char((d >> s) & 0xff));
  }
  out.append(reinterpret_cast<const char*>(data.data()), data.size());
  return out;
}

void write_synthetic_fashion(const std::string& dir, int64_t n_train, int64_t n_test, uint64_t seed) {
  std::filesystem::create_directories(dir);
  std::mt19937_64 rng(seed);
  for (const auto& [prefix, n] : {std::pair<std::string, int64_t>{"train", n_train}, {"t10k", n_test}}) {
    std::vector<uint8_t> images(size_t(n) * 28 * 28);
    std::vector<uint8_t> labels(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      const int c = int(rng() % 10);
      labels[size_t(i)] = uint8_t(c);
      uint8_t* img = images.data() + i * 28 * 28;
      for (int p = 0; p < 28 * 28; ++p) img[p] = uint8_t(rng() % 64);
      const int y0 = 2 + 12 * (c / 5), x0 = 1 + 5 * (c % 5);  // 2 rows × 5 columns of square positions
      for (int y = y0; y < y0 + 7 && y < 28; ++y) {
        for (int x = x0; x < x0 + 5; ++x) img[y * 28 + x] = uint8_t(192 + rng() % 64);
      }
    }
    write_gz(dir + "/" + prefix + "-images-idx3-ubyte.gz", idx_bytes({uint32_t(n), 28, 28}, images));
    write_gz(dir + "/" + prefix + "-labels-idx1-ubyte.gz", idx_bytes({uint32_t(n)}, labels));
  }
}

void write_jpeg(const std::string& path, const std::vector<uint8_t>& pixels, int w, int h, int channels, int quality) {
  tjhandle tj = tjInitCompress();
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  const int fmt = channels == 3 ? TJPF_RGB : TJPF_GRAY;
  const int sub = channels == 3 ? TJSAMP_444 : TJSAMP_GRAY;
  if (tjCompress2(tj, pixels.data(), w, 0, h, fmt, &buf, &size, sub, quality, TJFLAG_ACCURATEDCT) != 0) {
    tjDestroy(tj);
    throw std::runtime_error("tjCompress2 failed");
  }
  FILE* f = std::fopen(path.c_str(), "wb");
  std::fwrite(buf, 1, size, f);
  std::fclose(f);
  tjFree(buf);
  tjDestroy(tj);
}

}  // namespace mnq_test
