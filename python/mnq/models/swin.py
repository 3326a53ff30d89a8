"""Quantized Swin Transformer (SPEC §6, I-ViT layout) and its construction from a timm ``SwinTransformer``.

The C++ twin (csrc/models/qswin.h, ``mnq.models.create``) has the same module tree and state_dict keys;
parameters carry timm's names. Same block wiring as ViT (blocks.py, LayerNorm eps 1e-5 as timm's Swin), plus:
window partition and cyclic shift (pure permutations of codes, so they pass a (x, scale) pair through untouched);
``attn.qact_bias``(16) quantizes the relative-position bias, which ``attn.qact_scores``(b) fuses into the scores
like a residual; the shift mask added as whole codes on the scores' scale (−100 in real units, which the integer
softmaxes' clamp of x − max turns into exp ≈ 0); I-ViT's 8-bit Shiftmax output. Patch merging
(``layers.{s}.downsample``): its mixable ``norm`` → ``qact_norm``(b) → ``reduction`` → ``qact_out`` (the next
residual quantizer). Embedding: ``qact_input``(b) → ``patch_embed.proj`` → ``qact_embed``(16) →
``patch_embed.norm`` → ``qact_patch_norm``; that LayerNorm is not mixable (SPEC §6 names no such layer) and uses
I-LayerNorm, as I-ViT's Swin does. Head: final ``norm`` → ``qact_norm``(b) → average over tokens →
``qact_pool``(b) → ``head.fc``.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

from ..nn import IntLayerNorm, QuantAct, QuantConv2d, QuantLinear
from ..plan import PlanLike, as_plan
from .blocks import (RESIDUAL_BITS, QuantAttention, QuantMlp, QuantPatchEmbed, drop_path, norm_then_act,
                     residual_bits)
from .vit import _copy, _drop_rate, mixable_layers

SWIN_SHIFTMAX_BITS = 8  # I-ViT's Swin: Shiftmax output on 8 bits (16 in ViT/DeiT)


class QuantWindowAttention(QuantAttention):
    def __init__(self, dim: int, num_heads: int, window_size: int, qkv_bias: bool, softmax_method: str, bits: int):
        super().__init__(dim, num_heads, qkv_bias, softmax_method, bits, softmax_out_bits=SWIN_SHIFTMAX_BITS)
        n = window_size ** 2
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        # derived from the window size, not state (as timm: non-persistent)
        self.register_buffer("relative_position_index", torch.zeros(n, n, dtype=torch.long), persistent=False)
        self.register_buffer("attn_mask", None, persistent=False)  # [nW, N, N] of 0 / −100, or None
        self.qact_bias = QuantAct(RESIDUAL_BITS)

    def quantize_scores(self, attn: Tensor, s_attn: Tensor) -> Tuple[Tensor, Tensor]:
        n = self.relative_position_index.shape[0]
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(n, n, -1)
        bias, s_bias = self.qact_bias(bias.permute(2, 0, 1).unsqueeze(0))
        attn, s = self.qact_scores(attn, s_attn, bias.expand_as(attn), s_bias)
        if self.attn_mask is not None:
            nw = self.attn_mask.shape[0]
            codes = torch.round(self.attn_mask / s.to(attn)) * s.to(attn)
            attn = (attn.view(-1, nw, self.num_heads, n, n) + codes[None, :, None]).view(-1, self.num_heads, n, n)
        return attn, s


class QuantSwinBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, window_size: int, shift_size: int, mlp_hidden: int,
                 qkv_bias: bool, methods: dict, bits: int, out_bits: int, eps: float, drop_path: float = 0.0):
        super().__init__()
        self.window_size, self.shift_size = window_size, shift_size
        self.drop_path = drop_path  # stochastic depth of both branches (blocks.drop_path)
        self.norm1 = IntLayerNorm(dim, method=methods["norm1"], eps=eps, ptf_bits=bits)
        self.qact_norm1 = QuantAct(bits)
        self.attn = QuantWindowAttention(dim, num_heads, window_size, qkv_bias, methods["softmax"], bits)
        self.qact_res1 = QuantAct(residual_bits(methods["norm2"]))
        self.norm2 = IntLayerNorm(dim, method=methods["norm2"], eps=eps, ptf_bits=bits)
        self.qact_norm2 = QuantAct(bits)
        self.mlp = QuantMlp(dim, mlp_hidden, methods["gelu"], bits)
        self.qact_res2 = QuantAct(out_bits)

    def _windows(self, x: Tensor, reverse_of: Optional[Tuple[int, ...]] = None) -> Tensor:
        """[B, H, W, C] → [B·nW, ws², C] with the cyclic shift; or back when reverse_of = (B, H, W, C)."""
        ws, sh = self.window_size, self.shift_size
        if reverse_of is None:
            B, H, W, C = x.shape
            if sh:
                x = torch.roll(x, shifts=(-sh, -sh), dims=(1, 2))
            return x.view(B, H // ws, ws, W // ws, ws, C).permute(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws, C)
        B, H, W, C = reverse_of
        x = x.view(B, H // ws, W // ws, ws, ws, C).permute(0, 1, 3, 2, 4, 5).reshape(B, H, W, C)
        return torch.roll(x, shifts=(sh, sh), dims=(1, 2)) if sh else x

    def forward(self, x: Tensor, scale: Tensor) -> Tuple[Tensor, Tensor]:
        """x [B, H, W, C] on the residual scale."""
        h, s = norm_then_act(self.norm1, self.qact_norm1, x, scale)
        h, s = self.attn(self._windows(h), s)
        h = drop_path(self._windows(h, reverse_of=tuple(x.shape)), self.drop_path, self.training)
        x, scale = self.qact_res1(h, s, x, scale)
        h, s = norm_then_act(self.norm2, self.qact_norm2, x, scale)
        h, s = self.mlp(h, s)
        return self.qact_res2(drop_path(h, self.drop_path, self.training), s, x, scale)


class QuantPatchMerging(nn.Module):
    def __init__(self, dim: int, out_dim: int, method: str, bits: int, out_bits: int, eps: float):
        super().__init__()
        self.norm = IntLayerNorm(4 * dim, method=method, eps=eps, ptf_bits=bits)
        self.qact_norm = QuantAct(bits)
        self.reduction = QuantLinear(4 * dim, out_dim, bias=False, bits=bits)
        self.qact_out = QuantAct(out_bits)

    def forward(self, x: Tensor, scale: Tensor) -> Tuple[Tensor, Tensor]:
        B, H, W, C = x.shape
        x = x.reshape(B, H // 2, 2, W // 2, 2, C).permute(0, 1, 3, 4, 2, 5).flatten(3)  # as timm's order
        x, s = norm_then_act(self.norm, self.qact_norm, x, scale)
        return self.qact_out(*self.reduction(x, s))


class QuantSwinStage(nn.Module):
    def __init__(self, downsample: Optional[QuantPatchMerging], blocks: List[QuantSwinBlock]):
        super().__init__()
        self.downsample = downsample
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: Tensor, scale: Tensor) -> Tuple[Tensor, Tensor]:
        if self.downsample is not None:
            x, scale = self.downsample(x, scale)
        for blk in self.blocks:
            x, scale = blk(x, scale)
        return x, scale


def swin_layer_names(depths: List[int]) -> Dict[str, str]:
    """Mixable layers of a Swin with these stage depths, in forward order: {name: op_type}."""
    layers = {}
    for s, depth in enumerate(depths):
        if s > 0:
            layers[f"layers.{s}.downsample.norm"] = "layernorm"
        for i in range(depth):
            p = f"layers.{s}.blocks.{i}"
            layers.update({f"{p}.norm1": "layernorm", f"{p}.attn.softmax": "softmax", f"{p}.norm2": "layernorm",
                           f"{p}.mlp.gelu": "gelu"})
    layers["norm"] = "layernorm"
    return layers


class _Head(nn.Module):
    """timm's ``head`` scope of Swin (its pooling is done by the model): ``head.fc``."""

    def __init__(self, fc: QuantLinear):
        super().__init__()
        self.fc = fc


