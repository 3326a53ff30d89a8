"""mnq.ops.quant_linear (SPEC §1, csrc/ops/quant_linear.h): the fake-quant Linear computed exactly — bit for bit
the reference's fl32((q_x @ q_wᵀ + q_b)·S_out) on the CPU's int8 path (codes within int8), its float64 path
(wider codes), every CPU vector path of the epilogue; F.linear's gradient; clear errors."""
import pytest
import torch
import torch.nn.functional as F

import mnq
from mnq import nn as mnn
from mnq import reference as ref

from cpu_paths_util import isa, same_bits  # noqa: F401  (isa: fixture)
from helpers import requires_cuda


def _layer(rows, k, n, bits_a, bits_w, g, lead=(), spread=0.6, bias_scale=1.0):
    """x on the grid of a per-tensor scale (codes of bits_a bits, both ends hit), a fake-quant weight of bits_w
    bits per output channel, a bias."""
    hi_a = 2 ** (bits_a - 1) - 1
    s_a = torch.tensor(0.37 / hi_a, dtype=torch.float64)
    q = torch.clamp(torch.round(torch.randn(*lead, rows, k, generator=g) * hi_a * spread), -hi_a - 1, hi_a)
    if q.numel():
        q.view(-1)[0], q.view(-1)[-1] = hi_a, -hi_a - 1
    x = (q.double() * s_a).float()
    w0 = torch.randn(n, k, generator=g)
    s_w = w0.abs().amax(1).double().clamp(min=1e-8) / (2 ** (bits_w - 1) - 1)
    w = mnq.ops.quantize_qat(w0, s_w, bits_w, 0)
    b = torch.randn(n, generator=g) * bias_scale
    return x, s_a, w, s_w, b


