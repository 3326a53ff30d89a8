// PTF LayerNorm's AVX-512 row path (kernels/ptf_layernorm.h), equal to the scalar definition element by element.
//
// Pass 1 (ptf_load_row): the codes of a row (int32 codes, or float32 values on per-channel scales, rounded as
// kernels/layernorm_common.h's ln_float_code does: rint(x·(1/S[c])) in float64), shifted to the common scale,
// x = q·2^sh[c] (|x| ≤ 2^18, so 32-bit lanes), into a row buffer with Σx and Σx². Σx is accumulated in 16 int32
// lanes (each lane sums at most C/16 ≤ 2^12 terms of |x| ≤ 2^18: < 2^31) and Σx² in 8 int64 lanes.
//
// Pass 2 (ptf_out_row): the division-free element formula of kernels/ptf_layernorm_fast.h, 8 float64 lanes at a
// time, with the same IEEE operations in the same order (the power-of-two scalings ·2^N and ·2^−N are exact
// either way; here they are VSCALEFPD, and floor(log2|A'|) of a normal A' is VGETEXPPD). The certification of
// ptf_layernorm_fast.h decides per lane; the lanes it cannot certify (a few per million) are recomputed right
// away with ptf_out, the definition. So the output is ptf_out's on every element.
//
// Pass 2 has a shorter form for the common row (ptf_out_row with PtfScaled): every channel's N unclamped, which a
// per-row test on min/max |C·γ|·fl(1/den) decides. There sign(A)·M/2^N is A' with its low 45 mantissa bits
// cleared, B/2^N is w'/2^N rounded to a multiple of 2^−N by adding and subtracting 1.5·2^(52−N) (built from the
// exponent bits of A'), with w'/2^N = fl(β/S_next − fl(Σx/std)·fl(γ/S_next)), one FMA from two per-call channel vectors;
// the element is then one FMA and a rounding, and both certifications are bit tests and compares. The error bound
// (ptf_layernorm_simd.cpp) fits in the certification of ptf_layernorm_fast.h, with a per-row bound W on |w'| in
// place of the per-element 2^−48·|w'|. About 18 vector instructions per 8 elements instead of 36.
//
// With float32 copies of the channel values (ptf_scaled_consts32), a row that passes its tests takes pass 2 in
// float32 lanes, 16 channels per step, certified with wider margins (ptf_layernorm_simd32.cpp, ptf_out_row32):
// about 21 vector instructions per 16 elements; its float32 values are stored through fake_store32's certified pair
// where ptf_out32 allows (codes in [−512, 511], the others redone).
//
// Other instruction sets (and inputs of other dtypes) take the row loops of csrc/cpu/ptf_layernorm.cpp, which the
// compiler vectorizes for the build's -march and which compute the same values.
#pragma once

#include <cstdint>
#include <vector>

#include "csrc/cpu/fake_store_simd.h"
#include "kernels/ptf_layernorm_fast.h"

