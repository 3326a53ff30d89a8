// Function multi-versioning for the CPU row loops. The annotated function is compiled for x86-64-v4 (AVX-512),
// AVX2 and the baseline, and the loader picks the best one for the running CPU (ifunc), so the inner loops
// vectorize on current x86 without raising the build's minimum CPU. Results do not depend on the clone: integer
// arithmetic is exact, and IEEE +, −, ×, ÷ and rint round identically in every instruction set; FMA contraction
// stays off (-ffp-contract=off), so no clone fuses a multiply and an add.
#pragma once

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define MNQ_CPU_CLONES __attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#else
#define MNQ_CPU_CLONES
#endif
