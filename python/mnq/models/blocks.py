"""Quantized transformer blocks in the I-ViT layout (SPEC §6), built from mnq.nn modules.

Every tensor between modules is a pair ``(x, scale)``: x = q·scale holds integer codes q on `scale` (per tensor, or
per channel of the last dim after a LayerNorm or a linear layer). The C++ twins (csrc/models/qblocks.h) have the
same module names, registration order and statements, so a state_dict moves between the two and the same weights,
plan, bits and calibration batches give bit-identical outputs. Per block (b = the W/A bit-width setting)::

    norm1 → qact_norm1(b) → attn[qkv → qact_qkv(b) → q@kᵀ·d^-½ → qact_scores(b) → softmax → attn@v → qact_av(b)
    → proj → qact_proj(16)] → qact_res1(16, + residual) → norm2 → qact_norm2(b) → mlp[fc1 → qact_fc1(b) → gelu
    → qact_gelu(b) → fc2 → qact_fc2(16)] → qact_res2(16, + residual)

Parameters carry timm's names. The mixable layers are the modules named ``norm1``, ``attn.softmax``, ``norm2``,
``mlp.gelu`` (and the model's ``norm``); their method decides the wiring around them:

- a LayerNorm using ``ibert`` reads a 22-bit residual (its producer is built with 22 bits, see ``residual_bits``);
- a LayerNorm using ``fqvit`` reads the residual through its own PtfAct and quantizes its output directly on the
  scale of the QuantAct after it (``scale_next``; that QuantAct's range is seeded from the float LayerNorm on the
  first calibration batch, see ``norm_then_act``);
- a GELU using ``ibert`` takes the fc1 accumulator (per-channel scale S_a·S_w): ``mlp.qact_fc1`` is absent.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..nn import IntGELU, IntLayerNorm, IntSoftmax, QuantAct, QuantLinear, QuantMatMul

RESIDUAL_BITS = 16
IBERT_LAYERNORM_BITS = 22  # I-BERT LayerNorm keeps log2(2^31/std) bits of f: it needs a 22-bit input (SPEC §4.2)


def residual_bits(norm_method: str) -> int:
    """Width of the QuantAct that produces the residual stream read by a LayerNorm using `norm_method`."""
    return IBERT_LAYERNORM_BITS if norm_method == "ibert" else RESIDUAL_BITS


def drop_path(x: Tensor, p: float, training: bool) -> Tensor:
    """Stochastic depth (timm's DropPath, SPEC §8): in training, each sample's branch is dropped with
    probability ``p`` and the kept ones are scaled by 1/(1 − p). The mask is drawn on the CPU from torch's default
    generator, as the C++ blocks do (csrc/models/drop_path.cpp), so the same seed gives the same masks in both and
    on any device. For a CUDA ``x`` it is drawn into pinned memory and copied with ``non_blocking=True``, so the
    step does not wait for the GPU."""
    if p <= 0.0 or not training or x.numel() == 0:
        return x
    keep = 1.0 - p
    mask = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, pin_memory=x.is_cuda).bernoulli_(keep)
    if keep > 0.0:
        mask.div_(keep)
    return x * mask.to(x.device, non_blocking=True)


def norm_then_act(norm: IntLayerNorm, act: QuantAct, x: Tensor, scale: Tensor,
                  tokens: Optional[slice] = None) -> Tuple[Tensor, Tensor]:
    """LayerNorm followed by its output QuantAct, passing that QuantAct's scale to a PTF (fqvit) LayerNorm.

    ``tokens`` keeps only those tokens (dim 1) between the two: the final norm feeds the head only its class
    (and distillation) tokens, but normalises every token, as the float model does.
    """
    def keep(t: Tensor) -> Tensor:
        return t if tokens is None else t[:, tokens]

    if norm.method != "fqvit":
        y, s = norm(x, scale)
        return act(keep(y), s)
    if act.training and not act.calibrated:
        # First calibration batch: the PTF LayerNorm quantizes its output on act's scale, which has no range yet.
        # Seed the range from the float LayerNorm so that first output is not rounded on the placeholder scale 1.
        act._observe(keep(F.layer_norm(x.detach(), norm.normalized_shape, norm.weight.detach(),
                                       norm.bias.detach(), norm.eps)))
    y, s = norm(x, None, act.scale)
    return act(keep(y), s)


class QuantPatchEmbed(nn.Module):
    """timm's ``patch_embed`` scope: ``proj`` (the patch QuantConv2d) and, in Swin, ``norm``. The quantizers
    around them belong to the model (``qact_input``, ``qact_embed``, …), because the model joins other tensors
    (class tokens, position embedding) to the patches before quantizing; the C++ twin is laid out alike."""

    def __init__(self, proj: nn.Module, norm: Optional[nn.Module] = None):
        super().__init__()
        self.proj = proj
        if norm is not None:
            self.norm = norm


class QuantAttention(nn.Module):
    """qkv → QuantAct(b) → q@kᵀ·d^-½ → QuantAct(b) → softmax → attn@v → QuantAct(b) → proj → QuantAct(16).

    The softmax output goes to attn@v without a QuantAct: it is already integer on a power-of-two scale (16-bit
    probabilities for ivit/ibert, 2^-code log values for fqvit, i.e. shifts on hardware).
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool, softmax_method: str, bits: int,
                 softmax_out_bits: int = 16):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"QuantAttention: dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = QuantLinear(dim, 3 * dim, bias=qkv_bias, bits=bits)
        self.qact_qkv = QuantAct(bits)
        self.matmul_qk = QuantMatMul()
        self.qact_scores = QuantAct(bits)
        # ivit: 16 output bits (8 in Swin); ibert: 16; fqvit ignores out_bits (4-bit log codes)
        out_bits = softmax_out_bits if softmax_method == "ivit" else 16
        self.softmax = IntSoftmax(softmax_method, out_bits=out_bits)
        self.matmul_av = QuantMatMul()
        self.qact_av = QuantAct(bits)
        self.proj = QuantLinear(dim, dim, bits=bits)
        self.qact_proj = QuantAct(RESIDUAL_BITS)

    def quantize_scores(self, attn: Tensor, s_attn: Tensor) -> Tuple[Tensor, Tensor]:
        """The scores QuantAct; Swin's window attention also adds its relative-position bias and shift mask here."""
        return self.qact_scores(attn, s_attn)

    def forward(self, x: Tensor, scale: Tensor) -> Tuple[Tensor, Tensor]:
        """x [B, N, C] → [B, N, C] on the proj QuantAct's 16-bit scale."""
        B, N, C = x.shape
        x, s = self.qkv(x, scale)
        x, s_qkv = self.qact_qkv(x, s)
        q, k, v = x.reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        attn, s_attn = self.matmul_qk(q, s_qkv, k.transpose(-2, -1), s_qkv)
        # d^-½ multiplies values and scale alike, so the integer codes are unchanged (as in I-ViT)
        attn, s_attn = self.quantize_scores(attn.mul_(self.scale), s_attn * self.scale)  # in place: attn owns its buffer
        attn, s_attn = self.softmax(attn, s_attn)
        x, s = self.matmul_av(attn, s_attn, v, s_qkv)
        x, s = self.qact_av(x.transpose(1, 2).reshape(B, N, self.num_heads * self.head_dim), s)
        x, s = self.proj(x, s)
        return self.qact_proj(x, s)


