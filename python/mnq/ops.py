"""Typed Python wrappers of ``torch.ops.mnq.*`` (the same ops C++ calls through the dispatcher).

Integer ops take integer codes ``q`` on a scale and return ``(out, scale_out)``; ``*_qat`` ops take float values
``x = q * scale`` and return float values ``out * scale_out`` with a straight-through gradient (SPEC §5).
All reduce over the last dim. See SPEC.md for the exact math of each.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple, Union

import torch
from torch import Tensor

Scale = Union[float, Tensor]

_ops = torch.ops.mnq


# Python float scales as 0-d float64 tensors, made once per value (a call on a small tensor pays about a microsecond
# per tensor it creates): finite nonzero values only (the ops' error messages show the value given), at most 1024.
_SCALARS: dict = {}


_is_compiling = torch.compiler.is_compiling


def _scale_tensor(scale: Scale) -> Tensor:
    if type(scale) is float:  # a repeated Python float (a layer's fixed scale): one dict lookup
        t = _SCALARS.get(scale)
        if t is not None and not _is_compiling():
            return t
    elif isinstance(scale, Tensor):
        if scale.dtype is torch.float64 and not scale.requires_grad:
            return scale  # the ops only read it: no detached copy needed
        return scale.detach().to(torch.float64)
    v = float(scale)
    t = _SCALARS.get(v)
    if t is None or _is_compiling():
        t = torch.scalar_tensor(v, dtype=torch.float64)  # the same float64; ~3x cheaper than torch.tensor
        if len(_SCALARS) < 1024 and math.isfinite(v) and v != 0.0 and not _is_compiling():
            _SCALARS[v] = t
    return t


# ---- softmax (SPEC §2) ----
def ibert_softmax(q: Tensor, scale: float, out_bits: int = 16) -> Tuple[Tensor, float]:
    """I-BERT integer softmax: int32 codes on scale 2^-out_bits."""
    return _ops.ibert_softmax(q, float(scale), out_bits)


def shiftmax(q: Tensor, scale: float, out_bits: int = 16, n: int = 15) -> Tuple[Tensor, float]:
    """I-ViT Shiftmax: int32 codes on scale 2^-(out_bits-1)."""
    return _ops.shiftmax(q, float(scale), out_bits, n)


def log_int_softmax(q: Tensor, scale: float, bits: int = 4) -> Tuple[Tensor, Tensor]:
    """FQ-ViT Log-Int-Softmax: (uint8 code, bool mask); value = 2^-code, 0 where masked."""
    return _ops.log_int_softmax(q, float(scale), bits)


# ---- GELU (SPEC §3) ----
def ibert_gelu(q: Tensor, scale: Scale) -> Tuple[Tensor, Tensor]:
    """I-BERT i-GELU on an accumulator; scale per tensor or per channel [C]. (int64 codes, float64 S_out)."""
    return _ops.ibert_gelu(q, _scale_tensor(scale))


def shift_gelu(q: Tensor, scale: float, out_bits: int = 8, n: int = 23) -> Tuple[Tensor, float]:
    """I-ViT ShiftGELU: int32 codes on scale scale * 2^-(out_bits-1)."""
    return _ops.shift_gelu(q, float(scale), out_bits, n)


# ---- LayerNorm (SPEC §4) ----
def ilayernorm(q: Tensor, scale: float, weight: Tensor, bias: Tensor) -> Tuple[Tensor, Tensor]:
    """I-ViT I-LayerNorm: (int64 codes, per-channel float64 S_out)."""
    return _ops.ilayernorm(q, float(scale), weight, bias)


def ibert_layernorm(q: Tensor, scale: float, weight: Tensor, bias: Tensor) -> Tuple[Tensor, Tensor]:
    """I-BERT integer LayerNorm: (int64 codes, per-channel float64 S_out)."""
    return _ops.ibert_layernorm(q, float(scale), weight, bias)


def ptf_layernorm(q: Tensor, alpha: Tensor, s_base: float, weight: Tensor, bias: Tensor,
                  scale_next: float) -> Tuple[Tensor, float]:
    """FQ-ViT PTF LayerNorm: input on per-channel scales s_base*2^alpha; (int64 codes, scale_next)."""
    return _ops.ptf_layernorm(q, alpha, float(s_base), weight, bias, float(scale_next))


# ---- quantizers (SPEC §1) ----
# The overloads of the per-element ops, looked up once: the attribute walk torch.ops.mnq.<op>.default costs ~0.2 µs
# a call, which shows next to a batch-1 requant's ~10 µs.
_quantize = _ops.quantize.default
_quantize_qat = _ops.quantize_qat.default
_requant = _ops.requant.default
_requant_qat = _ops.requant_qat.default
_quant_linear = _ops.quant_linear.default
_quant_matmul = _ops.quant_matmul.default


def quantize(x: Tensor, scale: Scale, bits: int, axis: int = -1) -> Tensor:
    """Symmetric quantizer: clamp(round(x / S)); S per tensor or per channel along `axis`."""
    return _quantize(x, _scale_tensor(scale), bits, axis)


def requant(q: Tensor, scale_in: Scale, scale_out: Scale, bits: int, identity: Optional[Tensor] = None,
            identity_scale: Optional[Scale] = None) -> Tensor:
    """Dyadic requantization of codes (optionally + a residual) to scale_out, clamped to `bits`."""
    ids = None if identity_scale is None else _scale_tensor(identity_scale)
    return _requant(q, _scale_tensor(scale_in), _scale_tensor(scale_out), bits, identity, ids)


def requant_dyadic(q: Tensor, m: Tensor, k: Tensor, bits: int, identity: Optional[Tensor] = None,
                   m_id: Optional[Tensor] = None, k_id: Optional[Tensor] = None) -> Tensor:
    """requant with the multipliers given as dyadic pairs (int64 m, k; per tensor or per channel of the last dim):
    clamp(round(q·m/2^k) [+ round(q_id·m_id/2^k_id)]) on `bits` (the integer engine's form, mnq.deploy)."""
    return _ops.requant_dyadic(q, m, k, bits, identity, m_id, k_id)


def ptf_quantize(x: Tensor, alpha: Tensor, s_base: Scale, bits: int) -> Tensor:
    """PtfAct codes: clamp(round(x / (s_base * 2^alpha[c])))."""
    return _ops.ptf_quantize(x, alpha, _scale_tensor(s_base), bits)


def ptf_alpha_error(x: Tensor, s_base: Scale, bits: int) -> Tensor:
    """[C, 4] summed squared quantization error per channel for alpha = 0..3 (PtfAct calibration); a channel with
    a NaN gets NaN sums."""
    return _ops.ptf_alpha_error(x, _scale_tensor(s_base), bits)


# ---- QAT (fake-quant, straight-through backward; SPEC §5) ----
# Scales may be Python floats or tensors; a tensor scale stays where it is (no host read: the modules pass their
# device buffers). The non-linear ops return (values, S_out) with S_out a float64 tensor on x's device. An input
# whose code is not finite or out of the op's range gives NaN in its row (softmax, GELU-ivit, LayerNorm) or element
# (ibert GELU); argument errors raise.
def ibert_softmax_qat(x: Tensor, scale: Scale, out_bits: int = 16) -> Tuple[Tensor, Tensor]:
    return _ops.ibert_softmax_qat(x, _scale_tensor(scale), out_bits)


def shiftmax_qat(x: Tensor, scale: Scale, out_bits: int = 16, n: int = 15) -> Tuple[Tensor, Tensor]:
    return _ops.shiftmax_qat(x, _scale_tensor(scale), out_bits, n)


def log_int_softmax_qat(x: Tensor, scale: Scale, bits: int = 4) -> Tuple[Tensor, Tensor]:
    """Values 2^-code (0 where masked) and their scale 2^-(2^bits - 1), the smallest code's."""
    return _ops.log_int_softmax_qat(x, _scale_tensor(scale), bits)


def ibert_gelu_qat(x: Tensor, scale: Scale) -> Tuple[Tensor, Tensor]:
    return _ops.ibert_gelu_qat(x, _scale_tensor(scale))


def shift_gelu_qat(x: Tensor, scale: Scale, out_bits: int = 8, n: int = 23) -> Tuple[Tensor, Tensor]:
    return _ops.shift_gelu_qat(x, _scale_tensor(scale), out_bits, n)


def ilayernorm_qat(x: Tensor, scale: Scale, weight: Tensor, bias: Tensor,
                   eps: float = 1e-6) -> Tuple[Tensor, Tensor]:
    return _ops.ilayernorm_qat(x, _scale_tensor(scale), weight, bias, eps)


def ibert_layernorm_qat(x: Tensor, scale: Scale, weight: Tensor, bias: Tensor,
                        eps: float = 1e-6) -> Tuple[Tensor, Tensor]:
    return _ops.ibert_layernorm_qat(x, _scale_tensor(scale), weight, bias, eps)


def ptf_layernorm_qat(x: Tensor, alpha: Tensor, s_base: Scale, weight: Tensor, bias: Tensor, scale_next: Scale,
                      eps: float = 1e-6) -> Tuple[Tensor, Tensor]:
    return _ops.ptf_layernorm_qat(x, alpha, _scale_tensor(s_base), weight, bias, _scale_tensor(scale_next), eps)


def quantize_qat(x: Tensor, scale: Scale, bits: int, axis: int = -1) -> Tensor:
    return _quantize_qat(x, _scale_tensor(scale), bits, axis)


def requant_qat(x: Tensor, scale_in: Scale, scale_out: Scale, bits: int, identity: Optional[Tensor] = None,
                identity_scale: Optional[Scale] = None) -> Tensor:
    ids = None if identity_scale is None else _scale_tensor(identity_scale)
    return _requant_qat(x, _scale_tensor(scale_in), _scale_tensor(scale_out), bits, identity, ids)


def quant_linear(x: Tensor, scale: Scale, weight: Tensor, weight_scale: Tensor,
                 bias: Optional[Tensor] = None) -> Tensor:
    """The fake-quant Linear, exact (SPEC §1): fl32((q_x @ q_wᵀ + q_b)·S_out) with q_x = round(x / scale) (x on the
    grid of the per-tensor `scale`), q_w = round(weight / weight_scale[n]), S_out = scale·weight_scale and q_b the
    bias quantized on S_out (32 bits). Backward: F.linear's gradient (straight-through)."""
    return _quant_linear(x, _scale_tensor(scale), weight, weight_scale, bias)


def quant_matmul(a: Tensor, scale_a: Scale, b: Tensor, scale_b: Scale) -> Tensor:
    """The fake-quant MatMul of two quantized tensors, exact (SPEC §1): fl32((q_a @ q_b)·S_a·S_b) with
    q_a = round(a / scale_a) and q_b = round(b / scale_b) (a [..., M, K] and b [..., K, N] on the grids of per-tensor
    scales, equal batch dims, no broadcasting). Backward: a @ b's gradient (straight-through)."""
    return _quant_matmul(a, _scale_tensor(scale_a), b, _scale_tensor(scale_b))


def ptf_quantize_qat(x: Tensor, alpha: Tensor, s_base: Scale, bits: int) -> Tensor:
    return _ops.ptf_quantize_qat(x, alpha, _scale_tensor(s_base), bits)
