// libFuzzer harness: the safetensors reader (csrc/models/safetensors.cpp) on arbitrary bytes as a whole file.
// Every input must either read or throw std::invalid_argument; ASan/UBSan report anything else.
#include <cstring>
#include <stdexcept>

#include "csrc/models/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const mnq::models::ReadAt read = [&](uint64_t offset, void* dst, uint64_t n) {
    if (offset > size || n > size - offset) return false;
    if (n > 0) std::memcpy(dst, data + offset, n);
    return true;
  };
  try {
    mnq::models::read_safetensors_from(read, size, "fuzz");
  } catch (const std::invalid_argument&) {
  }
  return 0;
}
