"""Composed-PyTorch implementations of each integer method in the style of the authors' public code: integers
simulated with float32 tensors and torch.floor (exact only below 2^24). Used by scripts/bench_ops.py as the
baseline the fused kernels replace; not used for correctness (python/mnq/reference.py is the oracle)."""
import math

import torch


def _shift_exp(x, s, n):
    x = x + torch.floor(x / 2) - torch.floor(x / 16)
    x0 = math.floor(-1.0 / s)
    x = torch.clamp(x, min=n * x0)
    k = torch.floor(x / x0)
    r = x - x0 * k
    return torch.clamp(torch.floor((r / 2 - x0) * torch.pow(2.0, n - k)), min=0)


def shiftmax(x, s, out_bits=16, n=15):
    q = torch.round(x / s)
    q = q - q.amax(-1, keepdim=True)
    e = _shift_exp(q, s, n)
    f = torch.floor((2**31 - 1) / torch.clamp(e.sum(-1, keepdim=True), max=2**31 - 1))
    return torch.floor(e * f / 2 ** (32 - out_bits)) * 2.0 ** -(out_bits - 1)


def shift_gelu(x, s, out_bits=8, n=23):
    q = torch.round(x / s)
    ss = s * 1.702
    m = q.amax(-1, keepdim=True)
    e1 = _shift_exp(q - m, ss, n)
    e2 = _shift_exp(-m, ss, n)
    f = torch.floor((2**31 - 1) / torch.clamp(e1 + e2, max=2**31 - 1))
    sig = torch.floor(e1 * f / 2 ** (32 - out_bits))
    return q * sig * s * 2.0 ** -(out_bits - 1)


def ilayernorm(x, s, w, b):
    q = torch.round(x / s)
    c = q.shape[-1]
    y = q - torch.round(q.mean(-1, keepdim=True))
    var = (y * y).sum(-1, keepdim=True)
    k = torch.full_like(var, 2.0**16)
    for _ in range(10):
        k = torch.floor((k + torch.floor(var / k)) / 2)
    f = torch.floor((2**31 - 1) / k)
    yn = torch.floor(y * f / 2)
    sy = math.sqrt(c) / 2**30
    bias_int = torch.floor((b / w) / sy)
    return (yn + bias_int) * sy * w


def _ibert_exp(q, s, n=30):
    a, bb, cc = 0.35815147, 0.96963238 / 0.35815147, 1.0 / 0.35815147
    x0 = math.floor(-0.6931 / s)
    b, c = math.floor(bb / s), math.floor(cc / (s * s))
    q = torch.clamp(q, min=n * x0)
    z = torch.floor(q / x0)
    r = q - x0 * z
    return torch.clamp(torch.floor(((r + b) * r + c) * torch.pow(2.0, n - z)), min=0), c * 2.0**n


def ibert_softmax(x, s, out_bits=16):
    q = torch.round(x / s)
    e, e0 = _ibert_exp(q - q.amax(-1, keepdim=True), s)
    e = torch.clamp(torch.floor(e * (32767 / e0) + 0.5), max=32767)
    f = torch.floor(2**32 / e.sum(-1, keepdim=True))
    return torch.floor(e * f / 2 ** (32 - out_bits)) * 2.0**-out_bits


def log_int_softmax(x, s, bits=4):
    q = torch.round(x / s)
    e, _ = _ibert_exp(q - q.amax(-1, keepdim=True), s)
    v = torch.round(e.sum(-1, keepdim=True) / e)
    t = torch.round(torch.log2(v))
    return torch.where(t >= 2**bits, torch.zeros_like(t), torch.pow(2.0, -t))


def ibert_gelu(x, s):
    if isinstance(s, torch.Tensor):  # per-channel scales (the fc1 accumulator's): the same steps on tensors
        se = s / 1.4142
        b, c = torch.floor(-1.769 / se), torch.floor((1 / -0.2888) / (se * se))
        q = torch.round(x / s)
        y = torch.sign(q) * ((torch.minimum(q.abs(), -b) + b) ** 2 + c)
        y = torch.floor(y / 2**14)
        unit = -0.2888 * se * se * 2**14
        return q * (y + torch.floor(1 / unit)) * s * unit / 2
    se = s / 1.4142
    b, c = math.floor(-1.769 / se), math.floor((1 / -0.2888) / (se * se))
    q = torch.round(x / s)
    y = torch.sign(q) * ((torch.clamp(q.abs(), max=-b) + b) ** 2 + c)
    y = torch.floor(y / 2**14)
    unit = -0.2888 * se * se * 2**14
    return q * (y + math.floor(1 / unit)) * s * unit / 2


def ibert_layernorm(x, s, w, b):
    q = torch.round(x / s)
    c = q.shape[-1]
    y = q - torch.round(q.mean(-1, keepdim=True))
    var = (y * y).sum(-1, keepdim=True)
    std = torch.floor(torch.sqrt(var))
    f = torch.floor(2**31 / std)
    sy = math.sqrt(c) / 2**30
    return (torch.floor(y * f / 2) + torch.floor((b / w) / sy)) * sy * w


def ptf_layernorm(x, alpha, s_base, w, b, s_next):
    sc = s_base * torch.pow(2.0, alpha.float())
    q = torch.round(x / sc) * torch.pow(2.0, (alpha - alpha.min()).float())
    c = q.shape[-1]
    sx, sxx = q.sum(-1, keepdim=True), (q * q).sum(-1, keepdim=True)
    std = torch.floor(torch.sqrt(c * sxx - sx * sx))
    a = c * w / (std * s_next)
    n = torch.clamp(7 - torch.floor(torch.log2(a.abs())), 0, 31)
    m = torch.clamp(torch.floor(a.abs() * 2**n), 0, 255)
    bb = torch.round((b - sx * w / std) / s_next * 2**n)
    return torch.round((torch.sign(a) * m * q + bb) / 2**n) * s_next


def quantize(x, s, bits):
    return torch.clamp(torch.round(x / s), -(2 ** (bits - 1)), 2 ** (bits - 1) - 1) * s
