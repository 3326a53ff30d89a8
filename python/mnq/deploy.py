"""``mnq.deploy``: integer-only inference of a quantized ViT / DeiT / Swin (csrc/deploy, through ``mnq._mnq``).

``convert(qmodel)`` turns a calibrated, eval-mode quantized model of ``mnq.models.create`` into an
:class:`IntegerModel`: int8 weights, int32 biases, every requantization a dyadic multiplier (m, k), integer
activations between layers, integer matmuls (``torch._int_mm``) and the integer Softmax / GELU / LayerNorm ops.
Float is used only by the input quantizer and the final dequantization.

    imodel = mnq.deploy.convert(qmodel)
    logits = imodel(images)                  # float images → dequantized logits
    q, scale = imodel.forward_int(images)    # integer logits (head accumulators) and their float64 scale
    imodel.save("m.safetensors"); mnq.deploy.load("m.safetensors")   # bit-exact reload
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

import torch

from . import _mnq

IntegerModel = _mnq.IntegerModel


def convert(qmodel, preset: Optional[str] = None, img_size: Optional[int] = None) -> IntegerModel:
    """The integer model of ``qmodel``, calibrated and in eval mode: a :class:`mnq.models.Model` built with ``bits``,
    or a Python model of :func:`mnq.quantize` — then ``preset`` names the C++ preset of its architecture
    (:func:`mnq.models.presets`; ``img_size`` if it differs from the preset's): the C++ twin is built with the
    model's bits and plan, loads its state_dict (the twins compute bit-identical outputs), and is converted.

    Raises ValueError for a full-precision or training-mode model, an uncalibrated quantizer or W/A above 8.
    FQ-ViT's GELU (float in FQ-ViT, SPEC §3.3) becomes a 2^b-entry table of its b-bit output codes.
    """
    if isinstance(qmodel, _mnq.Model):
        return _mnq.deploy_convert(qmodel)
    from .models import QuantSwinTransformer, QuantVisionTransformer, create
    if not isinstance(qmodel, (QuantVisionTransformer, QuantSwinTransformer)):
        raise TypeError(f"mnq.deploy.convert: expected a mnq.models.Model or a model of mnq.quantize, got "
                        f"{type(qmodel).__name__}")
    if preset is None:
        raise ValueError("mnq.deploy.convert: a model of mnq.quantize needs preset= (the mnq.models.presets() name "
                         "of its architecture)")
    if qmodel.training:
        raise ValueError("mnq.deploy.convert: the model is in training mode; calibrate it and call eval() first")
    heads = [m for m in qmodel.modules() if isinstance(m, torch.nn.Linear)]
    twin = create(preset, bits=qmodel.bits, plan=qmodel.plan, num_classes=heads[-1].out_features,
                  in_chans=qmodel.patch_embed.proj.in_channels, img_size=img_size)
    twin.train()
    twin.load_state_dict(qmodel.state_dict(), strict=True)
    return _mnq.deploy_convert(twin.eval())


def load(path: Union[str, Path]) -> IntegerModel:
    """Reads a file written by ``IntegerModel.save`` (ValueError naming what is wrong otherwise)."""
    return _mnq.load_integer_model(str(path))


__all__ = ["IntegerModel", "convert", "load"]
