"""What the CPU-path tests share (test_cpu_paths.py: the non-linear ops; test_cpu_paths_quant.py: quantize and
requant; test_layernorm_paths.py): the `isa` fixture, which runs a test on the scalar, AVX2 and AVX-512 paths
(csrc/cpu/isa.h; a path the CPU lacks runs its best one), and input builders."""
import pytest
import torch

from mnq import _mnq


@pytest.fixture(params=["scalar", "avx2", "avx512"])
def isa(request):
    before = _mnq.set_cpu_isa(request.param)
    yield request.param
    _mnq.set_cpu_isa(before)


def codes(rows, cols, lo, hi, spread, g):
    """Codes around 0 with one constant row and both ends of [lo, hi]."""
    q = torch.clamp(torch.round(torch.randn(rows, cols, generator=g) * spread), lo, hi).to(torch.int32)
    q[1] = 3
    q[0, 0], q[-1, -1] = hi, lo
    return q


def near_ties(rows, cols, scale, span, g):
    """float32 values at and one or two ulps around the half-integers (k + 1/2)·S (the float32 form of the QAT
    loaders must send them to float64), with the codes kernels/io.h's FloatIn gives them: rint(x·fl64(1/S))."""
    k = torch.randint(-span, span, (rows, cols), generator=g).double() + 0.5
    x = (k * scale).float()
    nudge = torch.randint(-2, 3, (rows, cols), generator=g)
    for _ in range(2):
        x = torch.where(nudge > 0, torch.nextafter(x, torch.tensor(float("inf"))), x)
        x = torch.where(nudge < 0, torch.nextafter(x, torch.tensor(-float("inf"))), x)
        nudge = nudge - nudge.sign()
    x[0, ::3] = (torch.randint(-span, span, x[0, ::3].shape, generator=g).double() * scale).float()  # exact codes
    return x, torch.round(x.double() * (1.0 / scale)).to(torch.int32)


def same_bits(a, b):
    """float32 tensors equal bit for bit (torch.equal takes −0.0 for +0.0: i-GELU's zero outputs are −0.0)."""
    return torch.equal(a.view(torch.int32), b.view(torch.int32))


def dequant(code, s_out):
    """The QAT form's value of an integer result: float32(float64(code)·S_out)."""
    return (code.double() * torch.as_tensor(s_out, dtype=torch.float64)).float()
