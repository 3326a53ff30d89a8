"""Quantizers (SPEC §1): quantize (per tensor / per channel), requant with fused residual, PtfAct codes and
calibration statistic; fake-quant forms and their straight-through gradients; errors."""
import pytest
import torch

from helpers import INT_DTYPES, requires_cuda
from mnq import ops, reference


@pytest.mark.parametrize("bits", [2, 4, 6, 8, 16, 22, 32])
@pytest.mark.parametrize("shape", [(3, 197), (769,), (2, 3, 5), ()])
def test_quantize_per_tensor(shape, bits):
    x = torch.randn(shape) * 3
    scale = 6.0 / (2 ** (bits - 1) - 1)
    assert torch.equal(ops.quantize(x, scale, bits).long(), reference.quantize(x, scale, bits))


def test_quantize_ties_round_half_even_and_clamp():
    x = torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, 1000.0, -1000.0, float("inf"), float("-inf")])
    q = ops.quantize(x, 1.0, 8)
    assert q.tolist() == [0, 2, 2, 0, -2, 127, -128, 127, -128]


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_quantize_per_channel(axis):
    x = torch.randn(6, 7, 5)
    scale = torch.rand(x.shape[axis], dtype=torch.float64) * 0.1 + 0.01
    got = ops.quantize(x, scale, 8, axis)
    assert torch.equal(got.long(), reference.quantize(x, scale, 8, axis))
    # non-contiguous input
    xt = x.transpose(0, 2)
    st = torch.rand(xt.shape[-1], dtype=torch.float64) + 0.01
    assert torch.equal(ops.quantize(xt, st, 6).long(), reference.quantize(xt.contiguous(), st, 6))


def test_quantize_per_channel_last_dim_nan():
    # the row × channel loop (channels on the last dim, as PtfAct): NaN stays NaN in fake quant, the rest exact;
    # the integer quantizer reports it
    x = torch.randn(9, 33)
    x[4, 17] = float("nan")
    scale = torch.rand(33, dtype=torch.float64) * 0.1 + 0.01
    fake = ops.quantize_qat(x, scale, 8, -1)
    assert torch.isnan(fake[4, 17]) and torch.isnan(fake).sum() == 1
    ok = ~torch.isnan(x)
    want = (reference.quantize(torch.nan_to_num(x), scale, 8, -1).double() * scale).float()
    assert torch.equal(fake[ok], want[ok])
    with pytest.raises(ValueError, match="NaN"):
        ops.quantize(x, scale, 8, -1)


def test_quantize_qat_is_dequantized_codes_with_identity_gradient():
    x = (torch.randn(4, 33) * 2).requires_grad_(True)
    scale = torch.rand(33, dtype=torch.float64) * 0.05 + 0.01
    y = ops.quantize_qat(x, scale, 8)
    q = ops.quantize(x.detach(), scale, 8)
    assert torch.equal(y.detach(), (q.double() * scale).float())
    g = torch.randn_like(y)
    (gx,) = torch.autograd.grad(y, x, g)
    assert torch.equal(gx, g)  # STE: no clipping mask
    nan = ops.quantize_qat(torch.tensor([float("nan"), 1.0]), 0.1, 8)
    assert torch.isnan(nan[0]) and nan[1] == 1.0


@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_requant_matches_reference(dtype):
    info = torch.iinfo(dtype)
    q = torch.randint(max(info.min, -(2**20)), min(info.max, 2**20), (5, 197)).to(dtype)
    for s_in, s_out, bits in [(0.013, 0.05, 8), (1e-4, 3e-3, 16), (0.2, 0.01, 8), (0.01, 0.01, 22)]:
        got = ops.requant(q, s_in, s_out, bits)
        assert torch.equal(got.long(), reference.requant_act(q, s_in, s_out, bits))


@pytest.mark.parametrize("isa", ["scalar", "avx512"])
def test_requant_residual_every_pair_of_code_dtypes(isa):
    # The CPU fast loop reads each input and identity dtype through its own row copy (csrc/cpu/requant.cpp); every
    # pair, per-tensor and per-channel, with int64 codes beyond 2^31 (their blocks are redone by the exact loop).
    from mnq import _mnq
    before = _mnq.set_cpu_isa(isa)
    try:
        dtypes = [torch.uint8] + INT_DTYPES
        for a in dtypes:
            for b in dtypes:
                ia, ib = torch.iinfo(a), torch.iinfo(b)
                q = torch.randint(max(ia.min, -(2**40)), min(ia.max, 2**40), (3, 37)).to(a)
                ident = torch.randint(max(ib.min, -(2**15)), min(ib.max, 2**15), (3, 37)).to(b)
                for s_in in (0.013, torch.rand(37, dtype=torch.float64) * 0.01 + 1e-3):
                    got = ops.requant(q, s_in, 0.05, 8, ident, 3e-4)
                    assert torch.equal(got.long(), reference.requant_act(q, s_in, 0.05, 8, ident, 3e-4)), (a, b)
    finally:
        _mnq.set_cpu_isa(before)


