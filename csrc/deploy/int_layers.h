// The integer layers of the deploy engine. Each holds only integer tensors and the constants of its integer op,
// is written into / read back from a Store under a name prefix, and maps integer code tensors to integer code
// tensors:
//   Requant     q_out = clamp(round(q·m/2^k) [+ round(q_id·m_id/2^k_id)], b bits), (m, k) per tensor or per
//               channel: the dyadic pair of S_in/S_out (SPEC §0), computed once at conversion (torch.ops.mnq.
//               requant_dyadic, the kernels of `requant`).
//   IntLinear   acc = q @ Wᵀ + bias, int8 weights (the plan's bit width), int32 bias round(bias/(S_a·S_w)),
//               exact int32/int64 accumulation (int_matmul.h).
//   IntNorm     one of the integer LayerNorms (SPEC §4) on the residual-stream codes; fqvit first requantizes the
//               stream to its PtfAct codes (a per-channel Requant on S_x / (s_base·2^α_c)).
//   IntSoftmax  shiftmax / ibert_softmax / log_int_softmax (SPEC §2) → attention weights as integers on scale
//               2^−f (LIS: 2^(2^b−1−code), 0 where masked).
//   IntGelu     shift_gelu (8-bit codes) or ibert_gelu (the fc1 accumulator, per-channel scale), SPEC §3.
// Only the input quantizer (float images → codes) and the final dequantization touch floating point; the
// LayerNorm ops derive their integer constants from γ, β and the input scale on the host (SPEC §4), as the
// integer ops always do.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

#include "csrc/deploy/int_matmul.h"
#include "csrc/deploy/profile.h"
#include "csrc/deploy/store.h"
#include "csrc/ops.h"
#include "csrc/ops/layernorm_common.h"
#include "csrc/ops/prepared.h"

namespace mnq {
namespace deploy {

// A diagnostic (README "Deploy", tests/python/test_deploy.py): on, the LayerNorm (ivit, ibert) and I-BERT GELU
// outputs pass through the fake-quant model's float32 storage (round(fl32(q·s)/s)) before the next layer, so the
// engine computes what the fake-quant model computes, float32 rounding included. Off (default): exact codes.
void set_float32_emulation(bool on);

// Codes of `bits` bits (already clamped to them) as int8 (≤ 8 bits), int16 (≤ 16) or as they are.
at::Tensor narrow_codes(const at::Tensor& q, int64_t bits);

struct Requant {
  at::Tensor m, k;  // int64 [1] or [C]
  int64_t bits = 8;

  // dyadic(scale_in[c] / scale_out) for every channel of scale_in (float64, 0-d or [C]), as `requant` computes it.
  static Requant of(const at::Tensor& scale_in, double scale_out, int64_t bits);
  at::Tensor operator()(const at::Tensor& q) const;
  // Fused residual add: clamp(requant(q) + requant(q_id, id)) on this->bits.
  at::Tensor add(const at::Tensor& q, const at::Tensor& q_id, const Requant& id) const;

  void write(Store& s, const std::string& name) const;
  static Requant read(const Store& s, const std::string& name, int64_t channels);
  void to(at::Device d);
};

struct IntLinear {
  at::Tensor weight;  // int8 [N, K] (codes of w_bits ≤ 8)
  // Off the CPU: weightᵀ contiguous [K, N], made once by to() (cuBLASLt's int8 GEMM takes row-major operands; the
  // CPU's oneDNN reads the transposed view in place).
  at::Tensor weight_kn;
  at::Tensor bias;    // int32 [N], or undefined
  int64_t in_bits = 8;
  bool wide = false;  // accumulate in int64 (the bound of int32 fails for this layer's K, bits and bias)

  // q: [..., K] codes of at most in_bits → accumulators [..., N] (int32, or int64 when wide).
  at::Tensor operator()(const at::Tensor& q, Profile* prof) const;

  void write(Store& s, const std::string& name) const;
  static IntLinear read(const Store& s, const std::string& name, int64_t in_features, int64_t out_features,
                        bool has_bias);
  void to(at::Device d);
};

struct IntNorm {
  std::string method;   // ivit, ibert, fqvit
  double scale_in = 1;  // S of the residual stream it reads (ivit, ibert)
  at::Tensor gamma, beta;  // float32 [C]: the op derives its integer constants from them (SPEC §4)
  // fqvit: the PtfAct requantization of the stream, its α and base scale, and the scale of the QuantAct after it.
  Requant to_ptf;
  at::Tensor alpha;  // int64 [C]
  double s_base = 0, scale_next = 0;
  // The op's per-channel constants, computed once when read (ops.h *_consts: a γ, β or α the op rejects fails the
  // load) and moved by to(), so a forward does no host work on them (on CUDA: no device sync per call).
  ops::LnAffine ln;     // ivit, ibert
  ops::PtfConsts ptf;   // fqvit

  at::Tensor operator()(const at::Tensor& q, Profile* prof) const;  // int64 codes on the op's output scale
  void write(Store& s, const std::string& name) const;
  static IntNorm read(const Store& s, const std::string& name, int64_t channels);
  void to(at::Device d);
};

struct IntSoftmax {
  std::string method;
  double scale = 1;      // of the score codes
  int64_t out_bits = 16;  // ivit / ibert output bits; fqvit: log2 code bits

  at::Tensor operator()(const at::Tensor& q, Profile* prof) const;  // int32 integers on scale out_scale()
  double out_scale() const;
  IntRange out_range() const;  // bounds of the output integers (for the exact matmul that follows)
  void write(Store& s, const std::string& name) const;
  static IntSoftmax read(const Store& s, const std::string& name);
};

struct IntGelu {
  std::string method;       // ivit, ibert, fqvit
  double scale = 1;         // ivit: of the 8-bit input codes
  at::Tensor channel_scale;  // ibert: float64 [C], of the fc1 accumulator
  // fqvit: FQ-ViT's GELU is floating point (SPEC §3.3) followed by the b-bit qact_gelu. On b-bit input codes that
  // is a function of 2^b codes, tabulated at conversion from the same float32 values the fake-quant path computes:
  // lut[q + 2^(b−1)] = qact_gelu's code of gelu(q·S). Inference is a table lookup (its output is qact_gelu's codes).
  at::Tensor lut;  // int32 [2^b]
  // ivit, CPU: shift_gelu's int32 output for the code q in a row whose maximum is m, table[m + 128][q + 128]
  // (derived at read, not stored): the fused path looks it up (int_fused.h gelu_table_act).
  at::Tensor table;
  // ibert: i-GELU's constants of channel_scale (ops.h ibert_gelu_consts), derived at read as IntNorm's (last: the
  // converter initialises the fields above in order)
  ops::IbertGeluConsts consts;

  at::Tensor operator()(const at::Tensor& q, Profile* prof) const;
  void write(Store& s, const std::string& name) const;
  static IntGelu read(const Store& s, const std::string& name, int64_t channels);
  void to(at::Device d);
};

}  // namespace deploy
}  // namespace mnq
