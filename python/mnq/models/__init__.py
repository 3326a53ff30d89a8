"""Quantized models built from timm models by module swap (SPEC §6)."""
from .blocks import QuantAttention, QuantBlock, QuantMlp
from .swin import QuantSwinTransformer, quantize_swin, swin_layer_names
from .vit import QuantVisionTransformer, mixable_layers, quantize_vit, vit_layer_names

__all__ = ["QuantAttention", "QuantBlock", "QuantMlp", "QuantVisionTransformer", "QuantSwinTransformer",
           "mixable_layers", "quantize_vit", "quantize_swin", "vit_layer_names", "swin_layer_names"]