namespace mnq {
namespace ops {
namespace cpu {

// One row's input: int32 codes q, or float32 values x with inv_scale [C] = 1/S[c] (exactly one of q, x set), and
// optionally inv32 [C] = fl32(1/S[c]), each normal in [2^−100, 2^100] (ptf_inv32): then pass 1 tries float32 codes
// first, 16 lanes, certified as row_codes_simd.h does.
struct PtfRowIn {
  const int32_t* q = nullptr;
  const float* x = nullptr;
  const double* inv_scale = nullptr;
  const float* inv32 = nullptr;
  PtfRowIn at(int64_t i) const {  // the same at element i (a row's start)
    PtfRowIn r = *this;
    if (r.q != nullptr) r.q += i;
    if (r.x != nullptr) r.x += i;
    return r;
  }
};

// One row's output: int64 codes, or float32 values v·scale (exactly one of code, value set). For values, out32
// (ptf_out32) set: fake_store32's pair (csrc/cpu/fake_store_simd.h) certifies fl32(fl64(v)·scale) as
// fma(v, s_hi, fl32(v·s_lo)) for every code v in [−kPtfOut32Max − 1, kPtfOut32Max], which the float32 pass 2 uses.
constexpr int64_t kPtfOut32Max = 511;
struct PtfRowOut {
  int64_t* code = nullptr;
  float* value = nullptr;
  double scale = 0.0;
  bool out32 = false;
  float s_hi = 0.0f, s_lo = 0.0f;
  PtfRowOut at(int64_t i) const {  // the same at element i (a row's start)
    PtfRowOut r = *this;
    if (r.code != nullptr) r.code += i;
    if (r.value != nullptr) r.value += i;
    return r;
  }
};

// Per-call constants of pass 2's short form (ptf_scaled_consts): β[c]/S_next, γ[c]/S_next and the extremes the
// per-row test needs.
struct PtfScaled {
  const double* beta_s = nullptr;   // [C] fl(β[c] / S_next)
  const double* gamma_s = nullptr;  // [C] fl(γ[c] / S_next)
  double min_cg = 0.0, max_cg = 0.0;  // min_c, max_c |C·γ[c]|
  double inv_min_cg = 0.0;            // fl(1 / min_cg)
  double max_bs = 0.0, max_gs = 0.0;  // max_c |beta_s[c]|, |gamma_s[c]|
  // float32 copies of C·γ[c], beta_s, gamma_s for ptf_out_row32 (ptf_scaled_consts32), or nullptr
  const float* cg32 = nullptr;
  const float* bs32 = nullptr;
  const float* gs32 = nullptr;
  const float* e1_32 = nullptr;  // B's test: the error terms of β/S_next and of γ/S_next (ptf_layernorm_simd32.cpp)
  const float* e2_32 = nullptr;
};

// The per-call constants of csrc/cpu/ptf_layernorm.cpp's AVX-512 rows (ptf_call_consts, csrc/ops/ptf_layernorm.h):
// simd false when the rows take the generic loops (then nothing else is set).
struct PtfCallConsts {
  bool simd = false;
  std::vector<double> scaled;   // ptf_scaled_consts' buffer
  std::vector<float> scaled32;  // ptf_scaled_consts32's
  PtfScaled sc;                 // pointing into them
  std::vector<float> inv32;     // ptf_inv32's, usable when inv32_ok
  bool inv32_ok = false;
  FakeStore32 out32;            // ptf_out32's answer for S_next
  PtfCallConsts() = default;
  PtfCallConsts(const PtfCallConsts&) = delete;
  PtfCallConsts& operator=(const PtfCallConsts&) = delete;
};

// Fills buf [2·p.cols] (β/S_next, then γ/S_next) and returns the constants pointing into it. For the vector path
// only (an AVX-512 build: elsewhere the values are left unset).
PtfScaled ptf_scaled_consts(const kernels::PtfParams& p, double* buf);

// Sets sc's float32 copies and error terms into buf [5·p.cols] when every |C·γ[c]| is a normal float32 (sc from ptf_scaled_consts;
// otherwise leaves them nullptr).
void ptf_scaled_consts32(const kernels::PtfParams& p, PtfScaled& sc, float* buf);

// Pass 2 in float32 lanes (ptf_layernorm_simd32.cpp: its certification), for rows that pass its tests: then it
// writes out[j] = ptf_out(x[j], j, row, p) for j < p.cols and returns true; else returns false, writing nothing.
// Requires what ptf_out_row does, and sc with its float32 copies.
bool ptf_out_row32(const int32_t* x, const kernels::PtfRow& row, const kernels::PtfRowFast& rf,
                   const kernels::PtfParams& p, const PtfScaled& sc, const PtfRowOut& out);

// Recomputes the lanes `redo` (a bit mask) of the step at column j with ptf_out, the definition.
void ptf_redo_lanes(unsigned redo, int64_t j, const int32_t* x, const kernels::PtfRow& row,
                    const kernels::PtfParams& p, const PtfRowOut& out);

// The host constants of the PTF front end (csrc/ops/ptf_layernorm.cpp host_consts: kernels::ptf_channel_consts_inv
// of every channel into shift [cols] and values [4, cols]) and g_max = max_c |γ[c]|, b_max = max_c |β[c]|, γ and β
// host arrays of float32 (g32, b32) or float64 (g64, b64; exactly one of each pair set), α int64. Two plain loops
// without branches, here so that they are compiled with csrc/cpu/'s -march, which vectorizes them (the front end's
// baseline x86-64 loop with a check per channel took ~0.6 µs of a 384-channel call). False when a channel is
// rejected (α outside {0..3}, γ or β not finite; the outputs are then unspecified): the caller reports it.
bool ptf_host_consts(const int64_t* alpha, const float* g32, const double* g64, const float* b32, const double* b64,
                     int64_t cols, double s_base, int32_t* shift, double* values, double& g_max, double& b_max);

// The float32 store pair of the float32 pass 2's values (PtfRowOut::out32) for output scale `scale`: ok when
// the call's channels make codes beyond ±kPtfOut32Max rare (max|γ/S_next|·8 + max|β/S_next| ≤ kPtfOut32Max, sc from
// ptf_scaled_consts32) and fake_store32 certifies the pair (AVX-512 only); else ok = false.
FakeStore32 ptf_out32(const PtfScaled& sc, double scale);

// Fills inv32 [cols] with fl32(inv_scale[c]); false (inv32 unusable) when one lies outside [2^−100, 2^100].
bool ptf_inv32(const double* inv_scale, int64_t cols, float* inv32);

// Pass 1 over the row's p.cols elements into x [p.cols]; false (x, sx, sxx unspecified) when a code lies outside
// [p.lo, p.hi] or a float input has no code.
bool ptf_load_row(const PtfRowIn& in, const kernels::PtfParams& p, int32_t* x, kernels::i64& sx, kernels::i64& sxx);

// Pass 2: out[j] = ptf_out(x[j], j, row, p) for j < p.cols. Requires ptf_fast_ok(p.scale_next), rf from
// ptf_row_fast(row, p.cols, 1 / p.scale_next, max_c |C·γ[c]|). With `sc` (ptf_scaled_consts of p) a row that
// passes the short form's test takes it; without, or when it fails, the general form. True when the short form
// wrote the row.
bool ptf_out_row(const int32_t* x, const kernels::PtfRow& row, const kernels::PtfRowFast& rf,
                 const kernels::PtfParams& p, const PtfRowOut& out, const PtfScaled* sc = nullptr);

}  // namespace cpu
}  // namespace ops
}  // namespace mnq
