"""Exact reference implementation of every mnq operator, mirroring SPEC.md line by line.

This is the oracle the kernels are tested against (STYLE rule 7). Integers are int64 torch tensors; where SPEC
needs more than 64 bits (I-BERT's requantized exponentials, Log-Int-Softmax row sums, the PTF variance), the
computation moves to Python integers (numpy object arrays), which are exact at any size. Constants derived from a
scale are computed in float64 exactly as the C++ host code does. Nothing here emulates integers in float32.
Slow by design: clarity first.
"""
from __future__ import annotations

import math

import numpy as np
import torch

INT31_MAX = 2**31 - 1

# ----------------------------------------------------------------------------------------------------------- §0


def floor_div(a: torch.Tensor, b) -> torch.Tensor:
    return torch.div(a, b, rounding_mode="floor")


def _obj(t: torch.Tensor) -> np.ndarray:
    """int64 tensor -> numpy array of Python ints (exact arbitrary precision)."""
    return np.array(t.tolist(), dtype=object).reshape(tuple(t.shape))


def _from_obj(a: np.ndarray, dtype=torch.int64) -> torch.Tensor:
    return torch.tensor(np.asarray(a, dtype=object).astype(np.int64), dtype=dtype)


def _round_div_int(a: int, b: int) -> int:
    """Round-half-to-even of a / b for Python ints, b > 0."""
    q, r = divmod(a, b)
    twice = 2 * r
    return q + int(twice > b or (twice == b and q % 2 == 1))


# elementwise over object arrays (and plain ints)
_round_div_obj = np.vectorize(_round_div_int, otypes=[object])


def round_shr(a: torch.Tensor, k: int) -> torch.Tensor:
    """Round-half-to-even of a / 2^k, int64 a, 0 <= k <= 62."""
    if k == 0:
        return a.clone()
    fl = a >> k
    rem = a - (fl << k)
    half = 1 << (k - 1)
    return fl + ((rem > half) | ((rem == half) & (fl % 2 == 1))).to(torch.int64)


def round_div(a: torch.Tensor, b: int) -> torch.Tensor:
    """Round-half-to-even of a / b, int64 a, b > 0 (2|a| + b < 2^63)."""
    fl = floor_div(a, b)
    twice = 2 * (a - fl * b)
    return fl + ((twice > b) | ((twice == b) & (fl % 2 == 1))).to(torch.int64)


def dyadic(r: float) -> tuple[int, int]:
    """SPEC §0 dyadic(r) = (m, k) with r ~ m / 2^k; m carries the sign of r."""
    mant, exp = math.frexp(abs(r))
    m = math.floor(mant * 2.0**31 + 0.5)
    k = 31 - exp
    if m == 2**31:
        m, k = 2**30, k - 1
    return (-m if r < 0 else m), k


def requant(q: torch.Tensor, r: float) -> torch.Tensor:
    """round(q * m / 2^k) exactly (SPEC §0), saturated to int64 (as the kernels do)."""
    m, k = dyadic(r)
    qo = _obj(q.to(torch.int64))
    p = qo * m
    if k >= 0:
        out = _round_div_obj(p, 2**k)
    else:
        out = p * 2 ** (-k)
    lim = 2**63
    out = np.clip(out, -lim, lim - 1) if out.size else out
    return _from_obj(out).reshape(q.shape)


def isqrt(v: torch.Tensor) -> torch.Tensor:
    return torch.tensor([math.isqrt(int(x)) for x in v.reshape(-1).tolist()], dtype=torch.int64).reshape(v.shape)


# ----------------------------------------------------------------------------------------------------------- §1


def quantize(x: torch.Tensor, scale, bits: int, axis: int = -1) -> torch.Tensor:
    """clamp(round(x / S), -2^(b-1), 2^(b-1)-1); S scalar or per channel along `axis` (float64)."""
    s = torch.as_tensor(scale, dtype=torch.float64)
    if s.dim() == 1:
        shape = [1] * x.dim()
        shape[axis] = -1
        s = s.reshape(shape)
    q = torch.round(x.to(torch.float64) / s)
    return q.clamp(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1).to(torch.int64)


