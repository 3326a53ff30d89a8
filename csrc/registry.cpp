// Every schema of the mnq op library (STYLE rule 3). Implementations register themselves per dispatch key in
// csrc/ops/<op>.cpp (CPU, CUDA, Meta) and csrc/autograd/*.cpp (Autograd). Integer ops take integer codes `q`
// on a scale; `*_qat` ops take float values `x` = q·S and return out·S_out (SPEC §5).
#include <torch/library.h>

TORCH_LIBRARY(mnq, m) {
  // I-BERT integer softmax, SPEC §2.1: (codes, S_out = 2^-out_bits).
  m.def("ibert_softmax(Tensor q, float scale, int out_bits=16) -> (Tensor, float)");
  // I-ViT Shiftmax, SPEC §2.2: (codes, S_out = 2^-(out_bits-1)).
  m.def("shiftmax(Tensor q, float scale, int out_bits=16, int n=15) -> (Tensor, float)");
  // FQ-ViT Log-Int-Softmax, SPEC §2.3: (uint8 log2 codes, bool mask of zeroed probabilities).
  m.def("log_int_softmax(Tensor q, float scale, int bits=4) -> (Tensor, Tensor)");
  // I-BERT i-GELU, SPEC §3.1: scale 0-d or per channel [C] (float64); returns (int64 codes, float64 S_out).
  m.def("ibert_gelu(Tensor q, Tensor scale) -> (Tensor, Tensor)");
  // I-ViT ShiftGELU, SPEC §3.2: (int32 codes, S_out = scale * 2^-(out_bits-1)).
  m.def("shift_gelu(Tensor q, float scale, int out_bits=8, int n=23) -> (Tensor, float)");
  // I-ViT I-LayerNorm, SPEC §4.1: (int64 codes, per-channel float64 S_out).
  m.def("ilayernorm(Tensor q, float scale, Tensor weight, Tensor bias) -> (Tensor, Tensor)");
  // I-BERT integer LayerNorm, SPEC §4.2: (int64 codes, per-channel float64 S_out).
  m.def("ibert_layernorm(Tensor q, float scale, Tensor weight, Tensor bias) -> (Tensor, Tensor)");
  // FQ-ViT PTF LayerNorm, SPEC §4.3: input scales s_base*2^alpha[c]; (int64 codes, S_out = scale_next).
  m.def("ptf_layernorm(Tensor q, Tensor alpha, float s_base, Tensor weight, Tensor bias, float scale_next) -> (Tensor, float)");

  // Symmetric quantizer, SPEC §1: clamp(round(x / S), -2^(bits-1), 2^(bits-1)-1); S 0-d or per channel along `axis`.
  m.def("quantize(Tensor x, Tensor scale, int bits, int axis=-1) -> Tensor");
  // Dyadic requantization with fused residual, SPEC §1: clamp(requant(q, S_in/S) + requant(q_id, S_id/S)).
  m.def("requant(Tensor q, Tensor scale_in, Tensor scale_out, int bits, Tensor? identity=None, Tensor? identity_scale=None) -> Tensor");
  // requant with the multipliers given as dyadic pairs (m, k), per tensor or per channel (the integer engine's form).
  m.def("requant_dyadic(Tensor q, Tensor m, Tensor k, int bits, Tensor? identity=None, Tensor? m_id=None, Tensor? k_id=None) -> Tensor");
  // PtfAct codes, SPEC §1: clamp(round(x / (s_base * 2^alpha[c])), ...).
  m.def("ptf_quantize(Tensor x, Tensor alpha, Tensor s_base, int bits) -> Tensor");
  // PtfAct calibration statistic: per channel and alpha in {0,1,2,3}, the summed squared quantization error [C, 4].
  m.def("ptf_alpha_error(Tensor x, Tensor s_base, int bits) -> Tensor");

  // Fake-quant (QAT) versions, float in / float out, straight-through backward (SPEC §5). Scales are tensors (0-d,
  // float64, on the input's device or the CPU) so no module reads them back to the host; the non-linear ones return
  // (values out·S_out, S_out) with S_out a float64 tensor on the input's device (csrc/ops/qat.h: the NaN policy).
  m.def("ibert_softmax_qat(Tensor x, Tensor scale, int out_bits=16) -> (Tensor, Tensor)");
  m.def("shiftmax_qat(Tensor x, Tensor scale, int out_bits=16, int n=15) -> (Tensor, Tensor)");
  m.def("log_int_softmax_qat(Tensor x, Tensor scale, int bits=4) -> (Tensor, Tensor)");
  m.def("ibert_gelu_qat(Tensor x, Tensor scale) -> (Tensor, Tensor)");
  m.def("shift_gelu_qat(Tensor x, Tensor scale, int out_bits=8, int n=23) -> (Tensor, Tensor)");
  m.def("ilayernorm_qat(Tensor x, Tensor scale, Tensor weight, Tensor bias, float eps=1e-6) -> (Tensor, Tensor)");
  m.def("ibert_layernorm_qat(Tensor x, Tensor scale, Tensor weight, Tensor bias, float eps=1e-6) -> (Tensor, Tensor)");
  m.def("ptf_layernorm_qat(Tensor x, Tensor alpha, Tensor s_base, Tensor weight, Tensor bias, Tensor scale_next, float eps=1e-6) -> (Tensor, Tensor)");
  m.def("quantize_qat(Tensor x, Tensor scale, int bits, int axis=-1) -> Tensor");
  m.def("requant_qat(Tensor x, Tensor scale_in, Tensor scale_out, int bits, Tensor? identity=None, Tensor? identity_scale=None) -> Tensor");
  m.def("ptf_quantize_qat(Tensor x, Tensor alpha, Tensor s_base, int bits) -> Tensor");
  // The fake-quant Linear computed exactly (csrc/ops/quant_linear.h, SPEC §1): x on the grid of `scale` (0-d),
  // weight [N, K] on the grid of weight_scale [N], the bias quantized on S_out = scale·weight_scale (32 bits);
  // returns fl32((codes(x) @ codes(weight)ᵀ + codes(bias))·S_out). Backward: F.linear's (straight-through).
  m.def("quant_linear(Tensor x, Tensor scale, Tensor weight, Tensor weight_scale, Tensor? bias=None) -> Tensor");
  // The fake-quant MatMul of two quantized tensors computed exactly (csrc/ops/quant_matmul.h, SPEC §1): a [..., M, K]
  // and b [..., K, N] (equal batch dims) on the grids of the per-tensor scale_a and scale_b (0-d); returns
  // fl32((codes(a) @ codes(b))·scale_a·scale_b). Backward: a @ b's (straight-through).
  m.def("quant_matmul(Tensor a, Tensor scale_a, Tensor b, Tensor scale_b) -> Tensor");
}
