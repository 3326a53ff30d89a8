// CPU ShiftGELU: rows in parallel; per row one pass loading the codes into a row buffer with their max and min,
// one writing the output from the buffer (directly or through a table of sig, see rows()). All integer math is
// kernels/shift_gelu.h; the row loop is vectorized per instruction set (csrc/cpu/vectorize.h), so it reads through
// channel_io.h's branch-free loaders (with one channel).
#include "csrc/ops/shift_gelu.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <type_traits>

#include "csrc/cpu/isa.h"
#include "csrc/cpu/row_buffer.h"
#include "csrc/cpu/shift_gelu_simd.h"
#include "csrc/cpu/vectorize.h"
#include "csrc/dispatch.h"
#include "kernels/channel_io.h"

namespace mnq {
namespace ops {
namespace cpu {
namespace {

using namespace mnq::kernels;

// Rows [r0, r1); false at the first row with a code outside [p.lo, p.hi]. buf: [p.cols] scratch. Within a row sig
// depends only on d = q − m, so when the row spans at most cols distinct codes (8-bit activations span ≤ 256: every
// row of 256 or more) it is tabulated over the span and the elements look it up: the same scalar function at the
// same points, so the result is identical. Tables are kept per row max (below), so a row pays for its table only
// when its max is new. Codes and out fit int32 and sig int16 (kernels/shift_gelu.h: |q| ≤ 2^15, 0 ≤ sig <
// 2^(b_out − 1) ≤ 2^15, |out| < 2^30), so the buffer and the product are 32-bit (twice the lanes of int64). The
// table type Tab is int16 for int32 output, a type those stores cannot alias (with an int32 table the lookups are
// not vectorized past them), and int32 for float output, where the lookups vectorize either way and 32-bit gathers
// are the faster. The params are copied to locals: the output stores could otherwise alias them, which blocks
// vectorizing. `simd` (with an int32 table): the tables are built and looked up by shift_gelu_simd.h's AVX-512
// code (GCC emits neither the lookups nor the vector division): a row spanning at most 256 codes from 16-bit tables
// held in registers (VPERMI2W), a wider one by gathers.

// The row tables kept per parallel chunk: slot k < kSlots holds a max m ≡ k (mod kSlots) whose rows span at most
// kSlotLen codes (every row of 8-bit codes; their maxima cluster near the top of the range, so they rarely share a
// slot), slot kSlots the last max of a row spanning more (up to cols). The scalar paths keep every slot in tabs
// (Tab entries); the AVX-512 path keeps the narrow slots in their 16-bit forms (shift_gelu_tables16: the sig
// table, or the two halves of the float values' table, 32 or 64 KiB) in narrow, and only the wide slot in tabs
// (and vtabs, its float values).
constexpr int64_t kSlots = 64, kSlotLen = 256;
inline int64_t table_entries(int64_t cols, bool simd) { return simd ? cols : kSlots * kSlotLen + cols; }
inline int64_t narrow_entries(bool simd, bool values) { return simd ? kSlots * kSlotLen * (values ? 2 : 1) : 0; }

// tabs [table_entries(p.cols, simd)]; vtabs [p.cols] (the simd float-output path only); narrow
// [narrow_entries(simd, float output)]; e1 [p.cols] (simd only): the tables (below). Beside tab[t] = sig(−t),
// vtab[t] is the output value of the code q = m − t, float(double(q·sig)·S_out) as FloatOutC stores it, so that the
// output pass is one lookup per element.
template <class In, class Out, class Tab>
MNQ_CPU_CLONES bool rows(In in, Out out, ShiftGeluParams p, int64_t r0, int64_t r1, int32_t* buf, Tab* tabs,
                         float* vtabs, uint16_t* narrow, int32_t* e1, bool simd) {
  const int64_t cols = p.cols, lo = p.lo, hi = p.hi;
  const ShiftGeluConsts c = p.c;
  constexpr bool kFloatOut = std::is_same_v<Out, FloatOutC>;
  // The table depends on the row max m alone (e2 and sig(−t) do), so rows with the same max share it: slot k
  // holds the tables of the max slot_m[k] for t ∈ [0, slot_len[k]) (extended when a row spans more). Rows of 8-bit
  // codes have few distinct maxima (54 in 3200 rows of 256 on ~40 scale units, where the max changed from one row
  // to the next in 3044), so most rows find their table built.
  i64 slot_m[kSlots + 1], slot_len[kSlots + 1];
  std::fill(slot_m, slot_m + kSlots + 1, INT64_MIN);
  std::fill(slot_len, slot_len + kSlots + 1, 0);
  // simd: e1[t] = shift_exp(−t) for t ∈ [0, e1_len), the part of sig that does not depend on the row (1 ≤ e1 ≤
  // 2^31 − 1: kernels/shift_gelu.h), so that a table is built in vector steps (shift_gelu_tables) instead of a
  // scalar sig — a float64 division — per entry.
  i64 e1_len = 0;
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t base = r * cols;
    int32_t m = INT32_MIN, mn = INT32_MAX;
    const int32_t* q = buf;  // the row's codes
    if constexpr (std::is_same_v<In, IntInC<int32_t>>) {
      if (simd) {  // int32 codes are read in place (lo, hi are 16-bit: exact in int32)
        if (!shift_gelu_max_min(in.p + base, cols, static_cast<int32_t>(lo), static_cast<int32_t>(hi), m, mn)) {
          return false;
        }
        q = in.p + base;
      }
    }
    if constexpr (std::is_same_v<In, FloatInC32>) {
      if (simd) {  // float32 values rounded into buf (FloatInC32's codes, one channel)
        if (!shift_gelu_codes(in.p + base, cols, in.inv_scale[0], static_cast<int32_t>(lo), static_cast<int32_t>(hi),
                              buf, m, mn)) {
          return false;
        }
        q = nullptr;  // buf holds the codes
      }
    }
    if (q == nullptr) {
      q = buf;
    } else if (q == buf) {
      i64 ok = 1;
      for (int64_t j = 0; j < cols; ++j) buf[j] = static_cast<int32_t>(in.load(base + j, 0, lo, hi, ok));
      if (!ok) return false;
      for (int64_t j = 0; j < cols; ++j) {
        m = buf[j] > m ? buf[j] : m;
        mn = buf[j] < mn ? buf[j] : mn;
      }
    }
    const i64 span = static_cast<i64>(m) - mn + 1;
    // The loops below read buf only (a pointer that may alias the output would keep them scalar).
    if (q != buf && !(simd && span <= cols)) std::copy(q, q + cols, buf);
    if (span <= cols) {
      const bool is_narrow = span <= kSlotLen;
      const int64_t k = is_narrow ? m & (kSlots - 1) : kSlots;  // (m mod 64 of a negative m too)
      if (slot_m[k] != m) {
        slot_m[k] = m;
        slot_len[k] = 0;
      }
      const i64 tab_len = slot_len[k];
      slot_len[k] = tab_len > span ? tab_len : span;
      // The row's capped e2 (a scalar shift_exp and division) only where entries are built.
      const i64 e2 = tab_len < span ? shift_gelu_e2(m, c) : 0;
      if constexpr (std::is_same_v<Tab, int32_t>) {
        if (simd) {
          if (tab_len < span) {
            for (; e1_len < span; ++e1_len) e1[e1_len] = static_cast<int32_t>(shift_exp(-e1_len, c.se));
          }
          double s_out = 0.0;
          if constexpr (kFloatOut) s_out = out.scale[0];
          if (is_narrow) {  // 16-bit tables in registers
            uint16_t* const nt = narrow + k * kSlotLen * (kFloatOut ? 2 : 1);
            if constexpr (kFloatOut) {
              if (tab_len < span) shift_gelu_tables16(e1, tab_len, span, e2, c.out_shift, m, s_out, nullptr, nt,
                                                      nt + kSlotLen);
              shift_gelu_lookup16(q, cols, m, nt, nt + kSlotLen, out.p + base);  // buf
            } else {
              if (tab_len < span) shift_gelu_tables16(e1, tab_len, span, e2, c.out_shift, m, 0.0, nt, nullptr,
                                                      nullptr);
              shift_gelu_lookup16(q, cols, m, nt, out.p + base);  // q: the input row, or buf
            }
          } else {  // the wide slot: gathers
            if (tab_len < span) {
              shift_gelu_tables(e1, tab_len, span, e2, c.out_shift, m, s_out, tabs, kFloatOut ? vtabs : nullptr);
            }
            if constexpr (kFloatOut) {
              shift_gelu_lookup(q, cols, m, vtabs, out.p + base);  // buf
            } else {
              shift_gelu_lookup(q, cols, m, tabs, out.p + base);
            }
          }
          continue;
        }
      }
      Tab* const tab = tabs + k * kSlotLen;
      for (i64 t = tab_len; t < span; ++t) tab[t] = static_cast<Tab>(shift_gelu_sig(-t, e2, c));
      for (int64_t j = 0; j < cols; ++j) out.store(base + j, 0, buf[j] * static_cast<int32_t>(tab[m - buf[j]]));
    } else {
      const i64 e2 = shift_gelu_e2(m, c);
      for (int64_t j = 0; j < cols; ++j) out.store(base + j, 0, shift_gelu_out(buf[j], m, e2, c));
    }
  }
  return true;
}

template <class Tab, class In, class Out>
bool run(In in, Out out, const ShiftGeluParams& p, bool simd = false) {
  std::atomic<bool> all_ok{true};
  const int64_t grain = std::max<int64_t>(1, 16384 / p.cols);
  constexpr bool kFloatOut = std::is_same_v<Out, FloatOutC>;
  at::parallel_for(0, p.rows, grain, [&](int64_t r0, int64_t r1) {
    RowBuffer<int32_t> buf(p.cols);
    RowBuffer<Tab> tab(table_entries(p.cols, simd));
    RowBuffer<float> vtab(kFloatOut && simd ? p.cols : 0);
    RowBuffer<uint16_t> narrow(narrow_entries(simd, kFloatOut));
    RowBuffer<int32_t> e1(simd ? p.cols : 0);
    if (!rows(in, out, p, r0, r1, buf.data(), tab.data(), vtab.data(), narrow.data(), e1.data(), simd)) {
      all_ok = false;
    }
  });
  return all_ok;
}

bool use_simd() { return isa() == Isa::kAvx512; }

}  // namespace

bool shift_gelu(const at::Tensor& in, const at::Tensor& out, const ShiftGeluParams& p, double inv_scale,
                double out_scale) {
  if (in.scalar_type() == at::kFloat) {
    return run<int32_t>(FloatInC32{in.data_ptr<float>(), &inv_scale}, FloatOutC{out.data_ptr<float>(), &out_scale}, p,
                        use_simd());
  }
  if (use_simd()) {
    return MNQ_DISPATCH_INT(in.scalar_type(), "shift_gelu", [&] {
      return run<int32_t>(IntInC<scalar_t>{in.data_ptr<scalar_t>()}, IntOutC<int32_t>{out.data_ptr<int32_t>()}, p,
                          true);
    });
  }
  return MNQ_DISPATCH_INT(in.scalar_type(), "shift_gelu", [&] {
    return run<int16_t>(IntInC<scalar_t>{in.data_ptr<scalar_t>()}, IntOutC<int32_t>{out.data_ptr<int32_t>()}, p);
  });
}

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
