// libFuzzer harness: the IDX reader (csrc/data/idx.cpp) on arbitrary bytes, as a gzip or plain file (zlib reads
// both), through images (idx3) and labels (idx1). Every input must read or throw std::runtime_error.
#include <unistd.h>

#include <cstdio>
#include <stdexcept>
#include <string>

#include "csrc/data/idx.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/dev/shm/mnq_fuzz_idx_" + std::to_string(::getpid());
  if (FILE* f = std::fopen(path.c_str(), "wb")) {
    std::fwrite(data, 1, size, f);
    std::fclose(f);
  } else {
    return 0;
  }
  for (bool images : {true, false}) {
    try {
      const at::Tensor t = images ? mnq::data::read_idx_images(path) : mnq::data::read_idx_labels(path);
      if (t.numel() > 0 && t.data_ptr() == nullptr) __builtin_trap();
    } catch (const std::runtime_error&) {
    }
  }
  return 0;
}
