// mnq_isa_probe: the throughput of the 512-bit instructions the AVX-512 kernels (csrc/cpu/*_simd*) are made of, on
// the machine it runs on, and which of them compete for the same execution units. Not a test: a tool for tuning,
// since the development machine's CPU changes between sessions (AMD Zen 4 and Zen 5, Intel Xeon) and a rewrite that
// wins on one can lose on another (docs/PERFORMANCE.md, twelfth session).
//
//   build/cmake/tests/cpp/mnq_isa_probe [--pairs]
//
// Each line times one operation applied to 8 independent registers, 8 per loop iteration (8 chains hide a latency
// of up to 8 cycles at one operation per cycle), the least of 5 runs, in ns per operation and relative to VADDPS
// zmm. `--pairs` also times two operations interleaved: a pair that takes as long as its slower member runs on
// separate units (both issue each cycle), one that takes the sum of both shares a unit. On a 2-core shared machine
// run it with nothing else running; the numbers are per core.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "csrc/cpu/isa.h"
#include "csrc/cpu/simd.h"

#if defined(MNQ_HAVE_X86_SIMD)
namespace {

constexpr long kIters = 4'000'000;
volatile float g_sink;

// The least wall time of 5 runs of f, in seconds.
template <class F>
double least_time(const F& f) {
  double best = 1e30;
  for (int r = 0; r < 5; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

// The operations, each a function of one register (constants as in the kernels). Integer and float64 operations
// reinterpret the register; the values do not matter for throughput (no denormals: the chains stay near 1).
// (Inlined into chains(), the constants' broadcasts leave the loop.)
#define MNQ_PROBE_OP(name, expr)                                                                            \
  MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE __m512 name(__m512 v) {                                             \
    const __m512 kC = _mm512_set1_ps(1.0000001f), kD = _mm512_set1_ps(1e-7f);                             \
    const __m512i kOne = _mm512_set1_epi32(1);                                                            \
    const __m512i kIdx = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);   \
    (void)kC, (void)kD, (void)kOne, (void)kIdx;                                                           \
    return expr;                                                                                          \
  }
constexpr int kNear = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE __m512i bits(__m512 v) { return _mm512_castps_si512(v); }
MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE __m512 flt(__m512i v) { return _mm512_castsi512_ps(v); }
MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE __m512d dbl(__m512 v) { return _mm512_castps_pd(v); }
MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE __m512 back(__m512d v) { return _mm512_castpd_ps(v); }

MNQ_PROBE_OP(op_addps, _mm512_add_ps(v, kD))
MNQ_PROBE_OP(op_mulps, _mm512_mul_ps(v, kC))
MNQ_PROBE_OP(op_fmaps, _mm512_fmadd_ps(v, kC, kD))
MNQ_PROBE_OP(op_fmaps_rn, _mm512_fmadd_round_ps(v, kC, kD, kNear))
MNQ_PROBE_OP(op_fmapd, back(_mm512_fmadd_pd(dbl(v), dbl(kC), dbl(kD))))
MNQ_PROBE_OP(op_maxps, _mm512_max_ps(v, kD))
MNQ_PROBE_OP(op_rangeps, _mm512_range_ps(v, kC, 0x0B))
MNQ_PROBE_OP(op_rndscaleps, _mm512_roundscale_ps(v, kNear))
MNQ_PROBE_OP(op_reduceps, _mm512_reduce_ps(v, kNear))
MNQ_PROBE_OP(op_cvtdq2ps, _mm512_cvtepi32_ps(bits(v)))
MNQ_PROBE_OP(op_cvtps2dq, flt(_mm512_cvtps_epi32(v)))
MNQ_PROBE_OP(op_cvtdq2pd, back(_mm512_cvtepi32_pd(_mm512_castsi512_si256(bits(v)))))
MNQ_PROBE_OP(op_cvtps2pd, back(_mm512_cvtps_pd(_mm512_castps512_ps256(v))))
MNQ_PROBE_OP(op_cvtpd2ps, _mm512_castps256_ps512(_mm512_cvtpd_ps(dbl(v))))
MNQ_PROBE_OP(op_paddd, flt(_mm512_add_epi32(bits(v), kOne)))
MNQ_PROBE_OP(op_pmaxsd, flt(_mm512_max_epi32(bits(v), kOne)))
MNQ_PROBE_OP(op_pternlogd, flt(_mm512_ternarylogic_epi32(bits(v), kOne, kIdx, 0xF8)))
MNQ_PROBE_OP(op_psllvd, flt(_mm512_sllv_epi32(bits(v), kOne)))
MNQ_PROBE_OP(op_pmuldq, flt(_mm512_mul_epi32(bits(v), kIdx)))
MNQ_PROBE_OP(op_permt2d, flt(_mm512_permutex2var_epi32(bits(v), kIdx, kOne)))
MNQ_PROBE_OP(op_pmovzxdq, flt(_mm512_cvtepu32_epi64(_mm512_castsi512_si256(bits(v)))))
// a compare into a mask register consumed by a masked blend (the kernels' certification tests)
MNQ_PROBE_OP(op_cmpps_blend, _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, kC, _CMP_LT_OQ), v, kD))
#undef MNQ_PROBE_OP