class QuantMlp(nn.Module):
    """fc1 → [QuantAct(b) unless GELU is ibert] → gelu → QuantAct(b) → fc2 → QuantAct(16)."""

    def __init__(self, dim: int, hidden: int, gelu_method: str, bits: int):
        super().__init__()
        self.fc1 = QuantLinear(dim, hidden, bits=bits)
        self.qact_fc1 = None if gelu_method == "ibert" else QuantAct(bits)
        self.gelu = IntGELU(gelu_method)
        self.qact_gelu = QuantAct(bits)
        self.fc2 = QuantLinear(hidden, dim, bits=bits)
        self.qact_fc2 = QuantAct(RESIDUAL_BITS)

    def forward(self, x: Tensor, scale: Tensor) -> Tuple[Tensor, Tensor]:
        x, s = self.fc1(x, scale)
        if self.qact_fc1 is not None:
            x, s = self.qact_fc1(x, s)
        x, s = self.gelu(x, s)
        x, s = self.qact_gelu(x, s)  # s is None after the float (fqvit) GELU: quantize from float
        x, s = self.fc2(x, s)
        return self.qact_fc2(x, s)


class QuantBlock(nn.Module):
    """Pre-norm transformer block; both residual adds are fused into the QuantAct that ends each branch.

    ``methods``: {"norm1", "softmax", "norm2", "gelu"} -> method. ``out_bits``: width of the block's final
    residual QuantAct, decided by the method of the LayerNorm that reads it (the next block's norm1 or the
    final norm); the attention residual's width follows this block's norm2. ``drop_path``: the stochastic-depth
    rate of both branches (applied before their residual QuantAct, as the C++ block does).
    """

    def __init__(self, dim: int, num_heads: int, mlp_hidden: int, qkv_bias: bool, methods: dict, bits: int,
                 out_bits: int, eps: float = 1e-6, softmax_out_bits: int = 16, drop_path: float = 0.0):
        super().__init__()
        self.drop_path = drop_path
        self.norm1 = IntLayerNorm(dim, method=methods["norm1"], eps=eps, ptf_bits=bits)
        self.qact_norm1 = QuantAct(bits)
        self.attn = QuantAttention(dim, num_heads, qkv_bias, methods["softmax"], bits, softmax_out_bits)
        self.qact_res1 = QuantAct(residual_bits(methods["norm2"]))
        self.norm2 = IntLayerNorm(dim, method=methods["norm2"], eps=eps, ptf_bits=bits)
        self.qact_norm2 = QuantAct(bits)
        self.mlp = QuantMlp(dim, mlp_hidden, methods["gelu"], bits)
        self.qact_res2 = QuantAct(out_bits)

    def forward(self, x: Tensor, scale: Tensor) -> Tuple[Tensor, Tensor]:
        h, s = norm_then_act(self.norm1, self.qact_norm1, x, scale)
        h, s = self.attn(h, s)
        x, scale = self.qact_res1(drop_path(h, self.drop_path, self.training), s, x, scale)
        h, s = norm_then_act(self.norm2, self.qact_norm2, x, scale)
        h, s = self.mlp(h, s)
        return self.qact_res2(drop_path(h, self.drop_path, self.training), s, x, scale)
