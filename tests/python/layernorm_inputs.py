"""Realistic inputs of the LayerNorm tests: ViT residual streams, LayerNorm parameters and the method's wiring.

A ViT residual stream is roughly N(0, 1) per channel with channel gains spread over an order of magnitude, a
per-token offset, and a few outlier channels tens of times larger than the rest (the reason FQ-ViT introduced
power-of-two factors). Each LayerNorm method reads it through its own quantizer (SPEC §6): I-LayerNorm a 16-bit
QuantAct, I-BERT LayerNorm a 22-bit one, PTF LayerNorm an 8-bit PtfAct with per-channel α.
"""
import torch

from mnq import ops, reference


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


# Checks shared by the LayerNorms with the signature op(q, scale, weight, bias) / op_qat(x, scale, weight, bias, eps)
# (I-LayerNorm, I-BERT LayerNorm): `name` is the op's name in mnq.ops and torch.ops.mnq.

def check_noncontiguous_and_empty(name, reference_op, lo, hi, dtype):
    """A transposed (non-contiguous) input gives the reference's output on its contiguous copy; empty inputs give
    empty outputs: int64 codes and a per-channel scale, float32 for the QAT form."""
    op, op_qat = getattr(ops, name), getattr(ops, name + "_qat")
    q = torch.randint(lo, hi + 1, (197, 6), dtype=dtype).t()
    assert not q.is_contiguous()
    w, b = ln_params(197)
    assert torch.equal(op(q, 0.01, w, b)[0], reference_op(q.contiguous(), 0.01, w, b)[0])
    for shape in [(0, 197), (3, 0), (0,)]:
        w, b = ln_params(shape[-1])
        out, s_out = op(torch.zeros(shape, dtype=dtype), 0.01, w, b)
        assert out.shape == shape and out.dtype == torch.int64 and s_out.shape == (shape[-1],)
        y = op_qat(torch.zeros(shape), 0.01, w, b)[0]
        assert y.shape == shape and y.dtype == torch.float32


def check_qat_forward_and_grads(name, bits, eps):
    """The QAT form on dequantized `bits`-bit codes (|q| < 2^23: float32 q·S rounds back to q exactly) returns the
    integer op's output dequantized, and F.layer_norm's gradients for x, weight and bias."""
    op, op_qat = getattr(ops, name), getattr(ops, name + "_qat")
    w, b = ln_params(384)
    q, s = quant_act(residual_stream((3, 5, 384)), bits)
    xf = (q.double() * s).float().requires_grad_(True)
    w.requires_grad_(True)
    b.requires_grad_(True)
    y = op_qat(xf, s, w, b, eps)[0]
    out, s_out = op(q, s, w, b)
    assert y.dtype == torch.float32
    assert torch.equal(y.detach(), (out.double() * s_out).float())
    assert_layer_norm_grads(y, xf, w, b, eps)


def opcheck_layer_norm(name, lo, hi, dtype):
    """torch.library.opcheck of mnq::<name> and mnq::<name>_qat."""
    q = torch.randint(lo, hi + 1, (3, 7), dtype=dtype)
    w, b = ln_params(7)
    torch.library.opcheck(getattr(torch.ops.mnq, name).default, (q, 0.01, w, b))
    x = (q.float() * 0.01).requires_grad_(True)
    torch.library.opcheck(getattr(torch.ops.mnq, name + "_qat").default,
                          (x, torch.tensor(0.01, dtype=torch.float64), w.requires_grad_(True), b.requires_grad_(True),
                           1e-6))
