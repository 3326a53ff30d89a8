"""mnq.ops.quant_matmul (SPEC §1, csrc/ops/quant_matmul.h): the fake-quant MatMul of two quantized tensors (the
attention's q@kᵀ and attn@v) computed exactly — bit for bit the reference's fl32((q_a @ q_b)·S_a·S_b) on the CPU's
float32-code path (inside the 2^24 bound), its exact float64 tiles (outside it: wide codes, NaN, inf), every CPU
ISA path, the attention's strided views and output layout; a @ b's gradient; clear errors."""
import pytest
import torch

import mnq
from mnq import nn as mnn
from mnq import reference as ref

from cpu_paths_util import isa, same_bits  # noqa: F401  (isa: fixture)
from helpers import requires_cuda


def _on_grid(shape, bits, g, spread=0.6, scale=0.37):
    """A tensor on the grid of a per-tensor scale: codes of `bits` bits, both ends hit; the scale (float64)."""
    hi = 2 ** (bits - 1) - 1
    s = torch.tensor(scale / hi, dtype=torch.float64)
    q = torch.clamp(torch.round(torch.randn(*shape, generator=g) * hi * spread), -hi - 1, hi)
    if q.numel():
        q.view(-1)[0], q.view(-1)[-1] = hi, -hi - 1
    return (q.double() * s).float(), s


def _pair(lead, m, k, n, bits_a, bits_b, g):
    a, s_a = _on_grid((*lead, m, k), bits_a, g)
    b, s_b = _on_grid((*lead, k, n), bits_b, g, scale=0.83)
    return a, s_a, b, s_b


def _check(a, s_a, b, s_b):
    got = mnq.ops.quant_matmul(a, s_a, b, s_b)
    assert got.shape == (*a.shape[:-1], b.shape[-1])
    assert same_bits(got, ref.quant_matmul(a, s_a, b, s_b))


def _softmax_like(lead, m, k, row_sum, g):
    """Nonnegative codes whose rows sum to about row_sum (a 16-bit softmax output's), on the scale 1/row_sum."""
    w = torch.rand(*lead, m, k, generator=g) ** 4
    q = torch.round(w / w.sum(-1, keepdim=True) * row_sum)
    s = torch.tensor(1.0 / row_sum, dtype=torch.float64)
    return (q.double() * s).float(), s


