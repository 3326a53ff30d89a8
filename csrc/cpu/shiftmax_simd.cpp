// Shiftmax's AVX-512 row path (shiftmax_simd.h).
#include "csrc/cpu/shiftmax_simd.h"

#include <cstring>

#include "csrc/cpu/row_codes_simd.h"
#include "csrc/cpu/simd.h"
#include "kernels/io.h"

namespace mnq {
namespace ops {
namespace cpu {
namespace {

using kernels::i64;
using kernels::ShiftmaxParams;

// Whether float(double(v)·scale) = float32(v)·float32(scale) for every 0 ≤ v < 2^24: scale a power of two whose
// products stay normal float32 (v·scale ∈ [2^−100, 2^124) for v ≥ 1).
// (From the bits: a few instructions per row.)
bool pow2_scale(double scale) {
  uint64_t b = 0;
  std::memcpy(&b, &scale, sizeof b);
  const int64_t e = static_cast<int64_t>(b >> 52) - 1023;  // the sign bit makes a negative scale fail
  return (b & ((uint64_t{1} << 52) - 1)) == 0 && e >= -100 && e <= 100;
}

#if defined(MNQ_HAVE_X86_SIMD)
// out = (e·f) >> shift in 16 lanes, written as codes or values.
MNQ_TARGET_AVX512 MNQ_ALWAYS_INLINE void write(const int32_t* e, int64_t cols, int32_t f, int shift,
                                                const IbertSoftmaxRowOut& out) {
  const __m512i vf = _mm512_set1_epi32(f);
  const __m128i sh = _mm_cvtsi32_si128(shift);
  int32_t* const code = out.code;
  float* const value = out.value;
  const __m512 sc = _mm512_set1_ps(static_cast<float>(out.scale));
  for (int64_t j = 0; j < cols; j += 16) {
    const __mmask16 k = simd_lanes16(cols - j);
    // e·f ≤ 2^31 − 1 (kernels/shiftmax.h): the low 32 bits are the product, and the shift is logical as in uint32.
    const __m512i v = _mm512_srl_epi32(_mm512_mullo_epi32(_mm512_loadu_si512(e + j), vf), sh);  // e: padded
    if (code != nullptr) {
      _mm512_mask_storeu_epi32(code + j, k, v);
    } else {  // float(double(v)·S) = float32(v)·float32(S) for S = 2^−(b_out − 1) (pow2_scale, header)
      _mm512_mask_storeu_ps(value + j, k, _mm512_mul_ps(_mm512_cvtepi32_ps(v), sc));
    }
  }
}

MNQ_TARGET_AVX512 bool rows_avx512(const IbertSoftmaxRowIn& in, const ShiftmaxParams& p, const int32_t* tab,
                                   uint32_t lim, const SoftmaxTable16* t16, int32_t* buf, const IbertSoftmaxRowOut& out,
                                   int64_t r0, int64_t r1) {
  const bool fast_store = out.value == nullptr || pow2_scale(out.scale);
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t base = r * p.cols;
    const IbertSoftmaxRowIn ri = in.at(base);
    const IbertSoftmaxRowOut ro = out.at(base);
    i64 s = 0;
    if (!row_table_softmax_exps(ri.q, ri.x, ri.inv_scale, p.cols, p.lo, p.hi, tab, lim, t16, buf, s)) return false;
    const int32_t f = kernels::shiftmax_factor(s);
    if (fast_store) {
      write(buf, p.cols, f, p.c.out_shift, ro);
    } else {  // another S_out (not the op's): the scalar store
      for (int64_t j = 0; j < p.cols; ++j) {
        kernels::FloatOut{ro.value, ro.scale}.store(j, kernels::shiftmax_out(buf[j], f, p.c));
      }
    }
  }
  return true;
}
#endif

}  // namespace

bool shiftmax_rows(const IbertSoftmaxRowIn& in, const ShiftmaxParams& p, const int32_t* tab, uint32_t lim,
                   const SoftmaxTable16* t16, int32_t* buf, const IbertSoftmaxRowOut& out, int64_t r0, int64_t r1) {
#if defined(MNQ_HAVE_X86_SIMD)
  return rows_avx512(in, p, tab, lim, t16, buf, out, r0, r1);
#else
  return false;
#endif
}

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
