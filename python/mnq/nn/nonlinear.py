"""Integer non-linear layers with a selectable method (SPEC §2-5), I-ViT calling style.

Each takes the float values x = q·scale of a quantized input and its scale, runs the fused integer method
(fake-quant forward, straight-through float gradient) and returns ``(y, scale_out)``. Methods:

- IntSoftmax: ``ivit`` (Shiftmax), ``ibert`` (polynomial i-exp), ``fqvit`` (Log-Int-Softmax, 4-bit log codes)
- IntGELU: ``ivit`` (ShiftGELU, 8-bit input), ``ibert`` (i-GELU on the fc1 accumulator, per-channel scale),
  ``fqvit`` (float GELU; the next QuantAct quantizes it, scale_out None)
- IntLayerNorm: ``ivit`` (I-LayerNorm, 16-bit input), ``ibert`` (22-bit input), ``fqvit`` (PTF LayerNorm: reads x
  through its own PtfAct and needs ``scale_next``, the scale of the QuantAct after it)
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import ops
from .quant import PtfAct, _check_bits, _per_tensor_scale

SOFTMAX_METHODS = ("ivit", "ibert", "fqvit")
GELU_METHODS = ("ivit", "ibert", "fqvit")
LAYERNORM_METHODS = ("ivit", "ibert", "fqvit")


def _check_method(method: str, allowed, who: str) -> str:
    if method not in allowed:
        raise ValueError(f"{who}: method must be one of {', '.join(allowed)}; got {method!r}")
    return method


class IntSoftmax(nn.Module):
    """Softmax over the last dim. out_bits: output bits of ivit/ibert (16; I-ViT's Swin uses 8 for ivit);
    log_bits: FQ-ViT's log2 code bits (4)."""

    def __init__(self, method: str = "ivit", out_bits: int = 16, log_bits: int = 4):
        super().__init__()
        self.method = _check_method(method, SOFTMAX_METHODS, "IntSoftmax")
        self.out_bits = _check_bits(out_bits)
        self.log_bits = _check_bits(log_bits, 8)

    def forward(self, x: Tensor, scale: Tensor) -> Tuple[Tensor, Tensor]:
        s = _per_tensor_scale(scale, "IntSoftmax")
        if self.method == "ivit":
            return ops.shiftmax_qat(x, s, self.out_bits)
        if self.method == "ibert":
            return ops.ibert_softmax_qat(x, s, self.out_bits)
        return ops.log_int_softmax_qat(x, s, self.log_bits)

    def extra_repr(self) -> str:
        return f"method={self.method}"


class IntGELU(nn.Module):
    def __init__(self, method: str = "ivit", out_bits: int = 8):
        super().__init__()
        self.method = _check_method(method, GELU_METHODS, "IntGELU")
        self.out_bits = _check_bits(out_bits)

    def forward(self, x: Tensor, scale: Tensor) -> Tuple[Tensor, Optional[Tensor]]:
        if self.method == "ivit":
            return ops.shift_gelu_qat(x, _per_tensor_scale(scale, "IntGELU"), self.out_bits)
        if self.method == "ibert":
            return ops.ibert_gelu_qat(x, torch.as_tensor(scale, dtype=torch.float64))
        return F.gelu(x), None

    def extra_repr(self) -> str:
        return f"method={self.method}"


class IntLayerNorm(nn.LayerNorm):
    """LayerNorm over the last dim with weight γ and bias β (both receive layer-norm gradients)."""

    def __init__(self, normalized_shape: int, method: str = "ivit", eps: float = 1e-6, ptf_bits: int = 8):
        super().__init__(normalized_shape, eps=eps)
        self.method = _check_method(method, LAYERNORM_METHODS, "IntLayerNorm")
        self.ptf = PtfAct(normalized_shape, ptf_bits) if method == "fqvit" else None

    def forward(self, x: Tensor, scale: Optional[Tensor] = None,
                scale_next: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        if self.method == "fqvit":
            if scale_next is None:
                raise ValueError("IntLayerNorm(method='fqvit'): scale_next (the next QuantAct's scale) is required")
            xq, (s_base, alpha) = self.ptf(x)
            s_next = _per_tensor_scale(scale_next, "IntLayerNorm")
            return ops.ptf_layernorm_qat(xq, alpha, s_base, self.weight, self.bias, s_next, self.eps)
        if scale is None:
            raise ValueError(f"IntLayerNorm(method={self.method!r}): the input scale is required")
        s = _per_tensor_scale(scale, "IntLayerNorm")
        fn = ops.ilayernorm_qat if self.method == "ivit" else ops.ibert_layernorm_qat
        return fn(x, s, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", method={self.method}"
