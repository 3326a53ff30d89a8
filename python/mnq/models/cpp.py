"""The C++ models (csrc/models, through ``mnq._mnq``): ``create`` builds a preset as a :class:`mnq._mnq.Model`.

A C++ model has the module tree of the Python one that :func:`mnq.quantize` builds from the same timm
architecture: the same state_dict keys (timm's parameter names; quantizer buffers named as in blocks.py), the same
wiring, and so bit-identical outputs for the same weights, plan, bits and calibration batches. It behaves like a
small ``nn.Module``: call it on images, ``train()``/``eval()``, ``state_dict()``/``load_state_dict()``,
``parameters()`` (the live tensors: a ``torch.optim`` optimizer trains it), ``save``/``load`` (safetensors),
``to(device)``, ``layer_methods()``, ``freeze_alpha()``; properties ``preset``, ``bits``, ``quantized``.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Union

from .. import _mnq
from ..plan import PlanLike, as_plan

Model = _mnq.Model


def _plan_entries(plan: Union[PlanLike, str, None]) -> Optional[Dict[str, str]]:
    return None if plan is None else as_plan(plan).to_dict()


def create(name: str, bits: Optional[int] = None, plan: Union[PlanLike, str, None] = None,
           num_classes: Optional[int] = None, img_size: Optional[int] = None,
           in_chans: Optional[int] = None, drop_path: Optional[float] = None) -> Model:
    """The C++ model of preset ``name`` (see :func:`presets`).

    ``bits=None``: full precision (timm's model). Otherwise quantized with W/A = ``bits`` and ``plan``: a
    :class:`mnq.Plan`, a mapping in the plan format, a YAML path, or a method name (``"ivit"``, ``"ibert"``,
    ``"fqvit"``) for every layer; None means ``"ivit"`` everywhere. ``num_classes``, ``img_size``, ``in_chans``
    override the preset's; ``drop_path`` is timm's ``drop_path_rate`` (stochastic depth rising linearly over the
    blocks to this rate, in training mode only; masks from torch's default CPU generator, as ``mnq.quantize``'s
    blocks). The model starts in training mode: calibrate it (training-mode forwards) before eval.
    Raises ValueError on an unknown preset, a bad plan or bits.
    """
    if bits is not None and (isinstance(bits, bool) or not isinstance(bits, int)):
        raise ValueError(f"mnq.models.create: bits must be an int in [2, 16] or None, got {bits!r}")
    return _mnq.create(name, bits, _plan_entries(plan), num_classes, img_size, in_chans, drop_path)


def presets() -> List[str]:
    """Every C++ preset name: ViT/DeiT, then Swin."""
    return _mnq.presets()


def preset_layers(name: str, num_classes: Optional[int] = None, img_size: Optional[int] = None,
                  in_chans: Optional[int] = None) -> Dict[str, str]:
    """{layer: op type} of the mixable layers of preset ``name`` (after overrides), in forward order."""
    return _mnq.mixable_layers(name, num_classes, img_size, in_chans)


def frozen_weights():
    """Context manager: while it is open, with autograd off, every QuantLinear / QuantConv2d of the C++ models
    (:func:`create`) keeps its fake-quantized weight and per-channel scale between forwards instead of recomputing
    both from the unchanged weight at every call (csrc/nn/layers.h ``FrozenWeightsScope``, what the analyzer and the
    trainer's evaluation run under). The outputs are the same tensors' values. A kept weight is used again only
    while the weight is the same tensor at the same version and address, so an in-place update, a load or an
    optimizer step inside the scope is seen; the scope's end frees the kept copies (one fake-quant copy of each
    weight while it is open). Forwards with autograd on recompute as always. Python-side models
    (:class:`QuantVisionTransformer`, ``mnq.nn``) are not affected. ::

        with torch.no_grad(), mnq.frozen_weights():
            for x in batches:
                logits = model(x)

    (vit_mnist_tiny at W8, 1 thread: an eval forward of 1 image 1.16 → 0.91 ms, of 64 images 24.4 → 19.6 ms.)
    """
    return _mnq.FrozenWeights()