class QuantSwinTransformer(nn.Module):
    def __init__(self, stages: nn.ModuleList, in_chans: int, patch_size: int, embed_dim: int, num_features: int,
                 num_classes: int, plan: Dict[str, str], first_reader: str, bits: int, eps: float):
        super().__init__()
        self.plan = dict(plan)
        self.bits = bits
        self.qact_input = QuantAct(bits)
        self.patch_embed = QuantPatchEmbed(
            QuantConv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size, bits=bits),
            IntLayerNorm(embed_dim, method="ivit", eps=eps, ptf_bits=bits))
        self.qact_embed = QuantAct(RESIDUAL_BITS)
        self.qact_patch_norm = QuantAct(residual_bits(self.plan[first_reader]))
        self.layers = stages
        self.norm = IntLayerNorm(num_features, method=self.plan["norm"], eps=eps, ptf_bits=bits)
        self.qact_norm = QuantAct(bits)
        self.qact_pool = QuantAct(bits)
        self.head = _Head(QuantLinear(num_features, num_classes, bits=bits))

    def mixable_layers(self) -> Dict[str, str]:
        found = mixable_layers(self)
        found.pop("patch_embed.norm")
        return found

    def forward(self, x: Tensor) -> Tensor:
        x, s = self.qact_input(x)
        x, s = self.patch_embed.proj(x, s)
        x, s = self.qact_embed(x.permute(0, 2, 3, 1), s)  # NHWC, per-channel conv scale on the last dim
        x, s = self.qact_patch_norm(*self.patch_embed.norm(x, s))
        for stage in self.layers:
            x, s = stage(x, s)
        x, s = norm_then_act(self.norm, self.qact_norm, x, s)
        # The token mean Σq·S/(H·W) is requantized from the exact sum of the codes on the scale S/(H·W) (what the
        # integer engine, mnq.deploy, computes): the float32 sum of at most 2^24/2^(b−1) codes recovers exactly.
        tokens = x.shape[1] * x.shape[2]
        x, s = self.qact_pool(x.sum(dim=(1, 2)) / tokens, s / tokens)
        return self.head.fc(x, s)[0]


