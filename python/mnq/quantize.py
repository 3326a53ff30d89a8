"""``mnq.quantize``: a timm model → its quantized equivalent under a per-layer method plan (SPEC §6), and
``mnq.calibrate``: activation ranges from a few batches.

The quantized model is built from mnq.nn modules by module swap: the same architecture with each layer replaced
by its quantized counterpart and the weights copied (no graph tracing). Its ``forward(x)`` takes float images and
returns logits; ``mixable_layers()`` lists its non-linear layers and ``plan`` holds the resolved methods.
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from .nn import PtfAct
from .plan import PlanLike


def _check_bits(bits) -> int:
    if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 16:
        raise ValueError(f"mnq.quantize: bits (W/A) must be an int in [2, 16], got {bits!r}")
    return bits


def quantize(model: nn.Module, plan: PlanLike, bits: int = 8) -> nn.Module:
    """Quantized copy of a timm ``VisionTransformer`` (ViT, DeiT, ``VisionTransformerDistilled``) or
    ``SwinTransformer``.

    ``plan``: a :class:`mnq.Plan`, a mapping in the plan format, a method name (``"ivit"``, ``"ibert"``,
    ``"fqvit"``: every layer) or a YAML path. ``bits``: the "W/A = b" setting:
    every weight quantizer and every 8-bit activation quantizer of SPEC §6 uses b bits; the 16/22-bit residual
    quantizers and the softmax outputs keep their widths. The result is in training mode with no activation
    ranges yet: :func:`calibrate` it (or train it) before ``eval()``.
    """
    _check_bits(bits)
    from timm.models.swin_transformer import SwinTransformer
    from timm.models.vision_transformer import VisionTransformer

    from .models.swin import quantize_swin
    from .models.vit import quantize_vit

    if isinstance(model, VisionTransformer):
        return quantize_vit(model, plan, bits).train()
    if isinstance(model, SwinTransformer):
        return quantize_swin(model, plan, bits).train()
    raise TypeError(f"mnq.quantize: unsupported model type {type(model).__name__} (expected a timm "
                    "VisionTransformer, VisionTransformerDistilled or SwinTransformer)")


@torch.no_grad()
def calibrate(qmodel: nn.Module, batches: Iterable) -> nn.Module:
    """Run ``qmodel`` in training mode on ``batches`` (tensors, or tuples whose first item is the input) so every
    QuantAct tracks its EMA range, then freeze the PtfAct α choices and switch to eval (ranges frozen).

    α is chosen afresh from these batches (its error sums are reset first); ranges continue their EMA if the model
    has seen data before. Returns ``qmodel``.
    """
    ptf = [m for m in qmodel.modules() if isinstance(m, PtfAct)]
    for m in ptf:
        m.reset_alpha()
    qmodel.train()
    seen = 0
    for batch in batches:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        qmodel(x)
        seen += 1
    if seen == 0:
        raise ValueError("mnq.calibrate: no batches given")
    for m in ptf:
        m.freeze_alpha()
    return qmodel.eval()
