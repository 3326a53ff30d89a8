"""Quantized models: built from timm models by module swap (SPEC §6), and the C++ twins (``create``)."""
from typing import Dict, Union

from torch import nn

from .blocks import QuantAttention, QuantBlock, QuantMlp, QuantPatchEmbed
from .cpp import Model, create, frozen_weights, preset_layers, presets
from .swin import QuantSwinTransformer, quantize_swin, swin_layer_names
from .vit import QuantVisionTransformer, quantize_vit, vit_layer_names
from .vit import mixable_layers as _module_layers


def mixable_layers(model: Union[str, nn.Module], **overrides) -> Dict[str, str]:
    """{name: op_type} of the mixable layers, in order: of a C++ preset when ``model`` is its name (``overrides``:
    num_classes, img_size, in_chans), else of every integer non-linear module of a quantized Python model."""
    if isinstance(model, str):
        return preset_layers(model, **overrides)
    return _module_layers(model)


__all__ = ["QuantAttention", "QuantBlock", "QuantMlp", "QuantPatchEmbed", "QuantVisionTransformer",
           "QuantSwinTransformer", "Model", "create", "frozen_weights", "presets", "preset_layers", "mixable_layers",
           "quantize_vit", "quantize_swin", "vit_layer_names", "swin_layer_names"]