def _unsupported(model: nn.Module) -> Optional[str]:
    from timm.layers import Mlp
    from timm.models.swin_transformer import PatchMerging, SwinTransformerBlock, WindowAttention

    pe = model.patch_embed
    if not isinstance(pe.norm, nn.LayerNorm) or pe.proj.kernel_size != pe.proj.stride or pe.proj.bias is None:
        return "it needs a non-overlapping, biased patch convolution followed by a LayerNorm (patch_norm=True)"
    if model.head.global_pool.pool_type != "avg" or not isinstance(model.head.fc, nn.Linear):
        return "it needs average pooling and a linear head (num_classes > 0)"
    for name, m in model.named_modules():  # drop-path is carried over (blocks.drop_path); dropout is not
        if isinstance(m, nn.Dropout) and m.p > 0:
            return f"{name} drops activations (dropout); build the timm model with drop_rate and attn_drop_rate 0"
    for s, stage in enumerate(model.layers):
        if not (isinstance(stage.downsample, PatchMerging) if s else isinstance(stage.downsample, nn.Identity)):
            return f"layers.{s}: patch merging is expected at the start of every stage but the first"
        for i, blk in enumerate(stage.blocks):
            ws, sh = blk.window_size, blk.shift_size
            H, W = blk.input_resolution
            ok = (type(blk) is SwinTransformerBlock and type(blk.attn) is WindowAttention and type(blk.mlp) is Mlp
                  and ws[0] == ws[1] and sh[0] == sh[1] and H % ws[0] == 0 and W % ws[1] == 0
                  and not getattr(blk, "dynamic_mask", False) and isinstance(blk.mlp.act, nn.GELU)
                  and blk.mlp.fc1.bias is not None and blk.mlp.fc2.bias is not None)
            if not ok:
                return (f"layers.{s}.blocks.{i} is not a plain Swin block (square windows dividing the resolution, "
                        "static shift mask, GELU Mlp with biases)")
    return None


