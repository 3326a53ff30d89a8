"""Helpers shared by the Python tests (STYLE rule 6: exactness, quality, gradients, errors): the CUDA skip mark,
the integer code dtypes, SQNR and realistic attention logits. A plain module (`from helpers import ...`);
conftest.py holds only fixtures."""
import math

import pytest
import torch

import mnq  # noqa: F401  (registers torch.ops.mnq)

HAS_CUDA = torch.cuda.is_available()
requires_cuda = pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")

INT_DTYPES = [torch.int8, torch.int16, torch.int32, torch.int64]


def sqnr_db(ref: torch.Tensor, approx: torch.Tensor) -> float:
    """20·log10(‖ref‖ / ‖ref − approx‖) in dB (float64); +inf for an exact match."""
    ref = ref.to(torch.float64)
    err = (ref - approx.to(torch.float64)).norm()
    return math.inf if err == 0 else 20.0 * math.log10(float(ref.norm() / err))


def attention_scores(shape, scale, bits=8, generator=None):
    """Realistic 8-bit attention logits: q·kᵀ/√d of random unit-variance q, k, quantized with `scale`."""
    d = 64
    q = torch.randn(*shape[:-1], d, generator=generator)
    k = torch.randn(*shape[:-2], shape[-1], d, generator=generator)
    logits = q @ k.transpose(-1, -2) / math.sqrt(d) * 2.0
    lim = 2 ** (bits - 1)
    return torch.clamp(torch.round(logits / scale), -lim, lim - 1).to(torch.int32)


def assert_ste_grad(y, x, float_fn):
    """The straight-through gradient of y (a QAT op of x) is that of the float op it approximates, at x (SPEC §5)."""
    g = torch.randn_like(y)
    (gx,) = torch.autograd.grad(y, x, g)
    xr = x.detach().clone().requires_grad_(True)
    (want,) = torch.autograd.grad(float_fn(xr), xr, g)
    torch.testing.assert_close(gx, want)


def opcheck_op_and_qat(name, q, scale, *args):
    """torch.library.opcheck of mnq::<name> on codes q at a per-tensor scale, and of mnq::<name>_qat on their
    dequantized values (with a gradient) and the scale as a 0-d float64 tensor; *args follow in both."""
    torch.library.opcheck(getattr(torch.ops.mnq, name).default, (q, scale, *args))
    x = (q.float() * scale).requires_grad_(True)
    torch.library.opcheck(getattr(torch.ops.mnq, name + "_qat").default,
                          (x, torch.tensor(scale, dtype=torch.float64), *args))
