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
from typing import Union

from . import _mnq

IntegerModel = _mnq.IntegerModel


def convert(qmodel) -> IntegerModel:
    """The integer model of ``qmodel`` (a :class:`mnq.models.Model` built with ``bits``, calibrated, in eval mode).

    Raises ValueError for a full-precision or training-mode model, an uncalibrated quantizer or W/A above 8.
    FQ-ViT's GELU (float in FQ-ViT, SPEC §3.3) becomes a 2^b-entry table of its b-bit output codes.
    """
    if not isinstance(qmodel, _mnq.Model):
        raise TypeError(f"mnq.deploy.convert: expected a mnq.models.Model (mnq.models.create), got "
                        f"{type(qmodel).__name__}; a Python model from mnq.quantize is converted by loading its "
                        "state_dict into the C++ model of the same preset (mnq.models.create(...).load_state_dict)")
    return _mnq.deploy_convert(qmodel)


def load(path: Union[str, Path]) -> IntegerModel:
    """Reads a file written by ``IntegerModel.save`` (ValueError naming what is wrong otherwise)."""
    return _mnq.load_integer_model(str(path))


__all__ = ["IntegerModel", "convert", "load"]
