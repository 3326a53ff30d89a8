// Shared by the explicit vector paths (csrc/cpu/*_simd.cpp): the intrinsics header and the target attributes
// that compile one function for AVX-512 or AVX2 whatever the file's -march, so every x86-64 build holds both
// and isa.h picks one at run time. Other compilers and targets get the scalar paths only (isa.cpp detects AVX2 and
// AVX-512 under the same condition, so isa() == kAvx512 implies that the vector paths are compiled in).
#pragma once

#if defined(__x86_64__) && defined(__GNUC__)
// GCC 12 flags the deliberately undefined registers of its own AVX-512 intrinsics (_mm512_undefined_*, e.g. inside
// _mm512_reduce_max_epi32) as "(maybe) used uninitialized" once they are inlined at -O3: a false positive in the
// compiler's header, silenced here.
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif
#include <immintrin.h>
#define MNQ_HAVE_X86_SIMD 1
#define MNQ_TARGET_AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl")))
// AVX2 with FMA: isa.cpp takes the AVX2 paths only on CPUs with both (every AVX2 CPU of Intel and AMD has FMA).
#define MNQ_TARGET_AVX2 __attribute__((target("avx2,fma")))
// For small vector helpers GCC may otherwise leave out of line (a call per 8 lanes, its vectors through memory).
#define MNQ_ALWAYS_INLINE inline __attribute__((always_inline))

// Whether MXCSR rounds to nearest (the default; checked per call by the AVX2 forms whose proofs need it). AVX2 has no
// embedded rounding: its FMAs, adds and multiplies round as MXCSR says, where the AVX-512 forms name round-to-nearest
// in the instruction.
inline bool mxcsr_round_nearest() { return (_mm_getcsr() & 0x6000u) == 0; }

// A rare call out of a vector loop, kept out of line (noinline, cold): a block's fallback inlined into the loop (its
// own float64 / int64 forms) takes the loop's registers, and the loop's constants are then spilled and reloaded
// every block (requant_qat onto 16 bits, 2026-12-08: 6-7% of its time).
template <class F, class... A>
MNQ_TARGET_AVX512 __attribute__((noinline, cold)) bool cold_call_avx512(const F& f, A... a) {
  return f(a...);
}
template <class F, class... A>
MNQ_TARGET_AVX2 __attribute__((noinline, cold)) bool cold_call_avx2(const F& f, A... a) {
  return f(a...);
}

// The rounding certificate of the float32 vector paths (the proof is quant_simd.h's): with e = v − rint(v) (from
// vreduceps, exact), u = fl(k·|v| + |e|) < 1/2 implies — rounding is monotone and 1/2 a float — that v is farther
// than k·|v| from every half-integer, so a value within k·|v| of v rounds as v does (and is no tie), and
// |v| < 1/(2k). The lanes where it holds; NaN and ±inf fail (u is NaN or inf).
MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE __mmask16 rint_margin_lanes(__m512 v, __m512 e, float k) {
  const __m512 abs_mask = _mm512_castsi512_ps(_mm512_set1_epi32(0x7fffffff));
  const __m512 u = _mm512_fmadd_ps(_mm512_and_ps(v, abs_mask), _mm512_set1_ps(k), _mm512_and_ps(e, abs_mask));
  return _mm512_cmp_ps_mask(u, _mm512_set1_ps(0.5f), _CMP_LT_OQ);
}
#endif
