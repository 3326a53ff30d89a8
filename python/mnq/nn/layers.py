"""Quantized linear layers (SPEC §1), I-ViT calling style ``forward(x, scale) -> (y, scale_out)``.

Weights: symmetric per output channel from the current weights at every forward, S_w[c] = max|W[c]| / (2^(b-1)-1);
bias: round(bias / (S_w·S_a)) on 32 bits. QuantLinear and QuantMatMul compute the integer product exactly
(mnq.ops.quant_linear: int8 GEMM on the CPU; mnq.ops.quant_matmul), QuantConv2d runs a float GEMM on the dequantized
values; backward is the float product's (STE). scale_out = S_a·S_w is per output channel.
"""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import ops
from .quant import _check_bits, _per_tensor_scale


def _weight_scale(w: Tensor, bits: int) -> Tensor:
    flat = w.detach().reshape(w.shape[0], -1).double()
    return flat.abs().amax(-1).clamp(min=1e-8) / (2 ** (bits - 1) - 1)


def _fake_quant_params(weight: Tensor, bias, scale: Tensor, bits: int, who: str):
    """Fake-quantized weight (per output channel), bias on S_a·S_w (32 bits) and the output scale."""
    s_a = _per_tensor_scale(scale, who)
    s_w = _weight_scale(weight, bits)
    w = ops.quantize_qat(weight, s_w.to(weight.device), bits, 0)
    s_out = s_a.to(s_w.device) * s_w
    b = None if bias is None else ops.quantize_qat(bias, s_out.to(bias.device), 32)
    return w, b, s_out


class QuantLinear(nn.Linear):
    def __init__(self, in_features: int, out_features: int, bias: bool = True, bits: int = 8):
        super().__init__(in_features, out_features, bias)
        self.bits = _check_bits(bits)

    def quantized_weight(self) -> Tuple[Tensor, Tensor]:
        s_w = _weight_scale(self.weight, self.bits)
        return ops.quantize_qat(self.weight, s_w.to(self.weight.device), self.bits, 0), s_w

    def forward(self, x: Tensor, scale: Tensor) -> Tuple[Tensor, Tensor]:
        # The exact integer product (SPEC §1: mnq.ops.quant_linear), the bias quantized inside on S_a·S_w.
        s_a = _per_tensor_scale(scale, "QuantLinear")
        w, s_w = self.quantized_weight()
        return ops.quant_linear(x, s_a, w, s_w, self.bias), s_a.to(s_w.device) * s_w

    def extra_repr(self) -> str:
        return super().extra_repr() + f", bits={self.bits}"


class QuantConv2d(nn.Conv2d):
    def __init__(self, *args, bits: int = 8, **kwargs):
        super().__init__(*args, **kwargs)
        self.bits = _check_bits(bits)

    def forward(self, x: Tensor, scale: Tensor) -> Tuple[Tensor, Tensor]:
        w, b, s_out = _fake_quant_params(self.weight, self.bias, scale, self.bits, "QuantConv2d")
        return self._conv_forward(x, w, b), s_out

    def extra_repr(self) -> str:
        return super().extra_repr() + f", bits={self.bits}"


class QuantMatMul(nn.Module):
    """Product of two quantized tensors: (A @ B, S_A·S_B), per-tensor scales; the integer product computed exactly
    (SPEC §1: mnq.ops.quant_matmul)."""

    def forward(self, a: Tensor, scale_a: Tensor, b: Tensor, scale_b: Tensor) -> Tuple[Tensor, Tensor]:
        s_a, s_b = _per_tensor_scale(scale_a, "QuantMatMul"), _per_tensor_scale(scale_b, "QuantMatMul")
        return ops.quant_matmul(a, s_a, b, s_b), s_a * s_b
