// MNQ_CPU_CLONES: compile a CPU loop for AVX-512 (x86-64-v4), AVX2 and baseline x86-64, and let the loader pick
// the best for the running CPU once (GCC target_clones, an ifunc). The library is built for baseline x86-64, where
// the compiler cannot vectorize int64 multiplies or float64 division; the clones can. Results do not depend on
// the clone: integer math is exact in any instruction set, and the float64 steps (io.h's rint(x·(1/S)), int64 →
// float64 → float32 output, exact quotients) are single IEEE operations, never contracted (-ffp-contract=off).
// Other compilers and targets get the plain function.
#pragma once

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define MNQ_CPU_CLONES __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define MNQ_CPU_CLONES
#endif
