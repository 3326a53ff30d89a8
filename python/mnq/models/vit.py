"""Quantized ViT / DeiT (SPEC §6, I-ViT layout) and its construction from a timm ``VisionTransformer``.

The C++ twin (csrc/models/qvit.h, ``mnq.models.create``) has the same module tree and state_dict keys. Parameters
carry timm's names. Embedding: image → ``qact_input``(b) → ``patch_embed.proj`` (QuantConv2d) → tokens joined
with the class (and distillation) token → ``qact_embed``(16); the position embedding → ``qact_pos``(16);
``qact_pos_add``(16, or 22 before an ibert LayerNorm) fuses the two. Then the blocks (blocks.py), the final
``norm`` over every token → ``qact_norm``(b) on the prefix tokens only (what the heads read) → ``head``.
DeiT distilled: ``head_dist`` on the distillation token; in eval the two heads' logits are averaged, like timm.
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
from torch import Tensor, nn

from .. import ops
from ..nn import IntGELU, IntLayerNorm, IntSoftmax, QuantAct, QuantConv2d, QuantLinear
from ..plan import PlanLike, as_plan
from .blocks import RESIDUAL_BITS, QuantBlock, QuantPatchEmbed, norm_then_act, residual_bits

_OP_TYPES = ((IntLayerNorm, "layernorm"), (IntSoftmax, "softmax"), (IntGELU, "gelu"))


def vit_layer_names(depth: int) -> Dict[str, str]:
    """The mixable layers of a ViT/DeiT with `depth` blocks, in forward order: {name: op_type}."""
    layers = {}
    for i in range(depth):
        layers.update({f"blocks.{i}.norm1": "layernorm", f"blocks.{i}.attn.softmax": "softmax",
                       f"blocks.{i}.norm2": "layernorm", f"blocks.{i}.mlp.gelu": "gelu"})
    layers["norm"] = "layernorm"
    return layers


def mixable_layers(model: nn.Module) -> Dict[str, str]:
    """{name: op_type} of every integer non-linear module of a quantized model, in registration order."""
    found = {}
    for name, m in model.named_modules():
        for cls, op_type in _OP_TYPES:
            if isinstance(m, cls):
                found[name] = op_type
    return found


class QuantVisionTransformer(nn.Module):
    """ViT/DeiT with class token (and DeiT's distillation token), token pooling and a linear head.

    ``plan`` is the resolved {layer name: method}; the model is built in training mode, ready for calibration.
    """

    def __init__(self, *, img_size: int, patch_size: int, in_chans: int, num_classes: int, embed_dim: int,
                 depth: int, num_heads: int, mlp_hidden: int, qkv_bias: bool, plan: Dict[str, str], bits: int,
                 distilled: bool = False, eps: float = 1e-6):
        super().__init__()
        self.plan = dict(plan)
        self.bits = bits
        self.num_prefix_tokens = 2 if distilled else 1
        num_patches = (img_size // patch_size) ** 2
        # the LayerNorm reading each residual stream, in order: embedding → blocks.0.norm1, attention residual of
        # block i → blocks.i.norm2, MLP residual of block i → blocks.{i+1}.norm1 (the last one → norm)
        readers = [f"blocks.{i}.{n}" for i in range(depth) for n in ("norm1", "norm2")] + ["norm"]

        self.qact_input = QuantAct(bits)
        self.patch_embed = QuantPatchEmbed(
            QuantConv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size, bits=bits))
        self.qact_embed = QuantAct(RESIDUAL_BITS)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if distilled else None
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + self.num_prefix_tokens, embed_dim))
        self.qact_pos = QuantAct(RESIDUAL_BITS)
        self.qact_pos_add = QuantAct(residual_bits(self.plan[readers[0]]))
        self.blocks = nn.ModuleList(
            QuantBlock(embed_dim, num_heads, mlp_hidden, qkv_bias, bits=bits, eps=eps,
                       methods={k: self.plan[f"blocks.{i}.{n}"] for k, n in
                                (("norm1", "norm1"), ("softmax", "attn.softmax"), ("norm2", "norm2"),
                                 ("gelu", "mlp.gelu"))},
                       out_bits=residual_bits(self.plan[readers[2 * i + 2]]))
            for i in range(depth))
        self.norm = IntLayerNorm(embed_dim, method=self.plan["norm"], eps=eps, ptf_bits=bits)
        self.qact_norm = QuantAct(bits)
        self.head = QuantLinear(embed_dim, num_classes, bits=bits)
        self.head_dist = QuantLinear(embed_dim, num_classes, bits=bits) if distilled else None
        self.distilled_training = False  # as timm: True makes training-mode forward return both heads' logits

    def mixable_layers(self) -> Dict[str, str]:
        return mixable_layers(self)

    def embed(self, x: Tensor):
        x, s = self.qact_input(x)
        x, s = self.patch_embed.proj(x, s)
        x = x.flatten(2).transpose(1, 2)  # [B, N, C], per-channel scale s on the last dim
        tokens = [self.cls_token] + ([self.dist_token] if self.dist_token is not None else [])
        prefix = torch.cat([t.expand(x.shape[0], -1, -1) for t in tokens], dim=1)
        # qact_embed quantizes the joined sequence: one range over all of it (observed as one QuantAct does), the
        # class/dist tokens (float parameters) quantized, the patch tokens (codes on the conv's per-channel scale)
        # requantized by the dyadic requant of their codes — what the integer engine (mnq.deploy) computes — rather
        # than re-rounded from their float32 values, whose rounding could move a code by one.
        act = self.qact_embed
        if act.training:
            act._observe(torch.cat([prefix, x], dim=1))
        else:
            act._check_calibrated()
        x = torch.cat([ops.quantize_qat(prefix, act.scale, act.bits), ops.requant_qat(x, s, act.scale, act.bits)],
                      dim=1)
        s = act.scale.clone()
        pos, s_pos = self.qact_pos(self.pos_embed)
        return self.qact_pos_add(x, s, pos.expand_as(x), s_pos)

    def forward_features(self, x: Tensor):
        """Prefix tokens after the final norm and its QuantAct: ([B, P, C], scale)."""
        x, s = self.embed(x)
        for blk in self.blocks:
            x, s = blk(x, s)
        return norm_then_act(self.norm, self.qact_norm, x, s, tokens=slice(0, self.num_prefix_tokens))

    def forward(self, x: Tensor):
        x, s = self.forward_features(x)
        logits, _ = self.head(x[:, 0], s)
        if self.head_dist is None:
            return logits
        logits_dist, _ = self.head_dist(x[:, 1], s)
        if self.distilled_training and self.training:
            return logits, logits_dist
        return (logits + logits_dist) / 2


def _unsupported(model: nn.Module) -> Optional[str]:
    """Why a timm VisionTransformer falls outside the I-ViT layout this module builds, or None."""
    from timm.layers import Mlp
    from timm.models.vision_transformer import Attention, Block

    if model.cls_token is None or getattr(model, "reg_token", None) is not None:
        return "it needs a class token and no register tokens"
    if model.global_pool != "token" or not isinstance(model.fc_norm, nn.Identity) or model.attn_pool is not None:
        return "it needs global_pool='token' with no fc_norm or attention pooling"
    if model.pos_embed is None or model.no_embed_class or model.dynamic_img_size:
        return "it needs a learned position embedding over all tokens (no no_embed_class, no dynamic_img_size)"
    if not isinstance(model.norm_pre, nn.Identity) or not isinstance(model.patch_embed.norm, nn.Identity):
        return "it cannot have norm_pre or a patch-embedding norm"
    if model.patch_embed.proj.bias is None:
        return "its patch embedding needs a bias"
    if not isinstance(model.head, nn.Linear):
        return "it needs a linear head (num_classes > 0)"
    for name, m in model.named_modules():  # drop-path is carried over (blocks.drop_path); dropout is not
        if isinstance(m, nn.Dropout) and m.p > 0:
            return f"{name} drops activations (dropout); build the timm model with drop_rate and attn_drop_rate 0"
    for i, blk in enumerate(model.blocks):
        ok = (type(blk) is Block and type(blk.attn) is Attention and type(blk.mlp) is Mlp
              and isinstance(blk.ls1, nn.Identity) and isinstance(blk.ls2, nn.Identity)
              and isinstance(blk.attn.q_norm, nn.Identity) and isinstance(blk.attn.norm, nn.Identity)
              and getattr(blk.attn, "gate", None) is None and isinstance(blk.mlp.norm, nn.Identity)
              and isinstance(blk.mlp.act, nn.GELU) and blk.attn.proj.bias is not None
              and blk.mlp.fc1.bias is not None and blk.mlp.fc2.bias is not None)
        if not ok:
            return (f"blocks.{i} is not a plain pre-norm Block (Attention without qk/scale norm or gate, GELU Mlp "
                    "with biases, no layer scale)")
    return None


@torch.no_grad()
def _drop_rate(block: nn.Module) -> float:
    """The stochastic-depth rate of a timm block: its DropPath modules (drop_path1, drop_path2: one rate for both
    branches in timm), 0 without."""
    from timm.layers import DropPath

    rates = {float(m.drop_prob) for m in (getattr(block, "drop_path1", None), getattr(block, "drop_path2", None))
             if isinstance(m, DropPath)}
    if len(rates) > 1:
        raise ValueError(f"mnq.quantize: a block with two drop-path rates {sorted(rates)} (one per block expected)")
    return rates.pop() if rates else 0.0


def _copy(dst: nn.Module, src: nn.Module) -> None:
    dst.weight.copy_(src.weight)
    if src.bias is not None:
        dst.bias.copy_(src.bias)


@torch.no_grad()
def quantize_vit(model: nn.Module, plan: PlanLike, bits: int) -> QuantVisionTransformer:
    """Build the quantized equivalent of a timm VisionTransformer / VisionTransformerDistilled (weights copied;
    the source model is not modified)."""
    reason = _unsupported(model)
    if reason is not None:
        raise ValueError(f"mnq.quantize: unsupported {type(model).__name__}: {reason}")
    pe = model.patch_embed.proj
    if pe.kernel_size != pe.stride or pe.kernel_size[0] != pe.kernel_size[1] or pe.padding != (0, 0):
        raise ValueError("mnq.quantize: the patch embedding must be a square, non-overlapping convolution")
    img = model.patch_embed.img_size
    if img[0] != img[1]:
        raise ValueError(f"mnq.quantize: square images only, got img_size {img}")
    depth = len(model.blocks)
    resolved = as_plan(plan).resolve(vit_layer_names(depth))
    blk0 = model.blocks[0] if depth else None
    q = QuantVisionTransformer(
        img_size=img[0], patch_size=pe.kernel_size[0], in_chans=pe.in_channels, num_classes=model.head.out_features,
        embed_dim=model.embed_dim, depth=depth, num_heads=blk0.attn.num_heads if depth else 1,
        mlp_hidden=blk0.mlp.fc1.out_features if depth else 1,
        qkv_bias=blk0 is not None and blk0.attn.qkv.bias is not None, plan=resolved, bits=bits,
        distilled=getattr(model, "dist_token", None) is not None, eps=model.norm.eps)
    _copy(q.patch_embed.proj, pe)
    q.cls_token.copy_(model.cls_token)
    q.pos_embed.copy_(model.pos_embed)
    if q.dist_token is not None:
        q.dist_token.copy_(model.dist_token)
        _copy(q.head_dist, model.head_dist)
        q.distilled_training = bool(getattr(model, "distilled_training", False))
    for qb, b in zip(q.blocks, model.blocks):
        qb.drop_path = _drop_rate(b)
        for dst, src in ((qb.norm1, b.norm1), (qb.norm2, b.norm2), (qb.attn.qkv, b.attn.qkv),
                         (qb.attn.proj, b.attn.proj), (qb.mlp.fc1, b.mlp.fc1), (qb.mlp.fc2, b.mlp.fc2)):
            _copy(dst, src)
    _copy(q.norm, model.norm)
    _copy(q.head, model.head)
    return q.to(model.pos_embed.device)
