"""Helpers of the deploy tests and scripts/check_deploy.py: Fashion-MNIST test images, calibrated tiny models and
the integer-logit comparison between the fake-quant model and the integer engine."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

import mnq

FASHION = Path("/usr/share/datasets/fashion-mnist")
MEAN, STD = 0.2860, 0.3530  # configs/fashion_mnist.yaml

# The plans of the equality tests: uniform I-ViT / I-BERT / FQ-ViT and a mix of every method per op type.
PLANS = {
    "ivit": "ivit",
    "ibert": "ibert",
    "fqvit": "fqvit",
    "mixed": {"all": "ivit", "blocks.0.norm1": "ibert", "blocks.0.attn.softmax": "fqvit", "blocks.0.mlp.gelu": "ibert",
              "blocks.1.norm2": "fqvit", "blocks.1.attn.softmax": "ibert", "blocks.2.mlp.gelu": "fqvit",
              "norm": "ibert"},
}
SWIN_MIXED = {"all": "ivit", "layers.0.blocks.0.norm1": "ibert", "layers.0.blocks.1.attn.softmax": "fqvit",
              "layers.0.blocks.1.mlp.gelu": "ibert", "layers.1.downsample.norm": "fqvit",
              "layers.1.blocks.0.attn.softmax": "ibert", "layers.1.blocks.1.norm2": "fqvit",
              "layers.1.blocks.1.mlp.gelu": "fqvit", "norm": "ibert"}


def fashion_test_images(n: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The first n (0: all 10 000) Fashion-MNIST test images, normalised as the main job does, and labels."""
    with gzip.open(FASHION / "t10k-images-idx3-ubyte.gz") as f:
        raw = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    with gzip.open(FASHION / "t10k-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    if n:
        raw, labels = raw[:n], labels[:n]
    x = (torch.from_numpy(raw.copy()).float() / 255.0 - MEAN) / STD
    return x, torch.from_numpy(labels.astype(np.int64))


@torch.no_grad()
def unit_scale_init(model) -> None:
    """Random weights with unit-scale activations (linear weights N(0, 1/fan_in), biases N(0, 0.1²), LayerNorm γ in
    [0.5, 1.5], β N(0, 0.1²)), as tests/python/test_cpp_models.py: every quantizer and channel scale is exercised
    (timm's 0.02-std init leaves the activations near zero)."""
    for name, p in model.named_parameters():
        if p.dim() >= 2 and name.endswith("weight"):
            p.normal_(0.0, p[0].numel() ** -0.5)
        elif "norm" in name and name.endswith("weight"):
            p.uniform_(0.5, 1.5)
        elif name.endswith("bias"):
            p.normal_(0.0, 0.1)


def calibrated(preset: str, bits: int, plan, calib: torch.Tensor, **overrides) -> mnq.models.Model:
    """A quantized C++ model with seeded unit-scale random weights, calibrated on `calib` batches, in eval mode."""
    torch.manual_seed(0)
    model = mnq.models.create(preset, bits=bits, plan=plan, **overrides)
    unit_scale_init(model)
    with torch.no_grad():
        for batch in calib.split(64):
            model(batch)
    model.freeze_alpha()
    return model.eval()


def integer_logits_of_fake(model, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """The fake-quant model's logits as head codes: round(logits / S_head) (SPEC §5 code recovery). The fake head
    is a float32 GEMM, so its logits are acc·S up to float rounding; the codes are what both paths compute."""
    with torch.no_grad():
        return torch.round(model(x).double() / scale).long()


def compare(model, imodel, x: torch.Tensor, batch: int = 250) -> dict:
    """Element and top-1 agreement of the integer logits of the fake-quant model and the integer engine."""
    equal = total = top1_equal = 0
    max_diff = 0
    for xb in x.split(batch):
        q, s = imodel.forward_int(xb)
        if q.dim() == 3:  # distilled: compare the mean of both heads' dequantized logits instead
            raise ValueError("compare: distilled models are compared through their dequantized logits")
        ref = integer_logits_of_fake(model, xb, s)
        q = q.long()
        equal += int((q == ref).sum())
        total += q.numel()
        max_diff = max(max_diff, int((q - ref).abs().max()))
        top1_equal += int((q.argmax(1) == ref.argmax(1)).sum())
    return {"elements": equal / total, "top1": top1_equal / x.shape[0], "max_diff": max_diff}