def test_requant_per_channel_negative_scales_and_residual():
    q = torch.randint(-(2**15), 2**15, (4, 9, 16), dtype=torch.int32)
    s_in = (torch.rand(16, dtype=torch.float64) - 0.5) * 1e-3  # negative scales: I-BERT GELU / LayerNorm with γ < 0
    s_in[s_in.abs() < 1e-6] = 1e-4
    ident = torch.randint(-(2**15), 2**15, q.shape, dtype=torch.int32)
    got = ops.requant(q, s_in, 0.02, 8, ident, 3e-4)
    want = reference.requant_act(q, s_in, 0.02, 8, ident, 3e-4)
    assert torch.equal(got.long(), want)
    assert int(got.min()) >= -128 and int(got.max()) <= 127


def test_requant_extremes_are_exact():
    q = torch.tensor([2**62, -(2**62), 2**31 - 1, -(2**31), 0, 1, -1])
    for r in (3e9, 1.0, 0.5, 1e-12):
        assert torch.equal(ops.requant(q, r, 1.0, 32).long(), reference.requant_act(q, r, 1.0, 32))


def test_requant_qat_matches_integer_path_and_passes_gradients():
    s_in, s_id, s_out = 0.013, 0.007, 0.05
    q = torch.randint(-128, 128, (3, 20), dtype=torch.int32)
    qi = torch.randint(-500, 500, (3, 20), dtype=torch.int32)
    x = (q.double() * s_in).float().requires_grad_(True)
    xi = (qi.double() * s_id).float().requires_grad_(True)
    y = ops.requant_qat(x, s_in, s_out, 8, xi, s_id)
    want = ops.requant(q, s_in, s_out, 8, qi, s_id)
    assert torch.equal(y.detach(), (want.double() * s_out).float())
    g = torch.randn_like(y)
    gx, gi = torch.autograd.grad(y, [x, xi], g)
    assert torch.equal(gx, g) and torch.equal(gi, g)


def test_ptf_quantize_and_alpha_error():
    x = torch.randn(50, 24) * torch.logspace(-1, 1, 24)
    s_base = float(x.abs().max()) / 127 / 8
    alpha = torch.randint(0, 4, (24,))
    assert torch.equal(ops.ptf_quantize(x, alpha, s_base, 8).long(), reference.ptf_quantize(x, alpha, s_base, 8))
    err = ops.ptf_alpha_error(x, s_base, 8)
    torch.testing.assert_close(err, reference.ptf_alpha_error(x, s_base, 8), rtol=1e-12, atol=1e-15)
    # small channels prefer small α, the largest ones need α = 3 to avoid clipping
    best = err.argmin(-1)
    assert int(best[0]) == 0 and int(best[-1]) == 3
    y = ops.ptf_quantize_qat(x.requires_grad_(True), alpha, s_base, 8)
    (gx,) = torch.autograd.grad(y.sum(), x)
    assert torch.equal(gx, torch.ones_like(x))


def test_opcheck():
    x = torch.randn(3, 8)
    s = torch.tensor(0.05, dtype=torch.float64)
    torch.library.opcheck(torch.ops.mnq.quantize.default, (x, s, 8, -1))
    torch.library.opcheck(torch.ops.mnq.quantize_qat.default, (x.requires_grad_(True), s, 8, -1))
    q = torch.randint(-100, 100, (3, 8), dtype=torch.int32)
    torch.library.opcheck(torch.ops.mnq.requant.default, (q, s, torch.tensor(0.1, dtype=torch.float64), 8, q, s))


