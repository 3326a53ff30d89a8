"""Quantized building blocks in the I-ViT calling style ``forward(x, scale) -> (y, scale_out)``."""
from .layers import QuantConv2d, QuantLinear, QuantMatMul
from .nonlinear import GELU_METHODS, LAYERNORM_METHODS, SOFTMAX_METHODS, IntGELU, IntLayerNorm, IntSoftmax
from .quant import PtfAct, QuantAct

__all__ = [
    "QuantAct", "PtfAct", "QuantLinear", "QuantConv2d", "QuantMatMul", "IntSoftmax", "IntGELU", "IntLayerNorm",
    "SOFTMAX_METHODS", "GELU_METHODS", "LAYERNORM_METHODS",
]
