// The run-time choice of the CPU ops' vector path (isa.h).
#include "csrc/cpu/isa.h"

#include <c10/util/Exception.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace mnq {
namespace ops {
namespace cpu {
namespace {

Isa parse(const char* name, const char* where) {
  if (std::strcmp(name, "scalar") == 0) return Isa::kScalar;
  if (std::strcmp(name, "avx2") == 0) return Isa::kAvx2;
  if (std::strcmp(name, "avx512") == 0) return Isa::kAvx512;
  TORCH_CHECK_VALUE(false, where, " = '", name, "' is not a CPU path; expected scalar, avx2 or avx512");
  return Isa::kScalar;
}

Isa detect() {
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  // The AVX-512 paths use F (512-bit ops), DQ (64-bit multiplies, conversions), BW and VL (masked byte/word ops).
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl")) {
    return Isa::kAvx512;
  }
  // The AVX2 paths are compiled with FMA (simd.h MNQ_TARGET_AVX2), which every AVX2 CPU of Intel and AMD has.
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::kAvx2;
#endif
  return Isa::kScalar;
}

std::atomic<int>& cap() {
  static std::atomic<int> c{[] {
    const char* env = std::getenv("MNQ_CPU_ISA");
    return static_cast<int>(env != nullptr && *env != '\0' ? parse(env, "MNQ_CPU_ISA") : Isa::kAvx512);
  }()};
  return c;
}

}  // namespace

Isa supported_isa() {
  static const Isa best = detect();
  return best;
}

Isa isa() {
  const int c = cap().load(std::memory_order_relaxed);
  const int s = static_cast<int>(supported_isa());
  return static_cast<Isa>(c < s ? c : s);
}

const char* isa_name(Isa v) {
  switch (v) {
    case Isa::kAvx512:
      return "avx512";
    case Isa::kAvx2:
      return "avx2";
    default:
      return "scalar";
  }
}

const char* set_isa(const char* name) {
  const Isa v = parse(name, "cpu isa");
  return isa_name(static_cast<Isa>(cap().exchange(static_cast<int>(v))));
}

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
