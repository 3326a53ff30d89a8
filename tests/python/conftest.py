"""Shared fixtures and helpers of the Python tests (STYLE rule 6: exactness, quality, gradients, errors)."""
import math

import pytest
import torch

import mnq  # noqa: F401  (registers torch.ops.mnq)

HAS_CUDA = torch.cuda.is_available()
requires_cuda = pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")

INT_DTYPES = [torch.int8, torch.int16, torch.int32, torch.int64]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


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