def quant_linear(x: torch.Tensor, scale, weight: torch.Tensor, weight_scale, bias=None) -> torch.Tensor:
    """The fake-quant Linear (SPEC §1): fl32((q_x @ q_wᵀ + q_b)·S_out), q_x = round(x / S_a) and q_w = round(W / S_w)
    on 32 bits, S_out = S_a·S_w (float64), q_b the bias quantized on S_out (32 bits); int64 sums (exact)."""
    s_a = torch.as_tensor(scale, dtype=torch.float64).reshape(())
    s_w = torch.as_tensor(weight_scale, dtype=torch.float64).reshape(-1)
    s_out = s_a * s_w
    acc = quantize(x, s_a, 32) @ quantize(weight, s_w, 32, axis=0).t()
    if bias is not None:
        acc = acc + quantize(bias, s_out, 32)
    return (acc.to(torch.float64) * s_out).to(torch.float32)


def quant_matmul(a: torch.Tensor, scale_a, b: torch.Tensor, scale_b) -> torch.Tensor:
    """The fake-quant MatMul (SPEC §1): fl32((q_a @ q_b)·S_out), q_a = round(a / S_a) and q_b = round(b / S_b) on
    32 bits, S_out = S_a·S_b (float64); int64 sums (exact)."""
    s_a = torch.as_tensor(scale_a, dtype=torch.float64).reshape(())
    s_b = torch.as_tensor(scale_b, dtype=torch.float64).reshape(())
    acc = quantize(a, s_a, 32) @ quantize(b, s_b, 32)
    return (acc.to(torch.float64) * (s_a * s_b)).to(torch.float32)