def test_errors():
    x = torch.randn(4, 5)
    with pytest.raises(TypeError, match="x must be a float32 tensor"):
        ops.quantize(x.double(), 0.1, 8)
    with pytest.raises(ValueError, match="bits must be in \\[2, 32\\]"):
        ops.quantize(x, 0.1, 33)
    with pytest.raises(ValueError, match="scale\\[0\\] = -0.1 must be finite and positive"):
        ops.quantize(x, -0.1, 8)
    with pytest.raises(ValueError, match="scale must be 0-d \\(per tensor\\) or of shape \\[5\\]"):
        ops.quantize(x, torch.ones(4, dtype=torch.float64), 8)
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        ops.quantize(x, 0.1, 8, axis=2)
    with pytest.raises(ValueError, match="NaN"):
        ops.quantize(torch.tensor([float("nan")]), 0.1, 8)
    q = torch.zeros(4, 5, dtype=torch.int32)
    with pytest.raises(ValueError, match="identity and identity_scale must be given together"):
        torch.ops.mnq.requant(q, torch.tensor(0.1, dtype=torch.float64), torch.tensor(0.1, dtype=torch.float64), 8, q,
                              None)
    with pytest.raises(ValueError, match="identity must have the shape"):
        ops.requant(q, 0.1, 0.1, 8, torch.zeros(5, 4, dtype=torch.int32), 0.1)
    with pytest.raises(ValueError, match="scale_in\\[0\\] = 0 must be finite and nonzero"):
        ops.requant(q, 0.0, 0.1, 8)
    with pytest.raises(ValueError, match="scale_out\\[0\\] = inf must be finite and positive"):
        ops.requant(q, 0.1, float("inf"), 8)
    with pytest.raises(ValueError, match="scale_in\\[0\\] / scale_out = 1e\\+300 / 1e-300 is not finite"):
        ops.requant(torch.tensor([[1, -1, 100]], dtype=torch.int32), 1e300, 1e-300, 8)  # each scale valid alone
    with pytest.raises(ValueError, match="identity_scale\\[0\\] / scale_out .* is not finite"):
        ops.requant_qat(torch.zeros(1, 3), 0.1, 0.5, 8, torch.zeros(1, 3), -1.7e308)
    with pytest.raises(ValueError, match="alpha\\[1\\] = 4 must be in"):
        ops.ptf_quantize(x, torch.tensor([0, 4, 0, 0, 0]), 0.1, 8)
    with pytest.raises(ValueError, match="alpha must have shape \\[5\\]"):
        ops.ptf_quantize(x, torch.zeros(3, dtype=torch.int64), 0.1, 8)


def test_ptf_scale_overflow_is_an_error():
    with pytest.raises(ValueError, match="s_base·2\\^alpha\\[0\\] = .*overflows"):
        ops.ptf_quantize(torch.zeros(1, 2), torch.tensor([3, 0]), 1.7e308, 8)


def _meta(*shape, dtype=torch.float32):
    return torch.empty(shape, dtype=dtype, device="meta")