using Op = __m512 (*)(__m512);

// ns per application of A (with B = A), or per interleaved pair A, B, over 8 independent chains. The operations
// are template arguments, so that they are inlined into the loop.
template <Op A, Op B>
MNQ_TARGET_AVX512 double chains() {
  const __m512 init = _mm512_set1_ps(1.0f);
  const double t = least_time([&]() MNQ_TARGET_AVX512 {
    __m512 v0 = init, v1 = init, v2 = init, v3 = init, v4 = init, v5 = init, v6 = init, v7 = init;
    for (long i = 0; i < kIters; ++i) {
      v0 = A(v0);
      v1 = B(v1);
      v2 = A(v2);
      v3 = B(v3);
      v4 = A(v4);
      v5 = B(v5);
      v6 = A(v6);
      v7 = B(v7);
      // keeps every chain in a register and every operation in the loop
      __asm__ volatile("" : "+v"(v0), "+v"(v1), "+v"(v2), "+v"(v3), "+v"(v4), "+v"(v5), "+v"(v6), "+v"(v7));
    }
    g_sink = _mm512_cvtss_f32(_mm512_add_ps(_mm512_add_ps(v0, v7), _mm512_add_ps(v3, v4)));
  });
  return t * 1e9 / (kIters * 8.0);
}

struct Entry {
  const char* name;
  double (*time)();  // ns per operation
};
const Entry kOps[] = {
    {"vaddps", chains<op_addps, op_addps>},
    {"vmulps", chains<op_mulps, op_mulps>},
    {"vfmadd231ps", chains<op_fmaps, op_fmaps>},
    {"vfmadd231ps {rn-sae}", chains<op_fmaps_rn, op_fmaps_rn>},
    {"vfmadd231pd", chains<op_fmapd, op_fmapd>},
    {"vmaxps", chains<op_maxps, op_maxps>},
    {"vrangeps", chains<op_rangeps, op_rangeps>},
    {"vrndscaleps", chains<op_rndscaleps, op_rndscaleps>},
    {"vreduceps", chains<op_reduceps, op_reduceps>},
    {"vcvtdq2ps", chains<op_cvtdq2ps, op_cvtdq2ps>},
    {"vcvtps2dq", chains<op_cvtps2dq, op_cvtps2dq>},
    {"vcvtdq2pd (ymm -> zmm)", chains<op_cvtdq2pd, op_cvtdq2pd>},
    {"vcvtps2pd (ymm -> zmm)", chains<op_cvtps2pd, op_cvtps2pd>},
    {"vcvtpd2ps (zmm -> ymm)", chains<op_cvtpd2ps, op_cvtpd2ps>},
    {"vpaddd", chains<op_paddd, op_paddd>},
    {"vpmaxsd", chains<op_pmaxsd, op_pmaxsd>},
    {"vpternlogd", chains<op_pternlogd, op_pternlogd>},
    {"vpsllvd", chains<op_psllvd, op_psllvd>},
    {"vpmuldq", chains<op_pmuldq, op_pmuldq>},
    {"vpermt2d", chains<op_permt2d, op_permt2d>},
    {"vpmovzxdq (ymm -> zmm)", chains<op_pmovzxdq, op_pmovzxdq>},
    {"vcmpps k + vblendmps", chains<op_cmpps_blend, op_cmpps_blend>},
};