def requant_act(q, scale_in, scale_out: float, bits: int, identity=None, identity_scale=None) -> torch.Tensor:
    """QuantAct on a quantized input: clamp(requant(q, S_in/S) [+ requant(q_id, S_id/S)]); S_in per channel ok."""

    def one(v, s_in):
        s_in = torch.as_tensor(s_in, dtype=torch.float64).reshape(-1)
        if s_in.numel() == 1:
            return requant(v, float(s_in) / scale_out)
        cols = [requant(v[..., c], float(s_in[c]) / scale_out) for c in range(v.shape[-1])]
        return torch.stack(cols, dim=-1)

    out = one(q.to(torch.int64), scale_in)
    if identity is not None:
        out = out + one(identity.to(torch.int64), identity_scale)
    return out.clamp(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


def ptf_quantize(x: torch.Tensor, alpha: torch.Tensor, s_base: float, bits: int) -> torch.Tensor:
    s = s_base * torch.pow(2.0, alpha.to(torch.float64))
    return quantize(x, s, bits, axis=-1)


def ptf_alpha_error(x: torch.Tensor, s_base: float, bits: int) -> torch.Tensor:
    """[C, 4]: sum over all rows of (x - q*S_c)^2 for S_c = s_base * 2^alpha, alpha = 0..3 (float64)."""
    xd = x.to(torch.float64).reshape(-1, x.shape[-1])
    errs = []
    for a in range(4):
        s = s_base * 2.0**a
        q = quantize(xd, s, bits)
        errs.append(((xd - q.to(torch.float64) * s) ** 2).sum(0))
    return torch.stack(errs, dim=-1)


# ----------------------------------------------------------------------------------------------------------- §2

IBERT_LN2 = 0.6931
IBERT_A = 0.35815147
IBERT_B = 0.96963238 / IBERT_A
IBERT_C = 1.0 / IBERT_A


def ibert_exp_consts(scale: float, n: int = 30) -> tuple[int, int, int]:
    x0 = math.floor(-IBERT_LN2 / scale)
    b = math.floor(IBERT_B / scale)
    c = math.floor(IBERT_C / (scale * scale))
    return x0, b, c


def ibert_exp(x: torch.Tensor, scale: float, n: int = 30) -> torch.Tensor:
    """I-BERT i-exp of x <= 0 (SPEC §2.1): values on scale A*S^2 / 2^n... see SPEC; int64 (< 2^63)."""
    x0, b, c = ibert_exp_consts(scale, n)
    x = torch.clamp(x, min=n * x0)
    z = floor_div(x, x0)
    r = x - x0 * z
    p = (r + b) * r + c
    p = torch.clamp(p, min=0)
    return p << (n - z)  # p >= 0, so the shift is exact and e = max(p * 2^(n-z), 0)


def ibert_softmax(q: torch.Tensor, scale: float, out_bits: int = 16):
    x = q.to(torch.int64)
    x = x - x.amax(-1, keepdim=True)
    x0, b, c = ibert_exp_consts(scale)
    e0 = c * 2**30
    e = ibert_exp(x, scale)
    e = torch.clamp(requant(e, 32767 / e0), max=32767)
    s = e.sum(-1, keepdim=True)
    f = floor_div(torch.full_like(s, 2**32), s)
    out = (e * f) >> (32 - out_bits)
    return out.to(torch.int32), 2.0**-out_bits


def shift_exp(x: torch.Tensor, scale: float, n: int) -> torch.Tensor:
    """I-ViT ShiftExp (SPEC §2.2), for any int64 x (positive x grows past n, as in the authors' code)."""
    x = x + floor_div(x, 2) - floor_div(x, 16)
    x0 = math.floor(-1.0 / scale)
    x = torch.clamp(x, min=n * x0)
    k = floor_div(x, x0)
    r = x - x0 * k
    ro, ko = _obj(r - 2 * x0), _obj(n - k)
    # n - k >= 0 always (k <= n for x <= 0, k < 0 for x > 0); Python ints hold the large shifts of x > 0.
    return np.vectorize(lambda v, s: max((v << s) >> 1, 0), otypes=[object])(ro, ko)


def shiftmax(q: torch.Tensor, scale: float, out_bits: int = 16, n: int = 15):
    x = q.to(torch.int64)
    x = x - x.amax(-1, keepdim=True)
    e = _from_obj(shift_exp(x, scale, n)).reshape(x.shape)  # <= |x0| * 2^n < 2^62
    s = _from_obj(np.minimum(_obj(e).sum(-1, keepdims=True), INT31_MAX)).reshape(*x.shape[:-1], 1)
    f = floor_div(torch.full_like(s, INT31_MAX), s)
    out = (e * f) >> (31 - out_bits + 1)
    return out.to(torch.int32), 2.0 ** -(out_bits - 1)


def log_int_softmax(q: torch.Tensor, scale: float, bits: int = 4):
    """FQ-ViT Log-Int-Softmax (SPEC §2.3): (uint8 code, bool mask)."""
    x = q.to(torch.int64)
    x = x - x.amax(-1, keepdim=True)
    e = _obj(ibert_exp(x, scale, 30))
    s = e.sum(-1, keepdims=True)
    top = 2**bits - 1
    codes = np.empty(e.shape, dtype=object)
    mask = np.empty(e.shape, dtype=bool)
    for idx in np.ndindex(e.shape):
        ev = e[idx]
        if ev == 0:
            codes[idx], mask[idx] = top, True
            continue
        v = _round_div_int(s[idx[:-1] + (0,)], ev)
        t = v.bit_length() - 1  # floor(log2 v), v >= 1
        if 2 * (v - (1 << t)) >= (1 << t):
            t += 1
        codes[idx] = min(t, top)
        mask[idx] = t >= 2**bits
    code = torch.tensor(codes.astype(np.int64), dtype=torch.int64).reshape(q.shape).to(torch.uint8)
    return code, torch.from_numpy(mask).reshape(q.shape)


def log_int_softmax_value(code: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The real value 2^-code, 0 where masked (float64)."""
    v = torch.pow(2.0, -code.to(torch.float64))
    return torch.where(mask, torch.zeros_like(v), v)


# ----------------------------------------------------------------------------------------------------------- §3

IBERT_GELU_A = -0.2888
IBERT_GELU_B = -1.769
IBERT_GELU_K = 1.4142
IBERT_GELU_N = 14


def ibert_gelu_consts(scale: float) -> tuple[int, int, int, float]:
    """(b, c, one, S_out) of I-BERT i-GELU for one scale (SPEC §3.1), float64 as the host computes them."""
    se = scale / IBERT_GELU_K
    b = math.floor(IBERT_GELU_B / se)
    c = math.floor((1.0 / IBERT_GELU_A) / (se * se))
    unit = IBERT_GELU_A * (se * se) * 2.0**IBERT_GELU_N
    one = math.floor(1.0 / unit)
    s_out = scale * unit / 2.0
    return b, c, one, s_out


def ibert_gelu(q: torch.Tensor, scale):
    """I-BERT i-GELU; scale per tensor or per channel [C] of the last dim. Returns (int64, float64 S_out)."""
    s = torch.as_tensor(scale, dtype=torch.float64).reshape(-1)
    consts = [ibert_gelu_consts(float(v)) for v in s]
    b = torch.tensor([t[0] for t in consts], dtype=torch.int64)
    c = torch.tensor([t[1] for t in consts], dtype=torch.int64)
    one = torch.tensor([t[2] for t in consts], dtype=torch.int64)
    s_out = torch.tensor([t[3] for t in consts], dtype=torch.float64)
    x = q.to(torch.int64)
    a = torch.minimum(x.abs(), -b)
    y = torch.sign(x) * ((a + b) ** 2 + c)
    y = floor_div(y, 2**IBERT_GELU_N)
    out = x * (y + one)
    if torch.as_tensor(scale).dim() == 1:
        return out, s_out
    return out.reshape(q.shape), s_out.reshape(())  # a per-tensor [1] constant must not broadcast a 0-d q to [1]


def shift_gelu(q: torch.Tensor, scale: float, out_bits: int = 8, n: int = 23):
    x = q.to(torch.int64)
    ss = scale * 1.702
    m = x.amax(-1, keepdim=True)
    e1 = shift_exp(x - m, ss, n)
    e2 = shift_exp(-m, ss, n)
    s = np.minimum(e1 + e2, INT31_MAX)
    f = INT31_MAX // s
    sig = (e1 * f) >> (31 - out_bits + 1)
    out = x * _from_obj(sig).reshape(x.shape)
    return out.to(torch.int32), scale * 2.0 ** -(out_bits - 1)


# ----------------------------------------------------------------------------------------------------------- §4


def _ln_bias_and_scale(weight, bias, cols: int):
    sy = math.sqrt(cols) / 2.0**30
    g = weight.to(torch.float64)
    bias_int = torch.floor((bias.to(torch.float64) / g) / sy).to(torch.int64)
    return bias_int, sy * g


def ilayernorm(q: torch.Tensor, scale: float, weight, bias):
    """I-ViT I-LayerNorm (SPEC §4.1): (int64 codes, per-channel float64 S_out)."""
    x = q.to(torch.int64)
    cols = x.shape[-1]
    mean = round_div(x.sum(-1, keepdim=True), cols)
    y = x - mean
    var = (y * y).sum(-1, keepdim=True)
    k = torch.full_like(var, 2**16)
    for _ in range(10):
        k = floor_div(k + floor_div(var, k), 2)
    f = floor_div(torch.full_like(k, INT31_MAX), k)
    yn = floor_div(y * f, 2)
    bias_int, s_out = _ln_bias_and_scale(weight, bias, cols)
    return yn + bias_int, s_out


def ibert_layernorm(q: torch.Tensor, scale: float, weight, bias):
    """I-BERT integer LayerNorm with a per-row shift (SPEC §4.2)."""
    x = q.to(torch.int64)
    cols = x.shape[-1]
    mean = round_div(x.sum(-1, keepdim=True), cols)
    y = x - mean
    shift = torch.zeros_like(mean)
    while True:
        ys = y >> shift
        var = (ys * ys).sum(-1, keepdim=True)
        big = var >= 2**32
        if not bool(big.any()):
            break
        shift = shift + big.to(torch.int64)
    std = torch.clamp(isqrt(var), min=1) << shift
    f = floor_div(torch.full_like(std, 2**31), std)
    yn = floor_div(y * f, 2)
    bias_int, s_out = _ln_bias_and_scale(weight, bias, cols)
    return yn + bias_int, s_out


def ptf_layernorm(q: torch.Tensor, alpha: torch.Tensor, s_base: float, weight, bias, scale_next: float):
    """FQ-ViT PTF LayerNorm (SPEC §4.3): (int64 codes on scale_next, scale_next)."""
    a = alpha.to(torch.int64)
    x = q.to(torch.int64) << (a - a.min())
    cols = x.shape[-1]
    sx = x.sum(-1, keepdim=True)
    sxx = _obj((x * x).sum(-1, keepdim=True))
    var = cols * sxx - _obj(sx) ** 2
    std = torch.clamp(_from_obj(np.vectorize(math.isqrt, otypes=[object])(var)).reshape(sx.shape), min=1)
    g = weight.to(torch.float64)
    beta = bias.to(torch.float64)
    stdd = std.to(torch.float64)
    amul = (cols * g) / (stdd * scale_next)
    absa = amul.abs()
    mant, ex = torch.frexp(absa)
    n = torch.where(absa == 0, torch.full_like(ex, 31), torch.clamp(7 - (ex - 1), 0, 31)).to(torch.int64)
    m = torch.clamp(torch.floor(torch.ldexp(absa, n.to(torch.float64))), 0, 255).to(torch.int64)
    bb = torch.round(torch.ldexp((beta - (sx.to(torch.float64) * g) / stdd) / scale_next, n.to(torch.float64)))
    bb = bb.to(torch.int64)
    num = torch.sign(amul).to(torch.int64) * m * x + bb
    fl = num >> n
    rem = num - (fl << n)
    half = torch.where(n > 0, 1 << (n - 1).clamp(min=0), torch.zeros_like(n))
    up = (n > 0) & ((rem > half) | ((rem == half) & (fl % 2 == 1)))
    return fl + up.to(torch.int64), scale_next