@pytest.mark.parametrize("call, match", [
    (lambda: torch.ops.mnq.quantize(_meta(2, 3), _meta(dtype=torch.float64), 99, -1), "bits must be in \\[2, 32\\]"),
    (lambda: torch.ops.mnq.quantize_qat(_meta(2, 3), _meta(dtype=torch.float64), 1, -1), "bits must be in"),
    (lambda: torch.ops.mnq.quantize(_meta(2, 3), _meta(dtype=torch.float64), 8, 2), "axis 2 is out of range"),
    (lambda: torch.ops.mnq.quantize(_meta(2, 3), _meta(4, dtype=torch.float64), 8, -1), "scale must be 0-d"),
    (lambda: torch.ops.mnq.quantize(_meta(2, 3, dtype=torch.int32), _meta(dtype=torch.float64), 8, -1),
     "x must be a float32 tensor"),
    (lambda: torch.ops.mnq.requant(_meta(2, 3, dtype=torch.int32), _meta(dtype=torch.float64),
                                   _meta(dtype=torch.float64), 99, None, None), "bits must be in \\[2, 32\\]"),
    (lambda: torch.ops.mnq.requant_qat(_meta(2, 3), _meta(dtype=torch.float64), _meta(dtype=torch.float64), 8,
                                       _meta(2, 3), None), "identity and identity_scale must be given together"),
    (lambda: torch.ops.mnq.requant(_meta(2, 3, dtype=torch.int32), _meta(dtype=torch.float64),
                                   _meta(2, dtype=torch.float64), 8, None, None), "scale_out must be a per-tensor"),
    (lambda: torch.ops.mnq.ptf_quantize(_meta(2, 3), _meta(3, dtype=torch.int64), _meta(dtype=torch.float64), 17),
     "bits must be in \\[2, 16\\]"),
    (lambda: torch.ops.mnq.ptf_alpha_error(_meta(2, 3), _meta(dtype=torch.float64), 99), "bits must be in"),
])
def test_meta_kernels_validate_like_the_real_ones(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_meta_kernels_give_the_real_shapes():
    assert torch.ops.mnq.quantize(_meta(2, 3), _meta(dtype=torch.float64), 8, -1).dtype == torch.int32
    out = torch.ops.mnq.requant_qat(_meta(2, 3), _meta(3, dtype=torch.float64), _meta(dtype=torch.float64), 8,
                                    _meta(2, 3), _meta(dtype=torch.float64))
    assert out.shape == (2, 3) and out.dtype == torch.float32


@requires_cuda
def test_cuda_integer_requant_rejects_a_non_finite_ratio():
    q = torch.tensor([[1, -1, 100]], dtype=torch.int32, device="cuda")
    with pytest.raises(ValueError, match="scale_in\\[0\\] / scale_out = 1e\\+300 / 1e-300 is not finite"):
        ops.requant(q, 1e300, 1e-300, 8)
    with pytest.raises(ValueError, match="identity_scale\\[0\\] / scale_out .* is not finite"):
        ops.requant(q, 0.1, 0.5, 8, q, -1.7e308)


@requires_cuda
def test_cuda_matches_cpu():
    x = torch.randn(8, 197, 384) * 2
    s = torch.rand(384, dtype=torch.float64) * 0.05 + 0.005
    assert torch.equal(ops.quantize(x.cuda(), s, 8).cpu(), ops.quantize(x, s, 8))
    q = torch.randint(-(2**15), 2**15, (8, 197, 384), dtype=torch.int32)
    assert torch.equal(ops.requant(q.cuda(), s, 0.03, 8, q.cuda(), 0.01).cpu(), ops.requant(q, s, 0.03, 8, q, 0.01))
    assert torch.equal(ops.ptf_alpha_error(x.cuda(), 0.01, 8).cpu(), ops.ptf_alpha_error(x, 0.01, 8))


def test_requant_qat_without_residual_has_identity_gradient():
    q = torch.randint(-1000, 1000, (2, 7, 16), dtype=torch.int32)
    s_in = torch.rand(16, dtype=torch.float64) * 1e-3 + 1e-4
    x = (q.double() * s_in).float().requires_grad_(True)
    y = ops.requant_qat(x, s_in, 0.01, 8)
    assert torch.equal(y.detach(), (ops.requant(q, s_in, 0.01, 8).double() * 0.01).float())
    (gx,) = torch.autograd.grad(y.sum(), x)
    assert torch.equal(gx, torch.ones_like(x))


def test_requant_fast_path_falls_back_exactly_on_wide_codes():
    # codes beyond 2^31 in some rows force the exact 128-bit path for those rows only
    q = torch.randint(-(2**20), 2**20, (64, 24), dtype=torch.int64)
    q[5, 3] = 2**40
    q[40, 0] = -(2**50)
    s_in = torch.rand(24, dtype=torch.float64) * 1e-3 + 1e-5
    ident = torch.randint(-(2**20), 2**20, (64, 24), dtype=torch.int64)
    ident[7, 7] = 2**45
    got = ops.requant(q, s_in, 0.05, 16, ident, 2e-4)
    assert torch.equal(got.long(), reference.requant_act(q, s_in, 0.05, 16, ident, 2e-4))


def test_requant_wide_path_matches_reference():
    # multipliers below 1 take the wide 64-bit path for codes up to 2^62 (I-BERT GELU outputs, int32 accumulators)
    g = torch.Generator().manual_seed(3)
    mags = torch.randint(0, 62, (96, 40), generator=g)
    q = torch.randint(0, 2**62, (96, 40), generator=g, dtype=torch.int64) >> mags
    q = torch.where(torch.rand(96, 40, generator=g) < 0.5, -q, q)
    q[::7, 0] = 2**62 - 1
    q[3, 5] = 2**62  # beyond the wide range: that block is redone by the exact path
    q[4, 6] = -(2**63)
    # S_in / S_out from 2^-11 to 2^-58: shifts k from 42 to 90, past the 62 of requant64
    s_in = 2.0 ** -torch.randint(20, 66, (40,), generator=g).double() * (1 + torch.rand(40, generator=g).double())
    got = ops.requant(q, s_in, 2.0**-8, 30)
    assert torch.equal(got.long(), reference.requant_act(q, s_in, 2.0**-8, 30))
    # one multiplier above 1 (a shift below 31): the narrow path with exact fallback for the wide codes
    s_in[2] = 3.0
    got = ops.requant(q, s_in, 2.0**-8, 30)
    assert torch.equal(got.long(), reference.requant_act(q, s_in, 2.0**-8, 30))


@pytest.mark.parametrize("isa", ["scalar", "avx2", "avx512"])
def test_cpu_vector_paths_match_reference(isa):
    # Every CPU path (csrc/cpu/isa.h; a path the CPU lacks runs its best one) gives the reference's values: ties,
    # both clamp ends and beyond, NaN, odd row lengths (vector tails), per-tensor and per-channel scales.
    from mnq import _mnq
    before = _mnq.set_cpu_isa(isa)
    try:
        g = torch.Generator().manual_seed(5)
        s = 6.0 / 127
        ties = (torch.arange(-140, 141, dtype=torch.float64) + 0.5) * s
        x = torch.cat([ties.float(), torch.randn(3 * 197 * 5 - ties.numel() - 3, generator=g) * 4,
                       torch.tensor([float("inf"), -float("inf"), 0.0])]).reshape(3, 5, 197)
        for bits in (4, 8, 16):
            assert torch.equal(ops.quantize(x, s, bits).long(), reference.quantize(x, s, bits))
        sc = torch.rand(197, generator=g, dtype=torch.float64) * 0.1 + 0.01
        assert torch.equal(ops.quantize(x, sc, 8, axis=-1).long(), reference.quantize(x, sc, 8, -1))
        fake = ops.quantize_qat(x, torch.tensor(s, dtype=torch.float64), 8)
        assert torch.equal(fake, (reference.quantize(x, s, 8).double() * s).float())
        q = torch.randint(-(2**31), 2**31, (7, 197), generator=g, dtype=torch.int64).to(torch.int32)
        ident = torch.randint(-(2**15), 2**15, (7, 197), generator=g, dtype=torch.int32)
        for s_in, s_out, bits in [(0.013, 0.05, 8), (6 / 32767, 0.05, 8), (1e-9, 3e-3, 16), (0.01, 0.01, 32)]:
            assert torch.equal(ops.requant(q, s_in, s_out, bits).long(), reference.requant_act(q, s_in, s_out, bits))
            got = ops.requant(q >> 8, s_in, s_out, bits, ident, 3e-4)
            assert torch.equal(got.long(), reference.requant_act(q >> 8, s_in, s_out, bits, ident, 3e-4))
        qs = torch.randint(-(2**15), 2**15, (7, 197), generator=g, dtype=torch.int32)
        xs, xi = (qs.double() * 1e-3).float(), (ident.double() * 3e-4).float()
        xs[0, 0] = float("nan")
        y = ops.requant_qat(xs, 1e-3, 0.05, 8, xi, 3e-4)
        want = (reference.requant_act(qs, 1e-3, 0.05, 8, ident, 3e-4).double() * 0.05).float()
        assert torch.isnan(y[0, 0]) and torch.equal(y.flatten()[1:], want.flatten()[1:])
    finally:
        _mnq.set_cpu_isa(before)


@pytest.mark.parametrize("shape", [(50, 24), (37, 130), (7, 1), (3, 5, 67)])
@pytest.mark.parametrize("threads", [1, 2])
def test_ptf_alpha_error_sums_rows_in_order(shape, threads):
    """ptf_alpha_error's per-channel sums are the rows' squared errors added in row order in float64 (the CUDA
    kernel's order; csrc/cpu/quant.cpp sums a block of channels side by side): bit for bit a row-by-row float64
    accumulation of (x − q·S_α)², with channel blocks of 64 and a tail, values past the clamp, a NaN channel and
    an infinite one, one and two threads."""
    g = torch.Generator().manual_seed(sum(shape))
    x = torch.randn(shape, generator=g) * torch.logspace(-2, 1, shape[-1])
    if shape[-1] > 3:
        x[..., 1].view(-1)[2] = float("nan")
        x[..., 3].view(-1)[0] = float("inf")
    s_base = 0.004
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        got = ops.ptf_alpha_error(x, s_base, 8)
    finally:
        torch.set_num_threads(before)
    xd = x.double().reshape(-1, shape[-1])
    want = torch.zeros(shape[-1], 4, dtype=torch.float64)
    for a in range(4):
        s = s_base * 2.0**a
        q = torch.clamp(torch.round(xd / s), -128, 127)
        for r in range(xd.shape[0]):
            d = xd[r] - q[r] * s
            want[:, a] = want[:, a] + d * d
    nan = torch.isnan(want)
    assert torch.equal(torch.isnan(got), nan)
    assert torch.equal(got[~nan], want[~nan])
