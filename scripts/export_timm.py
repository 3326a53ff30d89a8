#!/usr/bin/env python3
"""Writes a ViT / DeiT's weights as a safetensors file keyed by timm's parameter names, which mnq's C++ models
(csrc/models/weights.h: load_weights) read directly.

    python scripts/export_timm.py --model deit_tiny_patch16_224 --out deit_tiny.safetensors            # random init
    python scripts/export_timm.py --model deit_tiny_patch16_224 --checkpoint ckpt.pth --out deit_tiny.safetensors
    python scripts/export_timm.py --model vit_mnist_tiny --seed 0 --out tiny.safetensors

--model: a timm model name, or one of mnq's small presets (MNQ_PRESETS below: timm architectures with timm
keyword overrides, mirroring csrc/models/presets.cpp). Without --checkpoint the weights are timm's own random
initialisation (pretrained=False) after torch.manual_seed(--seed); with it, the checkpoint (a timm .pth /
.safetensors state dict) is loaded by timm.models.load_checkpoint.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

# mnq preset -> (timm architecture, keyword overrides); 28x28 one-channel input, patch 4, 10 classes.
_MNIST = dict(img_size=28, patch_size=4, in_chans=1, num_classes=10)
MNQ_PRESETS = {
    "vit_mnist_tiny": ("vit_tiny_patch16_224", dict(_MNIST, embed_dim=64, depth=4, num_heads=4)),
    "vit_mnist_small": ("vit_tiny_patch16_224", dict(_MNIST, embed_dim=128, depth=6, num_heads=4)),
    "deit_mnist_tiny_distilled": ("deit_tiny_distilled_patch16_224", dict(_MNIST, embed_dim=64, depth=4, num_heads=4)),
    "swin_mnist_tiny": ("swin_tiny_patch4_window7_224",
                        dict(_MNIST, patch_size=2, embed_dim=32, depths=(2, 2), num_heads=(2, 4), window_size=7)),
}


def build_model(name: str, checkpoint: str | None = None, seed: int = 0) -> torch.nn.Module:
    """The timm model for `name` (timm name or mnq preset), random-initialised from `seed` or from `checkpoint`."""
    import timm

    arch, kwargs = MNQ_PRESETS.get(name, (name, {}))
    torch.manual_seed(seed)
    model = timm.create_model(arch, pretrained=False, **kwargs)
    if checkpoint is not None:
        timm.models.load_checkpoint(model, checkpoint, strict=True)
    return model.eval()


def export(model: torch.nn.Module, out: Path) -> int:
    """Writes every parameter (contiguous CPU copies, timm names); returns the number of tensors."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in model.named_parameters()}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": "pt"})
    tmp.replace(out)  # atomic: a reader never sees a half-written file
    return len(tensors)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="timm model name or mnq preset (" + ", ".join(MNQ_PRESETS) + ")")
    ap.add_argument("--checkpoint", help="timm checkpoint to load (default: timm's random initialisation)")
    ap.add_argument("--seed", type=int, default=0, help="torch seed for the random initialisation (default 0)")
    ap.add_argument("--out", required=True, type=Path, help="output .safetensors file")
    args = ap.parse_args()
    n = export(build_model(args.model, args.checkpoint, args.seed), args.out)
    print(f"wrote {n} tensors of {args.model} to {args.out}")


if __name__ == "__main__":
    main()
