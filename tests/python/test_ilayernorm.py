"""I-LayerNorm (SPEC §4.1): bit-exact against the reference, CUDA == CPU, quality, QAT gradients, errors."""
import pytest
import torch

from helpers import requires_cuda, sqnr_db
from layernorm_inputs import (assert_layer_norm_grads, check_noncontiguous_and_empty, check_qat_forward_and_grads,
                              layer_norm, ln_params, opcheck_layer_norm, quant_act, residual_stream)
from mnq import ops, reference

LO, HI = -(2**15), 2**15 - 1  # declared input range: 16-bit codes
DTYPES = [torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64]


@pytest.mark.parametrize("scale", [0.01, 3e-5, 2.0])
@pytest.mark.parametrize("shape", [(4, 384), (3, 197), (2, 769), (5, 1), (2, 3, 17)])
def test_matches_reference(shape, scale):
    q = torch.randint(LO, HI + 1, shape, dtype=torch.int32)
    w, b = ln_params(shape[-1])
    out, s_out = ops.ilayernorm(q, scale, w, b)
    want, want_s = reference.ilayernorm(q, scale, w, b)
    assert out.dtype == torch.int64 and s_out.dtype == torch.float64
    assert torch.equal(out, want) and torch.equal(s_out, want_s)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dtypes_and_extremes(dtype):
    info = torch.iinfo(dtype)
    lo, hi = max(info.min, LO), min(info.max, HI)
    cols = 200
    q = torch.randint(lo, hi + 1, (6, cols), dtype=torch.int64)
    q[0] = torch.where(torch.arange(cols) % 2 == 0, lo, hi)  # the largest variance
    q[1] = lo  # constant rows: y = 0, out = bias_int
    q[2] = hi
    q[3, 0], q[3, 1:] = hi, lo  # one spike
    q = q.to(dtype)
    w, b = ln_params(cols)
    out, _ = ops.ilayernorm(q, 0.01, w, b)
    assert torch.equal(out, reference.ilayernorm(q, 0.01, w, b)[0])
    assert torch.equal(out[1], reference._ln_bias_and_scale(w, b, cols)[0])
    assert int(out.sub(out[1]).abs().max()) <= 2**30  # |yn| ≤ 2^30 (kernels/ilayernorm.h)


def test_weight_dtypes_and_extreme_parameters():
    q = torch.randint(LO, HI + 1, (4, 96), dtype=torch.int16)
    w, b = ln_params(96)
    w64, b64 = w.double(), b.double()
    w64[0], b64[0] = 1e-9, 3.0  # bias_int ≈ 3e9/Sy ≈ 2^51: int64, not int32
    w64[1], b64[1] = -250.0, 0.0
    for weight, bias in [(w64, b64), (w.half(), b.half()), (torch.randn(192)[::2], b)]:
        out, s_out = ops.ilayernorm(q, 0.01, weight, bias)
        want, want_s = reference.ilayernorm(q, 0.01, weight, bias)
        assert torch.equal(out, want) and torch.equal(s_out, want_s)
    assert int(ops.ilayernorm(q, 0.01, w64, b64)[0][:, 0].min()) > 2**50


def test_noncontiguous_and_empty():
    check_noncontiguous_and_empty("ilayernorm", reference.ilayernorm, LO, HI, torch.int16)


@pytest.mark.parametrize("cols,seed", [(384, 0), (768, 1), (192, 2), (197, 3)])
def test_quality_on_residual_stream(cols, seed):
    # Threshold 60 dB against F.layer_norm of the dequantized 16-bit input. The method's own errors are the mean
    # rounded to a code (≤ 0.5 of a row σ of thousands of codes), the integer std (relative 1/std) and f's floor
    # (relative 1/f, f ≈ 2^31/√(Σy²) ≈ 2^13 here), all near 2^−12…2^−14. Measured (seeds as here): 66.1, 67.2,
    # 72.6, 65.8 dB (63–70 dB against the unquantized input). A lost bit anywhere (e.g. yn = y·f instead of
    # y·f/2, a wrong mean) costs far more than 6 dB.
    x = residual_stream((4, 197, cols), seed=seed)
    w, b = ln_params(cols, seed)
    q, s = quant_act(x, 16)
    out, s_out = ops.ilayernorm(q, s, w, b)
    assert sqnr_db(layer_norm(q.double() * s, w, b), out.double() * s_out) >= 60.0


@pytest.mark.parametrize("eps", [1e-6, 1e-3])
def test_qat_forward_is_integer_op_and_gradients_are_layer_norm(eps):
    check_qat_forward_and_grads("ilayernorm", 16, eps)


def test_qat_gradient_with_float64_parameters():
    xf = (torch.randint(-3000, 3000, (4, 64)).float() * 0.01).requires_grad_(True)
    w, b = (t.double().requires_grad_(True) for t in ln_params(64))
    assert_layer_norm_grads(ops.ilayernorm_qat(xf, 0.01, w, b)[0], xf, w, b, 1e-6)


def test_opcheck():
    opcheck_layer_norm("ilayernorm", LO, HI, torch.int16)