# (rows, K, N): tails of the 16-lane epilogue (N mod 16), K not a multiple of 4 / 8, one row, many rows
SHAPES = [(1, 1, 1), (5, 24, 10), (7, 3, 17), (33, 64, 192), (200, 256, 64), (3, 130, 31)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("bits", [2, 4, 6, 8])
def test_int8_path_equals_reference(isa, shape, bits):
    g = torch.Generator().manual_seed(hash((shape, bits)) % 2**31)
    x, s_a, w, s_w, b = _layer(*shape, bits, bits, g)
    want = ref.quant_linear(x, s_a, w, s_w, b)
    assert same_bits(mnq.ops.quant_linear(x, s_a, w, s_w, b), want)
    assert same_bits(mnq.ops.quant_linear(x, s_a, w, s_w), ref.quant_linear(x, s_a, w, s_w))


@pytest.mark.parametrize("bits_a,bits_w", [(9, 8), (8, 9), (12, 12), (16, 16)])
def test_wide_codes_take_the_float64_path_exactly(isa, bits_a, bits_w):
    g = torch.Generator().manual_seed(bits_a * 31 + bits_w)
    x, s_a, w, s_w, b = _layer(19, 48, 21, bits_a, bits_w, g)
    assert same_bits(mnq.ops.quant_linear(x, s_a, w, s_w, b), ref.quant_linear(x, s_a, w, s_w, b))


def test_leading_dims_and_large_bias_codes(isa):
    g = torch.Generator().manual_seed(3)
    x, s_a, w, s_w, b = _layer(9, 40, 35, 8, 8, g, lead=(2, 3))
    b[0], b[1] = 1e9, -1e9  # bias codes clamped to 32 bits
    b[2] = 2.0 ** 20 * float(s_a * s_w[2]) + 0.5 * float(s_a * s_w[2])  # a bias on a half code: ties to even
    y = mnq.ops.quant_linear(x, s_a, w, s_w, b)
    assert y.shape == (2, 3, 9, 35)
    assert same_bits(y, ref.quant_linear(x, s_a, w, s_w, b))


def test_off_grid_input_is_read_at_its_codes(isa):
    """x between grid points: its codes are round(x / S_a), the quantizer's, on every path."""
    g = torch.Generator().manual_seed(4)
    x, s_a, w, s_w, b = _layer(13, 32, 20, 8, 8, g)
    x = x + (torch.rand(x.shape, generator=g) - 0.5) * float(s_a)
    x[0, :4] = torch.tensor([0.5, 1.5, -2.5, 127.5]).double().mul(s_a).float()  # exact half codes: to even
    assert same_bits(mnq.ops.quant_linear(x, s_a, w, s_w, b), ref.quant_linear(x, s_a, w, s_w, b))
    big = x.clone()
    big[5, 7] = 300 * float(s_a)  # a code beyond int8: the float64 path, same values
    assert same_bits(mnq.ops.quant_linear(big, s_a, w, s_w, b), ref.quant_linear(big, s_a, w, s_w, b))


@pytest.mark.parametrize("k", [5, 16, 37, 64])
def test_weight_codes_off_grid_and_at_the_int8_ends(isa, k):
    """The weight's codes round(w / s_w[n]) on every path (the row's 16-lane steps and its tail): exact half codes
    to even, −128 on the int8 path, 128 or a NaN weight on the float64 path — each the reference's values."""
    g = torch.Generator().manual_seed(k)
    x, s_a, w, s_w, b = _layer(11, k, 20, 8, 8, g)
    w = w + (torch.rand(w.shape, generator=g) - 0.5) * s_w.float().unsqueeze(1)  # between grid points
    half = torch.tensor([0.5, 1.5, -2.5, 126.5, -127.5])[: min(5, k)]
    w[3, -half.numel():] = (half.double() * s_w[3]).float()  # exact halves (the float32 value: exact for these)
    w[4, k // 2] = (-128 * s_w[4]).float()  # the int8 minimum
    assert same_bits(mnq.ops.quant_linear(x, s_a, w, s_w, b), ref.quant_linear(x, s_a, w, s_w, b))
    for bad in (128 * float(s_w[6]), float("inf")):  # beyond int8, inf (code clamped to 32 bits): float64 path
        wb = w.clone()
        wb[6, k - 1] = bad
        assert same_bits(mnq.ops.quant_linear(x, s_a, wb, s_w, b), ref.quant_linear(x, s_a, wb, s_w, b)), bad
    wb = w.clone()
    wb[6, k - 1] = float("nan")  # a NaN weight: its output channel is NaN, the others the reference's
    y = mnq.ops.quant_linear(x, s_a, wb, s_w, b)
    keep = [n for n in range(20) if n != 6]
    assert torch.isnan(y[:, 6]).all() and same_bits(y[:, keep], ref.quant_linear(x, s_a, w, s_w, b)[:, keep])


def test_nan_input_reaches_only_its_rows(isa):
    g = torch.Generator().manual_seed(5)
    x, s_a, w, s_w, b = _layer(6, 16, 18, 8, 8, g)
    x[2, 3] = float("nan")
    y = mnq.ops.quant_linear(x, s_a, w, s_w, b)
    assert torch.isnan(y[2]).all() and not torch.isnan(y[[0, 1, 3, 4, 5]]).any()
    keep = [0, 1, 3, 4, 5]
    assert same_bits(y[keep], ref.quant_linear(x[keep], s_a, w, s_w, b))


@pytest.mark.parametrize("threads", [1, 2])
def test_blocked_product_equals_reference(isa, threads):
    """Products whose int32 sums exceed 2 MiB are made in blocks of rows (csrc/ops/quant_linear.cpp block_rows:
    here 256 rows of N = 256 and a tail block of 77): each block equals the reference, a code beyond int8 in the
    last block sends the whole call to the float64 path (same values), a NaN in a middle block reaches only its row."""
    g = torch.Generator().manual_seed(threads)
    x, s_a, w, s_w, b = _layer(2125, 64, 256, 8, 8, g)  # 2125·256·4 B = 2.1 MiB of sums: 8 blocks + 77 rows
    prev = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        assert same_bits(mnq.ops.quant_linear(x, s_a, w, s_w, b), ref.quant_linear(x, s_a, w, s_w, b))
        big = x.clone()
        big[-3, 5] = 300 * float(s_a)
        assert same_bits(mnq.ops.quant_linear(big, s_a, w, s_w, b), ref.quant_linear(big, s_a, w, s_w, b))
        bad = x.clone()
        bad[1000, 9] = float("nan")
        y = mnq.ops.quant_linear(bad, s_a, w, s_w, b)
        keep = torch.arange(x.shape[0]) != 1000
        assert torch.isnan(y[1000]).all() and same_bits(y[keep], ref.quant_linear(x, s_a, w, s_w, b)[keep])
    finally:
        torch.set_num_threads(prev)


def test_empty_batch():
    g = torch.Generator().manual_seed(6)
    x, s_a, w, s_w, b = _layer(0, 16, 8, 8, 8, g)
    assert mnq.ops.quant_linear(x, s_a, w, s_w, b).shape == (0, 8)


def test_gradient_is_f_linear_s():
    g = torch.Generator().manual_seed(7)
    x, s_a, w, s_w, b = _layer(11, 20, 9, 8, 8, g, lead=(2,))
    xs = [x.clone().requires_grad_() for _ in range(2)]
    ws = [w.clone().requires_grad_() for _ in range(2)]
    bs = [b.clone().requires_grad_() for _ in range(2)]
    gy = torch.randn(2, 11, 9, generator=g)
    (mnq.ops.quant_linear(xs[0], s_a, ws[0], s_w, bs[0]) * gy).sum().backward()
    (F.linear(xs[1], ws[1], bs[1]) * gy).sum().backward()
    for a, e in [(xs[0].grad, xs[1].grad), (ws[0].grad, ws[1].grad), (bs[0].grad, bs[1].grad)]:
        torch.testing.assert_close(a, e, rtol=1e-6, atol=1e-6)
    xn = x.clone().requires_grad_()
    mnq.ops.quant_linear(xn, s_a, w, s_w).sum().backward()
    torch.testing.assert_close(xn.grad, torch.ones(2, 11, 9) @ w)


def test_quant_linear_module_is_exact():
    lin = mnn.QuantLinear(24, 10, bits=8)
    xq, s_a = mnn.QuantAct(8)(torch.randn(5, 24))
    y, s_out = lin(xq, s_a)
    w, s_w = lin.quantized_weight()
    assert torch.equal(s_out, s_a * s_w)
    assert same_bits(y, ref.quant_linear(xq, s_a, w, s_w, lin.bias.detach()))


def test_meta_shapes():
    x = torch.empty(2, 3, 8, device="meta")
    w = torch.empty(5, 8, device="meta")
    y = torch.ops.mnq.quant_linear(x, torch.tensor(0.1, dtype=torch.float64), w, torch.ones(5, dtype=torch.float64))
    assert y.shape == (2, 3, 5) and y.device.type == "meta"
    with pytest.raises(ValueError, match=r"weight must have shape \[out_features, 8\]"):
        torch.ops.mnq.quant_linear(x, torch.tensor(0.1, dtype=torch.float64), torch.empty(5, 7, device="meta"),
                                   torch.ones(5, dtype=torch.float64))


@pytest.mark.parametrize("case,match", [
    ("x_int", "x must be a float32 tensor"),
    ("w_shape", r"weight must have shape \[out_features, 8\]"),
    ("scale_shape", "scale must have shape"),
    ("ws_shape", "weight_scale must have shape"),
    ("bias_shape", r"bias must have shape \[5\]"),
    ("scale_zero", "scale must be a finite positive scale"),
    ("scale_nan", "scale must be a finite positive scale"),
    ("ws_zero", "weight_scale must hold finite positive scales, got 0 at output channel 2"),
])
def test_bad_arguments_name_what_is_wrong(case, match):
    x, w = torch.zeros(3, 8), torch.zeros(5, 8)
    s, sw, b = torch.tensor(0.1, dtype=torch.float64), torch.ones(5, dtype=torch.float64), torch.zeros(5)
    if case == "x_int":
        x = x.to(torch.int32)
    elif case == "w_shape":
        w = torch.zeros(5, 7)
    elif case == "scale_shape":
        s = torch.ones(2, dtype=torch.float64)
    elif case == "ws_shape":
        sw = torch.ones(4, dtype=torch.float64)
    elif case == "bias_shape":
        b = torch.zeros(4)
    elif case == "scale_zero":
        s = torch.tensor(0.0, dtype=torch.float64)
    elif case == "scale_nan":
        s = torch.tensor(float("nan"), dtype=torch.float64)
    elif case == "ws_zero":
        sw[2] = 0.0
    with pytest.raises((ValueError, TypeError), match=match):
        mnq.ops.quant_linear(x, s, w, sw, b)


@requires_cuda
@pytest.mark.parametrize("bits", [4, 8, 12])
def test_cuda_equals_cpu(bits):
    """CUDA takes the float64 path (no host reads); its values are the CPU's, bit for bit."""
    g = torch.Generator().manual_seed(8 + bits)
    x, s_a, w, s_w, b = _layer(50, 64, 40, bits, bits, g, lead=(3,))
    x[1, 2, 3] = float("nan")
    want = mnq.ops.quant_linear(x, s_a, w, s_w, b)
    got = mnq.ops.quant_linear(x.cuda(), s_a.cuda(), w.cuda(), s_w.cuda(), b.cuda()).cpu()
    assert same_bits(got[~torch.isnan(want)], want[~torch.isnan(want)])
    assert torch.equal(torch.isnan(got), torch.isnan(want))
