// MNQ_CPU_CLONES marks the row loops of the CPU ops, so their inner loops are compiled with vector instructions.
//
// The default build compiles csrc/cpu/ with -march=${MNQ_CPU_ARCH} (native): the loops are vectorized for the
// build machine directly and MNQ_CPU_CLONES is empty (CMake defines MNQ_CPU_ARCH_FIXED). It must be: a
// target_clones clone ("arch=x86-64-v4") has other target options than the -march=native helpers it calls
// (kernels/*.h, io.h loaders), and GCC will not inline a callee across a target mismatch; the helpers that early
// inlining (before cloning) leaves alone then become one call per element, and the loop does not vectorize.
// That made the float (QAT) loaders of the LayerNorms, GELUs and PTF LayerNorm several times slower than their
// integer forms.
//
// In a portable build (MNQ_CPU_ARCH empty, baseline x86-64, where int64 multiplies and float64 division do not
// vectorize) the annotated function is compiled for x86-64-v4 (AVX-512), AVX2 and the baseline, and the loader
// picks the best for the running CPU (GCC target_clones, an ifunc). Results do not depend on the clone or the
// -march: integer math is exact in any instruction set, and the float64 steps (rint(x·(1/S)), int64 → float64 →
// float32 output, exact quotients) are single IEEE operations, never contracted (-ffp-contract=off).
// Other compilers and targets get the plain function.
#pragma once

#if !defined(MNQ_CPU_ARCH_FIXED) && defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    defined(__linux__)
#define MNQ_CPU_CLONES __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define MNQ_CPU_CLONES
#endif
