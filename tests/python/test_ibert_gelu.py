"""I-BERT i-GELU (SPEC §3.1): bit-exact against the reference (per tensor and per channel), CUDA == CPU, quality on
accumulator-precision inputs, SPEC's bad conditioning at 8-bit precision, QAT gradient, errors."""
import math

import pytest
import torch
import torch.nn.functional as F

from helpers import INT_DTYPES, assert_ste_grad, requires_cuda, sqnr_db
from mnq import ops, reference

SCALES = [1e-3, 3e-4, 1e-4, 2e-5, 1e-6, 0.035, 2.0]
S_MIN, S_MAX = 4.43647e-7, 2.5017198  # kernels/ibert_gelu.h


def accumulator(shape, scale, generator=None):
    """fc1-accumulator-like codes: unit-variance activations on `scale`, within int32."""
    x = torch.randn(shape, generator=generator, dtype=torch.float64) * 1.5
    return torch.clamp(torch.round(x / scale), -(2**31), 2**31 - 1).to(torch.int32)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("shape", [(3, 197), (2, 769), (1, 1), (5, 1), (2, 3, 17)])
def test_matches_reference(shape, scale):
    q = accumulator(shape, scale)
    out, s_out = ops.ibert_gelu(q, scale)
    want, want_s = reference.ibert_gelu(q, scale)
    assert out.dtype == torch.int64 and torch.equal(out, want)
    assert s_out.dtype == torch.float64 and s_out.shape == () and torch.equal(s_out, want_s)
    assert float(s_out) < 0


@pytest.mark.parametrize("shape", [(4, 197), (2, 3, 64), (7,)])
def test_per_channel_scale(shape):
    cols = shape[-1]
    scale = torch.exp(torch.empty(cols, dtype=torch.float64).uniform_(math.log(1e-5), math.log(1e-3)))
    q = torch.randint(-(2**31), 2**31, shape, dtype=torch.int64).to(torch.int32)
    q[..., ::3] = accumulator(q[..., ::3].shape, 1e-4)
    out, s_out = ops.ibert_gelu(q, scale)
    want, want_s = reference.ibert_gelu(q, scale)
    assert torch.equal(out, want)
    assert s_out.shape == (cols,) and torch.equal(s_out, want_s)
    # channel c really uses scale[c]: each column equals the per-tensor op on that column's scale
    for c in (0, cols - 1):
        assert torch.equal(out[..., c], ops.ibert_gelu(q[..., c].contiguous(), float(scale[c]))[0])


@pytest.mark.parametrize("dtype", INT_DTYPES + [torch.uint8])
def test_dtypes_and_extremes(dtype):
    info = torch.iinfo(dtype)
    lo, hi = max(info.min, -(2**31)), min(info.max, 2**31 - 1)
    q = torch.randint(lo, hi, (4, 33), dtype=torch.int64)
    q[0, :3] = torch.tensor([lo, hi, 0])
    q[1] = hi
    q = q.to(dtype)
    for scale in (S_MIN, 1e-4, 0.01, 2.5):
        assert torch.equal(ops.ibert_gelu(q, scale)[0], reference.ibert_gelu(q, scale)[0])


def test_scale_range_ends_do_not_overflow():
    # At the smallest supported scale |q·(y + one)| approaches 2^63 for q at the int32 ends.
    q = torch.tensor([-(2**31), -(2**31) + 1, -1, 0, 1, 2**31 - 2, 2**31 - 1], dtype=torch.int64)
    out, _ = ops.ibert_gelu(q, S_MIN)
    want, _ = reference.ibert_gelu(q, S_MIN)
    assert torch.equal(out, want)
    assert int(out.abs().max()) > 2**62
    # the exact value (Python ints) agrees: no wrap-around in the reference either
    b, c, one, _ = reference.ibert_gelu_consts(S_MIN)
    top = 2**31 - 1
    assert int(out[-1]) == top * ((((min(top, -b) + b) ** 2 + c) >> 14) + one)


