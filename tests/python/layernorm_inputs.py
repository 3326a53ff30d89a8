"""Realistic inputs of the LayerNorm tests: ViT residual streams, LayerNorm parameters and the method's wiring.

A ViT residual stream is roughly N(0, 1) per channel with channel gains spread over an order of magnitude, a
per-token offset, and a few outlier channels tens of times larger than the rest (the reason FQ-ViT introduced
power-of-two factors). Each LayerNorm method reads it through its own quantizer (SPEC §6): I-LayerNorm a 16-bit
QuantAct, I-BERT LayerNorm a 22-bit one, PTF LayerNorm an 8-bit PtfAct with per-channel α.
"""
import torch

from mnq import reference


def residual_stream(shape, outliers=4, outlier_gain=30.0, seed=0):
    """float64 [..., C] residual-stream activations."""
    g = torch.Generator().manual_seed(seed)
    cols = shape[-1]
    gain = torch.exp(0.6 * torch.randn(cols, generator=g, dtype=torch.float64))
    idx = torch.randperm(cols, generator=g)[: min(outliers, cols)]
    gain[idx] *= outlier_gain
    offset = 0.5 * torch.randn(*shape[:-1], 1, generator=g, dtype=torch.float64)
    return torch.randn(*shape, generator=g, dtype=torch.float64) * gain + offset


def ln_params(cols, seed=1):
    """LayerNorm γ (mostly around 1, a few small or negative) and β, float32 like a model's parameters."""
    g = torch.Generator().manual_seed(seed)
    weight = 1.0 + 0.3 * torch.randn(cols, generator=g)
    weight[::17] *= -0.2  # a few small and negative gains
    bias = 0.2 * torch.randn(cols, generator=g)
    return weight, bias


def quant_act(x, bits):
    """Per-tensor symmetric QuantAct (SPEC §1): (int64 codes, scale)."""
    scale = float(x.abs().max().clamp(min=1e-8)) / (2 ** (bits - 1) - 1)
    return reference.quantize(x, scale, bits), scale


def ptf_act(x, bits=8):
    """PtfAct (SPEC §1): base scale S_b/8, per-channel α minimising the squared error. (codes, alpha, s_base)."""
    s_base = float(x.abs().max()) / (2 ** (bits - 1) - 1) / 8
    alpha = reference.ptf_alpha_error(x, s_base, bits).argmin(-1)  # ties → the smaller α
    return reference.ptf_quantize(x, alpha, s_base, bits), alpha, s_base


def ptf_dequant(q, alpha, s_base):
    return q.to(torch.float64) * (s_base * 2.0 ** alpha.to(torch.float64))


def layer_norm(x, weight, bias):
    """The float op the methods approximate, in float64."""
    return torch.nn.functional.layer_norm(x.to(torch.float64), (x.shape[-1],), weight.double(), bias.double(), 1e-12)


def assert_layer_norm_grads(y, x, weight, bias, eps):
    """The gradients of y (a QAT LayerNorm of x) for x, weight and bias are those of F.layer_norm at x (SPEC §5)."""
    g = torch.randn_like(y)
    got = torch.autograd.grad(y, (x, weight, bias), g)
    xr, wr, br = (t.detach().to(x.dtype).clone().requires_grad_(True) for t in (x, weight, bias))
    want = torch.autograd.grad(torch.nn.functional.layer_norm(xr, (x.shape[-1],), wr, br, eps), (xr, wr, br), g)
    for name, t, a, e in zip(("x", "weight", "bias"), (x, weight, bias), got, want):
        assert a.dtype == t.dtype, name
        torch.testing.assert_close(a.to(x.dtype), e, msg=name)
