// What requantization's vector paths (requant_simd.cpp: AVX-512; requant_avx2.cpp: AVX2) share: the scalar
// definition for single elements (lanes they could not certify, row tails), and the per-call float32 constants.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "csrc/cpu/requant_simd.h"
#include "csrc/cpu/row_buffer.h"
#include "kernels/quant.h"

namespace mnq {
namespace ops {
namespace cpu {
namespace requant_lanes {

using kernels::Dyadic;
using kernels::i64;

// The code of element i (column c) of one side, as the exact path loads it; false without a code.
inline bool load_one(const RequantSimdSide& s, int64_t i, int64_t c, i64& q) {
  if (s.q != nullptr) return kernels::RequantIntIn<int32_t>{s.q}.load(i, c, q);
  return kernels::RequantFloatIn{s.x, s.s}.load(i, c, q);
}

// The scalar definition for element i of column c (csrc/cpu/requant.cpp requant_range, one element).
template <class Out>
bool requant_one(const RequantSimdSide& in, const RequantSimdSide* id, int64_t i, int64_t c, i64 lo, i64 hi,
                 double out_scale, const Out& out) {
  i64 q = 0, qid = 0;
  if (!load_one(in, i, c, q) || (id != nullptr && !load_one(*id, i, c, qid))) return kernels::no_code(out, i);
  const Dyadic d{in.m[c], static_cast<int>(in.k[c])};
  const i64 v = id != nullptr ? kernels::requant_code(q, d, qid, Dyadic{id->m[c], static_cast<int>(id->k[c])}, lo, hi)
                              : kernels::requant_code(q, d, lo, hi);
  out.store(i, v, out_scale);
  return true;
}

template <class Out>
bool scalar_cols(const RequantSimdSide& in, const RequantSimdSide* id, int64_t base, int64_t c0, int64_t c1, i64 lo,
                 i64 hi, double out_scale, const Out& out) {
  bool ok = true;
  for (int64_t c = c0; c < c1; ++c) ok = requant_one(in, id, base + c, c, lo, hi, out_scale, out) && ok;
  return ok;
}

template <class Out>
bool redo_lanes(const RequantSimdSide& in, const RequantSimdSide* id, int64_t base, int64_t c, unsigned lanes, i64 lo,
                i64 hi, double out_scale, const Out& out) {
  bool ok = true;
  while (lanes != 0) {
    const int l = __builtin_ctz(lanes);
    lanes &= lanes - 1;
    ok = requant_one(in, id, base + c + l, c + l, lo, hi, out_scale, out) && ok;
  }
  return ok;
}

// fl32(1/S) per column of a float input when every 1/|S| is in [2^−100, 2^100] (a normal float32, the range of
// quant_simd.h's certification); else null (int input, or a scale outside: the float64 loader only).
inline const float* float_recip(const RequantSimdSide& s, int64_t cols, RowBuffer<float, 1024>& buf) {
  if (s.q != nullptr) return nullptr;
  const int64_t n = s.distinct(cols);
  for (int64_t c = 0; c < n; ++c) {
    const double a = std::fabs(s.r[c]);
    if (!(a >= 0x1p-100 && a <= 0x1p100)) return nullptr;
    buf.data()[c] = static_cast<float>(s.r[c]);
  }
  if (n < cols) std::fill(buf.data() + n, buf.data() + cols, buf.data()[0]);
  return buf.data();
}

// fl32(md) per column (requant_f32_simd.h: md_fits holds, so each is 0 or a normal float32).
inline const float* float_md(const RequantSimdSide& s, int64_t cols, RowBuffer<float, 1024>& buf) {
  const int64_t n = s.distinct(cols);
  for (int64_t c = 0; c < n; ++c) buf.data()[c] = static_cast<float>(s.md[c]);
  if (n < cols) std::fill(buf.data() + n, buf.data() + cols, buf.data()[0]);
  return buf.data();
}

}  // namespace requant_lanes
}  // namespace cpu
}  // namespace ops
}  // namespace mnq