// Pairs worth knowing for the kernels: the adder-class and multiplier-class float operations and the conversions.
struct Pair {
  const char *a, *b;
  double (*time)();  // ns per pair
};
const Pair kPairs[] = {
    {"vfmadd231ps", "vaddps", chains<op_fmaps, op_addps>},
    {"vfmadd231ps", "vfmadd231ps", chains<op_fmaps, op_fmaps>},
    {"vaddps", "vaddps", chains<op_addps, op_addps>},
    {"vaddps", "vmaxps", chains<op_addps, op_maxps>},
    {"vfmadd231ps", "vmaxps", chains<op_fmaps, op_maxps>},
    {"vaddps", "vrndscaleps", chains<op_addps, op_rndscaleps>},
    {"vfmadd231ps", "vrndscaleps", chains<op_fmaps, op_rndscaleps>},
    {"vaddps", "vcvtdq2ps", chains<op_addps, op_cvtdq2ps>},
    {"vfmadd231ps", "vcvtdq2ps", chains<op_fmaps, op_cvtdq2ps>},
    {"vaddps", "vcvtps2dq", chains<op_addps, op_cvtps2dq>},
    {"vfmadd231ps", "vcvtps2dq", chains<op_fmaps, op_cvtps2dq>},
    {"vaddps", "vrangeps", chains<op_addps, op_rangeps>},
    {"vfmadd231ps", "vrangeps", chains<op_fmaps, op_rangeps>},
    {"vaddps", "vpaddd", chains<op_addps, op_paddd>},
    {"vfmadd231ps", "vpaddd", chains<op_fmaps, op_paddd>},
    {"vfmadd231ps", "vpmuldq", chains<op_fmaps, op_pmuldq>},
    {"vaddps", "vpmuldq", chains<op_addps, op_pmuldq>},
    {"vfmadd231ps", "vcmpps k + vblendmps", chains<op_fmaps, op_cmpps_blend>},
    {"vaddps", "vcmpps k + vblendmps", chains<op_addps, op_cmpps_blend>},
};

double single(const char* name) {
  for (const Entry& e : kOps) {
    if (std::strcmp(e.name, name) == 0) return e.time();
  }
  return 0.0;
}

}  // namespace

int main(int argc, char** argv) {
  bool pairs = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--pairs") == 0) {
      pairs = true;
    } else {
      std::fprintf(stderr, "mnq_isa_probe: unknown argument '%s' (usage: mnq_isa_probe [--pairs])\n", argv[i]);
      return 2;
    }
  }
  using mnq::ops::cpu::Isa;
  if (mnq::ops::cpu::supported_isa() != Isa::kAvx512) {
    std::printf("mnq_isa_probe: this CPU has no AVX-512 (the kernels take their %s paths): nothing to probe\n",
                mnq::ops::cpu::isa_name(mnq::ops::cpu::supported_isa()));
    return 0;
  }
  const double ref = chains<op_addps, op_addps>();
  std::printf("%-26s %9s %9s\n", "zmm operation", "ns/op", "x vaddps");
  for (const Entry& e : kOps) {
    const double t = e.time();
    std::printf("%-26s %9.3f %9.2f\n", e.name, t, t / ref);
  }
  if (pairs) {
    std::printf("\n%-46s %9s %9s %9s  %s\n", "interleaved pair", "ns/pair", "max", "sum", "verdict");
    for (const auto& p : kPairs) {
      const double ta = single(p.a), tb = single(p.b), tp = 2.0 * p.time();
      const double mx = std::max(ta, tb), sum = ta + tb;
      const char* verdict = tp < mx + 0.25 * (sum - mx) ? "separate units" : tp > sum - 0.25 * (sum - mx)
                                                                                   ? "shared unit"
                                                                                   : "partly shared";
      const std::string name = std::string(p.a) + " + " + p.b;
      std::printf("%-46s %9.3f %9.3f %9.3f  %s\n", name.c_str(), tp, mx, sum, verdict);
    }
  }
  return 0;
}
#else
int main() {
  std::printf("mnq_isa_probe: built without x86 vector paths: nothing to probe\n");
  return 0;
}
#endif