def test_errors():
    q = torch.zeros(2, 3, dtype=torch.int16)
    w, b = ln_params(3)
    with pytest.raises(TypeError, match="q must be an integer tensor"):
        ops.ilayernorm(q.float(), 0.1, w, b)
    with pytest.raises(TypeError, match="x must be a float32 tensor"):
        ops.ilayernorm_qat(q, 0.1, w, b)[0]
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="scale must be a finite positive scale"):
            ops.ilayernorm(q, bad, w, b)
    with pytest.raises(ValueError, match="scale must have a finite reciprocal"):
        ops.ilayernorm(q, 1e-320, w, b)
    with pytest.raises(ValueError, match="at least 1 dimension"):
        ops.ilayernorm(torch.tensor(3, dtype=torch.int16), 0.1, w[:1], b[:1])
    with pytest.raises(ValueError, match="at most 65536"):
        ops.ilayernorm(torch.zeros(1, 65537, dtype=torch.int16), 0.1, torch.ones(65537), torch.zeros(65537))
    with pytest.raises(ValueError, match=r"weight must have shape \[3\]"):
        ops.ilayernorm(q, 0.1, torch.ones(4), b)
    with pytest.raises(ValueError, match=r"bias must have shape \[3\]"):
        ops.ilayernorm(q, 0.1, w, torch.zeros(1, 3))
    with pytest.raises(TypeError, match="weight must be a floating-point tensor"):
        ops.ilayernorm(q, 0.1, torch.ones(3, dtype=torch.int32), b)
    for bad in (0.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="weight must be finite and nonzero"):
            ops.ilayernorm(q, 0.1, torch.tensor([1.0, bad, 1.0]), b)
    for bad in (1e30, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="bias must give"):
            ops.ilayernorm(q, 0.1, w, torch.tensor([0.0, bad, 0.0]))
    with pytest.raises(ValueError, match="weight is on meta but the input is on cpu"):
        ops.ilayernorm(q, 0.1, w.to("meta"), b)
    with pytest.raises(ValueError, match=r"outside the declared range \[-32768, 32767\]"):
        ops.ilayernorm(torch.tensor([[40000, 0, 1]], dtype=torch.int32), 0.1, w, b)
    with pytest.raises(ValueError, match=r"outside the declared range \[-32768, 32767\]"):
        ops.ilayernorm(torch.tensor([[-(2**40), 0, 1]]), 0.1, w, b)
    with pytest.raises(ValueError, match="eps must be finite and non-negative"):
        ops.ilayernorm_qat(torch.zeros(2, 3), 0.1, w, b, -1e-5)[0]


@requires_cuda
@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_matches_cpu(dtype):
    info = torch.iinfo(dtype)
    for shape in [(2, 197, 384), (3, 769), (4, 1), (1, 65536)]:
        q = torch.randint(max(info.min, LO), min(info.max, HI) + 1, shape, dtype=torch.int64).to(dtype)
        w, b = ln_params(shape[-1])
        cpu, s_cpu = ops.ilayernorm(q, 0.01, w, b)
        gpu, s_gpu = ops.ilayernorm(q.cuda(), 0.01, w.cuda(), b.cuda())
        assert torch.equal(gpu.cpu(), cpu) and torch.equal(s_gpu.cpu(), s_cpu)
    x = (q.float() * 0.01).requires_grad_(True)
    y = ops.ilayernorm_qat(x, 0.01, w, b)[0]
    xg = x.detach().cuda().requires_grad_(True)
    yg = ops.ilayernorm_qat(xg, 0.01, w.cuda(), b.cuda())[0]
    assert torch.equal(yg.detach().cpu(), y.detach())
    g = torch.randn_like(y)
    torch.testing.assert_close(torch.autograd.grad(yg, xg, g.cuda())[0].cpu(), torch.autograd.grad(y, x, g)[0])
    with pytest.raises(ValueError, match="outside the declared range"):
        ops.ilayernorm(torch.tensor([[40000, 0]], dtype=torch.int32, device="cuda"), 0.1, w[:2].cuda(), b[:2].cuda())


@pytest.mark.parametrize("name", ["weight", "bias"])
@pytest.mark.parametrize("op, before", [
    (ops.ilayernorm_qat, lambda x: (x, 0.1)),
    (ops.ibert_layernorm_qat, lambda x: (x, 0.1)),
    (ops.ptf_layernorm_qat, lambda x: (x, torch.zeros(8, dtype=torch.int64), 0.1)),
])
def test_qat_layernorms_name_a_missing_affine_argument(op, before, name):
    # weight=None used to fail inside autograd with "tensor does not have a device", naming neither op nor argument
    x = torch.randn(2, 8, requires_grad=True)
    affine = {"weight": torch.ones(8), "bias": torch.zeros(8)}
    affine[name] = None
    tail = (0.1,) if op is ops.ptf_layernorm_qat else ()
    with pytest.raises(TypeError, match=f"{op.__name__}: {name} must be a tensor, got None"):
        op(*before(x), affine["weight"], affine["bias"], *tail)