def test_zero_dim_and_noncontiguous_and_empty():
    q = torch.tensor(12345, dtype=torch.int32)
    out, s_out = ops.ibert_gelu(q, 1e-4)
    assert out.shape == () and s_out.shape == ()
    assert torch.equal(out, reference.ibert_gelu(q, 1e-4)[0])
    scale = torch.tensor([1e-4, 2e-4, 3e-4, 1e-3, 5e-5, 1e-5], dtype=torch.float64)
    q = accumulator((6, 197), 1e-4)[:, ::2].t()  # [99, 6], per channel
    assert not q.is_contiguous()
    assert torch.equal(ops.ibert_gelu(q, 1e-4)[0], reference.ibert_gelu(q.contiguous(), 1e-4)[0])
    assert torch.equal(ops.ibert_gelu(q, scale)[0], reference.ibert_gelu(q.contiguous(), scale)[0])
    for shape, scale in [((0, 197), 1e-4), ((3, 0), torch.zeros(0, dtype=torch.float64)), ((0,), 1e-4)]:
        out, s_out = ops.ibert_gelu(torch.zeros(shape, dtype=torch.int32), scale)
        assert out.shape == shape and out.dtype == torch.int64
        assert s_out.shape == torch.as_tensor(scale).shape


def test_quality_on_accumulator_inputs():
    # Threshold 36 dB. The integer i-GELU follows I-BERT's clipped erf polynomial, whose own max error is
    # ~1.8e-2; measured on unit-variance accumulators (seed 0): 38.6 dB at S = 1e-3, 3e-4 and 1e-4. A wrong
    # constant (e.g. `one` off by 1 %) drops below.
    x = torch.randn(4, 197, 1536, dtype=torch.float64)
    for scale in (1e-3, 3e-4, 1e-4):
        q = torch.round(x / scale).to(torch.int32)
        out, s_out = ops.ibert_gelu(q, scale)
        assert sqnr_db(F.gelu(q.double() * scale), out.double() * s_out) >= 36.0


def test_badly_conditioned_on_8bit_inputs():
    # SPEC §3.1: n = 14 assumes accumulator precision. On 8-bit codes (S = max|x|/127 ≈ 0.037) a·Se²·2^14 ≈ −3, so
    # one = floor(1/unit) = −1 and y keeps no fraction: measured SQNR −9.9 dB (worse than outputting zeros),
    # while the same values on an accumulator scale give 38.6 dB. ShiftGELU is the 8-bit method.
    x = torch.randn(4, 197, 1536, dtype=torch.float64)
    s8 = float(x.abs().max()) / 127
    q8 = torch.clamp(torch.round(x / s8), -128, 127).to(torch.int32)
    out, s_out = ops.ibert_gelu(q8, s8)
    assert reference.ibert_gelu_consts(s8)[2] == -1
    assert sqnr_db(F.gelu(q8.double() * s8), out.double() * s_out) < 0.0


@pytest.mark.parametrize("per_channel", [False, True])
def test_qat_forward_is_integer_op_and_gradient_is_gelu(per_channel):
    scale = torch.full((197,), 1e-4, dtype=torch.float64) if per_channel else 1e-4
    if per_channel:
        scale[::2] = 3e-4
    s = torch.as_tensor(scale, dtype=torch.float64)
    q = accumulator((3, 4, 197), 3e-4)
    x = (q.double() * s).float().requires_grad_(True)
    y = ops.ibert_gelu_qat(x, scale)[0]
    out, s_out = ops.ibert_gelu(q, scale)
    assert torch.equal(y.detach(), (out.double() * s_out).float())
    assert_ste_grad(y, x, F.gelu)


def test_opcheck():
    q = accumulator((3, 7), 1e-4)
    for scale in (torch.tensor(1e-4, dtype=torch.float64), torch.full((7,), 2e-4, dtype=torch.float64)):
        torch.library.opcheck(torch.ops.mnq.ibert_gelu.default, (q, scale))
        x = (q.double() * 1e-4).float().requires_grad_(True)
        torch.library.opcheck(torch.ops.mnq.ibert_gelu_qat.default, (x, scale))