# (M, K, N): the micro-kernel's row blocks (8 rows for two 16-lane vectors, 12 for one) and their remainders,
# column tails around 16 and 32, K of 1 and odd
SHAPES = [(1, 1, 1), (7, 3, 17), (8, 16, 32), (9, 16, 33), (12, 5, 16), (13, 17, 15), (11, 33, 31), (25, 2, 48),
          (33, 16, 1), (1, 40, 64), (24, 9, 47)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("bits", [2, 4, 8])
def test_equals_reference(isa, shape, bits):
    g = torch.Generator().manual_seed(hash((shape, bits)) % 2**31)
    _check(*_pair((3,), *shape, bits, bits, g))


@pytest.mark.parametrize("m", range(1, 34))
def test_every_row_and_column_tail(m):
    """M and N from 1 to 33: every row remainder of both micro-kernels and every column mask."""
    g = torch.Generator().manual_seed(m)
    _check(*_pair((2,), m, 6, m, 8, 8, g))
    _check(*_pair((), m, 16, 34 - m, 8, 8, g))


def _attention(B, N, H, hd, bits, g):
    """The attention's operands as it makes them: q, k, v views of the qkv tensor [B, N, 3, H, hd]."""
    x, s = _on_grid((B, N, 3 * H * hd), bits, g)
    q, k, v = x.reshape(B, N, 3, H, hd).permute(2, 0, 3, 1, 4).unbind(0)
    return q, k, v, s


# the bench's ViT (50 tokens, 4 heads of 16), a ViT-S-like block (197 tokens, heads of 64), Swin windows (49, 16)
@pytest.mark.parametrize("B,N,H,hd", [(2, 50, 4, 16), (1, 197, 2, 64), (3, 49, 3, 32), (4, 16, 2, 8)])
@pytest.mark.parametrize("bits", [4, 8])
def test_attention_views_and_output_layout(isa, B, N, H, hd, bits):
    g = torch.Generator().manual_seed(B * N + hd + bits)
    q, k, v, s = _attention(B, N, H, hd, bits, g)
    kt = k.transpose(-2, -1)
    scores = mnq.ops.quant_matmul(q, s, kt, s)
    assert same_bits(scores, ref.quant_matmul(q, s, kt, s))
    assert scores.is_contiguous()  # the scores QuantAct and the softmax read it as it is
    p, s_p = _softmax_like((B, H), N, N, 2 ** 15, g)
    o = mnq.ops.quant_matmul(p, s_p, v, s)
    assert same_bits(o, ref.quant_matmul(p, s_p, v, s))
    merged = o.transpose(1, 2).reshape(B, N, H * hd)  # the attention's next step: a view, no copy
    assert merged.data_ptr() == o.data_ptr() and merged._base is not None


@pytest.mark.parametrize("bits_a,bits_b", [(9, 9), (12, 8), (8, 12), (16, 16), (16, 4)])
def test_wide_codes_are_exact(isa, bits_a, bits_b):
    """Codes beyond the float32 bound (L·Q ≥ 2^24 for most tiles here) take the exact float64 tiles."""
    g = torch.Generator().manual_seed(bits_a * 17 + bits_b)
    _check(*_pair((2, 3), 19, 48, 21, bits_a, bits_b, g))
    q, k, v, s = _attention(2, 50, 2, 16, bits_a, g)
    _check(q, s, k.transpose(-2, -1), s)


@pytest.mark.parametrize("row_sum,bits_v", [(2 ** 15, 8), (2 ** 16, 8), (2 ** 16, 9), (2 ** 17, 8)])
def test_softmax_rows_on_both_sides_of_the_bound(isa, row_sum, bits_v):
    """A nonnegative A with large row sums (a 16-bit softmax output) times 8- or 9-bit v: L·Q around 2^24."""
    g = torch.Generator().manual_seed(row_sum + bits_v)
    p, s_p = _softmax_like((2, 3), 50, 50, row_sum, g)
    v, s_v = _on_grid((2, 3, 50, 16), bits_v, g)
    _check(p, s_p, v, s_v)


def test_a_sum_beyond_float32_is_exact(isa):
    """Products 2^24, 1 and −2^24: the exact sum is 1, a float32 accumulation in k order gives 0 (2^24 + 1 rounds to
    2^24): the bound (L·Q = 8193·4096 > 2^24) must send the tile to the exact form. Columns of the first vector and
    of the tail both; a scale that keeps the result apart from its neighbours."""
    s = torch.tensor(0.75, dtype=torch.float64)
    a = torch.tensor([[4096.0, 1.0, 4096.0]] * 9) * 0.75
    b = torch.tensor([[4096.0], [1.0], [-4096.0]]).repeat(1, 20)
    b[1, 3], b[1, 18] = 3.0, -5.0
    got = mnq.ops.quant_matmul(a, s, b * 0.75, s)
    assert got[0, 0] == 0.5625 and got[0, 3] == 3 * 0.5625 and got[0, 18] == -5 * 0.5625
    assert same_bits(got, ref.quant_matmul(a, s, b * 0.75, s))


def test_the_bound_is_on_row_sums_not_on_single_products(isa):
    """Every product below 2^24 (511·255) but a row's L·Q of ~2^25: 130 products up, 130 down, then 1. A float32
    accumulation in k order rounds the odd partial sums above 2^24; the exact result is the last product."""
    k_up = 130
    a = torch.tensor([[511.0] * (2 * k_up) + [1.0]] * 3)
    b = torch.tensor([255.0] * k_up + [-255.0] * k_up + [7.0]).reshape(-1, 1).repeat(1, 17)
    acc = torch.zeros((), dtype=torch.float32)
    for x in (a[0] * b[:, 0]).tolist():  # what float32 sums in k order give: not the exact 7
        acc = (acc + torch.tensor(x, dtype=torch.float32)).float()
    assert float(acc) != 7.0
    s = torch.tensor(1.0, dtype=torch.float64)
    got = mnq.ops.quant_matmul(a, s, b, s)
    assert (got == 7.0).all() and same_bits(got, ref.quant_matmul(a, s, b, s))


@pytest.mark.parametrize("row", [[2.0 ** 20, -2.0], [2.0 ** 18 - 1, 1.0], [-(2.0 ** 18), 3.0], [-(2.0 ** 19), 5.0]])
def test_codes_at_the_certified_clamp_are_exact(isa, row):
    """A code at or beyond the certified quantizer's clamp (2^18 − 1, −2^18) with a small other operand (L·Q small):
    the exact tiles, which read the code itself (2^20 is not 2^18 − 1)."""
    s = torch.tensor(0.5, dtype=torch.float64)
    a = torch.tensor([row, [1.0, 2.0]]) * 0.5
    b = torch.tensor([[1.0, 0.0, -1.0], [1.0, 1.0, 0.0]]) * 0.5
    _check(a, s, b, s)
    _check(b.t().contiguous(), s, a.t().contiguous(), s)  # the code in b


def test_off_grid_inputs_are_read_at_their_codes(isa):
    g = torch.Generator().manual_seed(4)
    a, s_a, b, s_b = _pair((2,), 13, 32, 20, 8, 8, g)
    a = a + (torch.rand(a.shape, generator=g) - 0.5) * float(s_a)
    b = b + (torch.rand(b.shape, generator=g) - 0.5) * float(s_b)
    a[0, 0, :4] = torch.tensor([0.5, 1.5, -2.5, 127.5]).double().mul(s_a).float()  # exact half codes: to even
    _check(a, s_a, b, s_b)


def test_strides_of_every_kind(isa):
    """Rows contiguous, columns contiguous (a transposed a), neither (a sliced tensor), and a 5-D batch."""
    g = torch.Generator().manual_seed(5)
    a, s_a, b, s_b = _pair((2,), 21, 18, 23, 8, 8, g)
    _check(a.transpose(-2, -1).contiguous().transpose(-2, -1), s_a, b, s_b)
    _check(a, s_a, b.transpose(-2, -1).contiguous().transpose(-2, -1), s_b)
    wide_a, _ = _on_grid((2, 21, 36), 8, g)
    wide_b, _ = _on_grid((2, 36, 46), 8, g)
    _check(wide_a[..., ::2], s_a, wide_b[:, ::2, ::2], s_b)
    _check(*_pair((2, 1, 3), 5, 7, 9, 8, 8, g))


def test_many_batch_dims_and_empty_shapes():
    g = torch.Generator().manual_seed(6)
    _check(*_pair((2, 1, 2, 1, 2, 1, 2), 3, 4, 5, 8, 8, g))  # 7 batch dims: the float64 path
    _check(*_pair((), 3000, 700, 16, 8, 8, g))  # more than 2^21 codes in one product: the float64 path
    for lead, m, k, n in [((0,), 3, 4, 5), ((2,), 0, 4, 5), ((2,), 3, 0, 5), ((2,), 3, 4, 0)]:
        a, s_a, b, s_b = _pair(lead, m, k, n, 8, 8, g)
        got = mnq.ops.quant_matmul(a, s_a, b, s_b)
        assert got.shape == (*lead, m, n) and same_bits(got, ref.quant_matmul(a, s_a, b, s_b))


def test_scales_outside_the_vector_quantizers_range(isa):
    """1/S beyond 2^100: the scalar quantizer (quantize_code itself) gives the codes."""
    g = torch.Generator().manual_seed(7)
    q = torch.randint(-100, 101, (2, 9, 17), generator=g).double()
    s = torch.tensor(2.0 ** -110, dtype=torch.float64)
    a = (q * s).float()
    b, s_b = _on_grid((2, 17, 18), 8, g)
    _check(a, s, b, s_b)


def test_nan_reaches_its_row_and_column_inf_is_clamped(isa):
    g = torch.Generator().manual_seed(8)
    a, s_a, b, s_b = _pair((2,), 10, 16, 20, 8, 8, g)
    a[0, 2, 3] = float("nan")
    b[1, 5, 7] = float("nan")
    y = mnq.ops.quant_matmul(a, s_a, b, s_b)
    nan = torch.zeros_like(y, dtype=torch.bool)
    nan[0, 2, :] = True
    nan[1, :, 7] = True
    assert torch.equal(torch.isnan(y), nan)
    a0, b0 = a.nan_to_num(0.0), b.nan_to_num(0.0)
    assert same_bits(y[~nan], ref.quant_matmul(a0, s_a, b0, s_b)[~nan])
    a[1, 4, 0], b[0, 3, 2] = float("inf"), -float("inf")  # codes clamped to 32 bits: the exact tiles
    a[0, 2, 3], b[1, 5, 7] = 0.0, 0.0
    _check(a, s_a, b, s_b)


def test_gradient_is_matmul_s():
    g = torch.Generator().manual_seed(9)
    a, s_a, b, s_b = _pair((2, 3), 11, 20, 9, 8, 8, g)
    a_s = [a.clone().requires_grad_() for _ in range(2)]
    b_s = [b.clone().requires_grad_() for _ in range(2)]
    gy = torch.randn(2, 3, 11, 9, generator=g)
    (mnq.ops.quant_matmul(a_s[0], s_a, b_s[0], s_b) * gy).sum().backward()
    (torch.matmul(a_s[1], b_s[1]) * gy).sum().backward()
    torch.testing.assert_close(a_s[0].grad, a_s[1].grad, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(b_s[0].grad, b_s[1].grad, rtol=1e-6, atol=1e-6)
    s_g = s_a.clone().requires_grad_()
    y = mnq.ops.quant_matmul(a, s_g, b_s[0], s_b)
    (ga,) = torch.autograd.grad(y.sum(), [b_s[0]])
    torch.testing.assert_close(ga, a.transpose(-2, -1) @ torch.ones_like(y))


def test_quant_matmul_module_is_exact():
    g = torch.Generator().manual_seed(10)
    a, s_a, b, s_b = _pair((2,), 6, 8, 5, 8, 8, g)
    y, s_out = mnn.QuantMatMul()(a, s_a, b, s_b)
    assert s_out.dtype == torch.float64 and torch.equal(s_out, s_a * s_b)
    assert same_bits(y, ref.quant_matmul(a, s_a, b, s_b))


def test_meta_shapes():
    a = torch.empty(2, 3, 8, 6, device="meta")
    b = torch.empty(2, 3, 6, 5, device="meta")
    s = torch.tensor(0.1, dtype=torch.float64)
    y = torch.ops.mnq.quant_matmul(a, s, b, s)
    assert y.shape == (2, 3, 8, 5) and y.device.type == "meta"
    with pytest.raises(ValueError, match=r"b's rows \(dim -2\) must equal a's columns \(K = 6\)"):
        torch.ops.mnq.quant_matmul(a, s, torch.empty(2, 3, 7, 5, device="meta"), s)


@pytest.mark.parametrize("case,match", [
    ("a_int", "a must be a float32 tensor"),
    ("b_double", "b must be a float32 tensor"),
    ("a_1d", r"a must have at least 2 dimensions \(\[\.\.\., M, K\]\)"),
    ("batch", r"b must have a's batch dims \[\.\.\., K, N\] \(no broadcasting\)"),
    ("dims", r"b must have a's batch dims \[\.\.\., K, N\] \(no broadcasting\)"),
    ("inner", r"b's rows \(dim -2\) must equal a's columns \(K = 8\)"),
    ("scale_shape", r"scale_a must have shape \[\] \(per tensor\)"),
    ("scale_int", "scale_b must be a floating-point tensor"),
    ("scale_none", "scale_a must be a tensor, got None"),
    ("scale_zero", "scale_a must be a finite positive scale"),
    ("scale_nan", "scale_b must be a finite positive scale"),
    ("scale_inf", "scale_b must be a finite positive scale"),
])
def test_bad_arguments_name_what_is_wrong(case, match):
    a, b = torch.zeros(2, 3, 8), torch.zeros(2, 8, 5)
    sa, sb = torch.tensor(0.1, dtype=torch.float64), torch.tensor(0.2, dtype=torch.float64)
    if case == "a_int":
        a = a.to(torch.int32)
    elif case == "b_double":
        b = b.double()
    elif case == "a_1d":
        a, b = torch.zeros(8), torch.zeros(8)
    elif case == "batch":
        b = torch.zeros(1, 8, 5)
    elif case == "dims":
        b = torch.zeros(8, 5)
    elif case == "inner":
        b = torch.zeros(2, 7, 5)
    elif case == "scale_shape":
        sa = torch.ones(2, dtype=torch.float64)
    elif case == "scale_int":
        sb = torch.tensor(1)
    elif case == "scale_none":
        sa = None
    elif case == "scale_zero":
        sa = torch.tensor(0.0, dtype=torch.float64)
    elif case == "scale_nan":
        sb = torch.tensor(float("nan"), dtype=torch.float64)
    elif case == "scale_inf":
        sb = torch.tensor(float("inf"), dtype=torch.float64)
    with pytest.raises((ValueError, TypeError, RuntimeError), match=match):
        if case in ("scale_none", "scale_int"):  # mnq.ops converts a scale to float64: the op itself
            torch.ops.mnq.quant_matmul(a, sa, b, sb)
        else:
            mnq.ops.quant_matmul(a, sa, b, sb)


@requires_cuda
@pytest.mark.parametrize("bits", [4, 8, 12, 16])
def test_cuda_equals_cpu(bits):
    """CUDA takes the float64 path (no host reads); its values are the CPU's, bit for bit."""
    g = torch.Generator().manual_seed(11 + bits)
    q, k, v, s = _attention(3, 50, 4, 16, bits, g)
    q = q.clone()
    q[1, 2, 3, 4] = float("nan")
    kt = k.transpose(-2, -1)
    p, s_p = _softmax_like((3, 4), 50, 50, 2 ** 15, g)
    for a, s_a, b, s_b in [(q, s, kt, s), (p, s_p, v, s)]:
        want = mnq.ops.quant_matmul(a, s_a, b, s_b)
        got = mnq.ops.quant_matmul(a.cuda(), s_a.cuda(), b.cuda(), s_b.cuda()).cpu()
        assert torch.equal(torch.isnan(got), torch.isnan(want))
        assert same_bits(got[~torch.isnan(want)], want[~torch.isnan(want)])