@torch.no_grad()
def quantize_swin(model: nn.Module, plan: PlanLike, bits: int) -> QuantSwinTransformer:
    """Build the quantized equivalent of a timm SwinTransformer (weights copied; the source is not modified)."""
    reason = _unsupported(model)
    if reason is not None:
        raise ValueError(f"mnq.quantize: unsupported {type(model).__name__}: {reason}")
    depths = [len(stage.blocks) for stage in model.layers]
    layers = swin_layer_names(depths)
    resolved = as_plan(plan).resolve(layers)
    # each residual QuantAct's width follows the LayerNorm that reads it; producers and readers alternate in
    # forward order (patch embedding, then per stage: merging, then each block's two residual adds)
    readers = iter([n for n, t in layers.items() if t == "layernorm"])
    first_reader = next(readers)
    eps = model.norm.eps
    stages = []
    for s, stage in enumerate(model.layers):
        down = None
        if s:
            ds = stage.downsample
            down = QuantPatchMerging(ds.dim, ds.out_dim, resolved[f"layers.{s}.downsample.norm"], bits,
                                     residual_bits(resolved[next(readers)]), eps)
            _copy(down.norm, ds.norm)
            _copy(down.reduction, ds.reduction)
        blocks = []
        for i, blk in enumerate(stage.blocks):
            p = f"layers.{s}.blocks.{i}"
            next(readers)  # this block's norm2, which reads qact_res1 (sized inside the block)
            methods = {"norm1": resolved[f"{p}.norm1"], "softmax": resolved[f"{p}.attn.softmax"],
                       "norm2": resolved[f"{p}.norm2"], "gelu": resolved[f"{p}.mlp.gelu"]}
            qb = QuantSwinBlock(blk.norm1.normalized_shape[0], blk.attn.num_heads, blk.window_size[0],
                                blk.shift_size[0], blk.mlp.fc1.out_features, blk.attn.qkv.bias is not None,
                                methods, bits, residual_bits(resolved[next(readers)]), eps, _drop_rate(blk))
            for dst, src in ((qb.norm1, blk.norm1), (qb.norm2, blk.norm2), (qb.attn.qkv, blk.attn.qkv),
                             (qb.attn.proj, blk.attn.proj), (qb.mlp.fc1, blk.mlp.fc1), (qb.mlp.fc2, blk.mlp.fc2)):
                _copy(dst, src)
            qb.attn.relative_position_bias_table.copy_(blk.attn.relative_position_bias_table)
            qb.attn.relative_position_index.copy_(blk.attn.relative_position_index)
            qb.attn.attn_mask = None if blk.attn_mask is None else blk.attn_mask.clone()
            blocks.append(qb)
        stages.append(QuantSwinStage(down, blocks))
    pe = model.patch_embed.proj
    q = QuantSwinTransformer(nn.ModuleList(stages), pe.in_channels, pe.kernel_size[0], pe.out_channels,
                             model.num_features, model.head.fc.out_features, resolved, first_reader, bits, eps)
    _copy(q.patch_embed.proj, pe)
    _copy(q.patch_embed.norm, model.patch_embed.norm)
    _copy(q.norm, model.norm)
    _copy(q.head.fc, model.head.fc)
    return q.to(model.norm.weight.device)