def test_errors():
    q = torch.zeros(2, 3, dtype=torch.int32)
    op = torch.ops.mnq.ibert_gelu
    with pytest.raises(TypeError, match="q must be an integer tensor"):
        ops.ibert_gelu(q.float(), 1e-4)
    with pytest.raises(TypeError, match="scale must be a float64 tensor"):
        op(q, torch.tensor(1e-4, dtype=torch.float32))
    with pytest.raises(ValueError, match=r"scale must be 0-d \(per tensor\) or have shape \[3\]"):
        op(q, torch.full((2,), 1e-4, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"scale must be 0-d \(per tensor\) or have shape \[1\]"):
        op(torch.tensor(1, dtype=torch.int32), torch.full((1,), 1e-4, dtype=torch.float64))
    for bad in (0.0, -1e-4, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="scale must be a finite positive scale"):
            ops.ibert_gelu(q, bad)
    with pytest.raises(ValueError, match="scale must be a finite positive scale"):
        ops.ibert_gelu(q, torch.tensor([1e-4, 0.0, 1e-4], dtype=torch.float64))
    for bad in (4.436e-7, 1e-9, S_MAX, 100.0):
        with pytest.raises(ValueError, match=r"scale .* is outside the supported range \[4.43647e-07, 2.50172\)"):
            ops.ibert_gelu(q, bad)
    with pytest.raises(ValueError, match="outside the supported range"):
        ops.ibert_gelu(q, torch.tensor([1e-4, 1e-4, 1e-8], dtype=torch.float64))
    with pytest.raises(ValueError, match=r"q has values outside the declared range \[-2147483648, 2147483647\]"):
        ops.ibert_gelu(torch.tensor([[2**31, 0]]), 1e-4)
    with pytest.raises(TypeError, match="x must be a float32 tensor"):
        ops.ibert_gelu_qat(q, 1e-4)[0]


@requires_cuda
@pytest.mark.parametrize("dtype", INT_DTYPES)
def test_cuda_matches_cpu(dtype):
    q = accumulator((2, 197, 384), 1e-3)
    q = torch.clamp(q, torch.iinfo(dtype).min, torch.iinfo(dtype).max).to(dtype)
    per_channel = torch.exp(torch.empty(384, dtype=torch.float64).uniform_(math.log(1e-5), math.log(1e-3)))
    for scale in SCALES + [per_channel]:
        cpu, s_cpu = ops.ibert_gelu(q, scale)
        gpu, s_gpu = ops.ibert_gelu(q.cuda(), scale)  # a CPU scale with a CUDA input is fine
        assert torch.equal(gpu.cpu(), cpu) and s_gpu.device == gpu.device and torch.equal(s_gpu.cpu(), s_cpu)
    gpu, _ = ops.ibert_gelu(q.cuda(), per_channel.cuda())
    assert torch.equal(gpu.cpu(), ops.ibert_gelu(q, per_channel)[0])
    x = q.float() * 1e-3
    assert torch.equal(ops.ibert_gelu_qat(x.cuda(), 1e-3)[0].cpu(), ops.ibert_gelu_qat(x, 1e-3)[0])
    assert torch.equal(ops.ibert_gelu_qat(x.cuda(), per_channel)[0].cpu(), ops.ibert_gelu_qat(x, per_channel)[0])
    with pytest.raises(ValueError, match="outside the declared range"):
        ops.ibert_gelu(torch.tensor([[2**40, 0]], device="cuda"), 1e-4)


def test_constants_cache_keys_on_scale_values():
    """The host constants are cached per thread by the scale's values (csrc/ops/ibert_gelu.cpp host_constants): a
    scale changed in place, another tensor with other values, a shape change and a bad value after a good one must
    all give the constants of the values passed; the returned S_out is the caller's own."""
    cols = 64
    g = torch.Generator().manual_seed(3)
    scale = 1e-4 * (0.5 + torch.rand(cols, generator=g, dtype=torch.float64))
    q = accumulator((3, cols), 1e-4, g)
    x = (q.double() * scale).float()
    for _ in range(2):  # a miss, then a hit
        out, s_out = ops.ibert_gelu(q, scale)
        assert torch.equal(out, reference.ibert_gelu(q, scale)[0])
    s_out.fill_(1.0)  # the caller's tensor: the next call's S_out is not this one
    assert torch.equal(ops.ibert_gelu(q, scale)[1], reference.ibert_gelu(q, scale)[1])
    # in place: the same tensor (same storage, version bumped), one channel's value moved by one ulp, then back
    old = scale.clone()
    scale[5] = math.nextafter(float(scale[5]), 1.0)
    scale[60] = 3e-4
    assert torch.equal(ops.ibert_gelu(q, scale)[0], reference.ibert_gelu(q, scale)[0])
    assert torch.equal(ops.ibert_gelu(q, scale)[1], reference.ibert_gelu(q, scale)[1])
    scale.copy_(old)
    assert torch.equal(ops.ibert_gelu(q, scale)[0], reference.ibert_gelu(q, scale)[0])
    # the QAT form shares the cache: its values and its NaN policy use the constants of the scale passed
    x_bad = x.clone()
    x_bad[1, 7] = float("nan")
    want = reference.ibert_gelu(q, scale)
    got, got_s = ops.ibert_gelu_qat(x_bad, scale)
    assert torch.isnan(got[1, 7]) and torch.equal(got_s, want[1])
    keep = torch.ones(3, cols, dtype=torch.bool)
    keep[1, 7] = False
    assert torch.equal(got[keep], (want[0].double() * want[1]).float()[keep])
    # per tensor after per channel, and the same values at another channel count
    assert torch.equal(ops.ibert_gelu(q, float(scale[0]))[0], reference.ibert_gelu(q, float(scale[0]))[0])
    s1 = torch.full((cols,), float(scale[0]), dtype=torch.float64)
    assert torch.equal(ops.ibert_gelu(q, s1)[0], reference.ibert_gelu(q, s1)[0])
    q2 = accumulator((2, 32), 1e-4, g)
    assert torch.equal(ops.ibert_gelu(q2, float(scale[0]))[0], reference.ibert_gelu(q2, float(scale[0]))[0])
    # a bad value after the good ones still raises, and the good values still work after it
    ops.ibert_gelu(q, scale)
    bad = scale.clone()
    bad[9] = 1e-9
    with pytest.raises(ValueError, match=r"scale 1e-09 is outside the supported range"):
        ops.ibert_gelu(q, bad)
    bad[9] = float("nan")
    with pytest.raises(ValueError, match="scale must be a finite positive scale"):
        ops.ibert_gelu(q, bad)
    assert torch.equal(ops.ibert_gelu(q, scale)[0], reference.ibert_gelu(q, scale)[0])
    # -0.0 and 0.0 differ in their bits; both raise
    for z in (0.0, -0.0):
        with pytest.raises(ValueError, match="scale must be a finite positive scale"):
            ops.ibert_gelu(q, torch.full((cols,), z, dtype=torch.float64))


def test_per_channel_scales_equal_but_for_c():
    """Channels whose b and one agree but c does not (scales a few ulps apart) are not uniform: the CPU plan
    (csrc/cpu/ibert_gelu_simd.cpp ibert_gelu_plan) must compare every constant, or channel 0's c is broadcast."""
    base = 1e-4
    scale = torch.tensor([base * (1 + 4e-9 * k) for k in range(16)], dtype=torch.float64)
    consts = [reference.ibert_gelu_consts(float(v)) for v in scale]
    assert len({k[0] for k in consts}) == 1 and len({k[2] for k in consts}) == 1 and len({k[1] for k in consts}) > 1
    q = accumulator((5, 16), base, torch.Generator().manual_seed(4))
    assert torch.equal(ops.ibert_gelu(q, scale)[0], reference.ibert_gelu(q, scale)[0])
