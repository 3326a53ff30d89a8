"""Quantized models built from timm models by module swap (SPEC §6)."""
from .blocks import QuantAttention, QuantBlock, QuantMlp
from .vit import QuantVisionTransformer, mixable_layers, quantize_vit, vit_layer_names

__all__ = ["QuantAttention", "QuantBlock", "QuantMlp", "QuantVisionTransformer", "mixable_layers", "quantize_vit",
           "vit_layer_names"]
