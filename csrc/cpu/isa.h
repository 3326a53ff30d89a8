// Which instruction set the CPU ops' explicit vector paths use (csrc/cpu/*_simd.cpp).
//
// The scalar functions of kernels/<op>.h are the definition of every op; a vector path computes the same values
// (tests prove it element for element against the scalar definition on every path: tests/cpp/ops/test_simd.cpp,
// test_simd_rows.cpp, tests/python/test_quant.py, test_cpu_paths.py, test_cpu_paths_quant.py). The path is chosen at
// run time: the best the running CPU supports, capped by the environment variable MNQ_CPU_ISA (scalar | avx2 |
// avx512, read once) or by set_isa (the test hook), so a build works, and gives the same results, on a machine
// without AVX-512 or without AVX2, and the tests can run each path on one machine.
#pragma once

namespace mnq {
namespace ops {
namespace cpu {

enum class Isa : int { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

// The path the ops take now: min(best supported by this CPU and this build, the cap).
Isa isa();

// The best path the CPU supports (ignoring the cap).
Isa supported_isa();

// Sets the cap (the test hook; "scalar", "avx2" or "avx512"; a cap above what the CPU supports selects the best
// supported) and returns the previous cap's name. An unknown name is an error.
const char* set_isa(const char* name);

const char* isa_name(Isa v);

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
