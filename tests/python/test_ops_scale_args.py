"""mnq.ops' scale arguments (python/mnq/ops.py _scale_tensor): a Python float becomes a 0-d float64 tensor made once
per value and reused, a float64 tensor that needs no gradient is passed as it is, any other tensor is detached and
converted. Every form gives the same results, and the ops still name an invalid value in their errors."""
import pytest
import torch

from mnq import ops


def f64(v):
    return torch.tensor(v, dtype=torch.float64)


def test_float_scales_are_reused_and_equal_tensor_scales():
    g = torch.Generator().manual_seed(0)
    q = torch.randint(-30000, 30000, (3, 40), generator=g, dtype=torch.int32)
    s_in, s_out, s_id = 6.0 / 32767, 0.05, 3.0 / 32767
    want = ops.requant(q, f64(s_in), f64(s_out), 8, q, f64(s_id))
    for _ in range(2):  # the second call takes the tensors the first one made
        assert torch.equal(ops.requant(q, s_in, s_out, 8, q, s_id), want)
    assert ops._scale_tensor(s_out) is ops._scale_tensor(s_out)
    x = torch.randn(4, 40, generator=g)
    assert torch.equal(ops.quantize(x, s_out, 8), ops.quantize(x, f64(s_out), 8))
    assert torch.equal(ops.requant_qat(x, s_out, 0.1, 8, x, s_out), ops.requant_qat(x, f64(s_out), f64(0.1), 8, x,
                                                                                    f64(s_out)))


def test_tensor_scales_in_any_form():
    x = torch.randn(4, 8)
    want = ops.quantize_qat(x, 0.05, 8)
    s = f64(0.05)
    assert ops._scale_tensor(s) is s  # float64, no gradient: as it is
    grad_scale = torch.tensor(0.05, dtype=torch.float64, requires_grad=True)
    assert not ops._scale_tensor(grad_scale).requires_grad  # detached
    for scale in (s, grad_scale, torch.tensor([0.05], dtype=torch.float64)):
        assert torch.equal(ops.quantize_qat(x, scale, 8), want)
    s32 = torch.tensor(0.05, dtype=torch.float32)  # converted: the float64 value of fl32(0.05)
    assert torch.equal(ops.quantize_qat(x, s32, 8), ops.quantize_qat(x, s32.item(), 8))


@pytest.mark.parametrize("bad, shown", [(0.0, "0"), (-0.0, "-0"), (float("nan"), "nan"), (-0.1, "-0.1")])
def test_invalid_float_scales_are_named(bad, shown):
    x = torch.randn(4, 8)
    for _ in range(2):  # an invalid value is not kept, and a kept one (-0.1) is reported the same the second time
        with pytest.raises(ValueError, match=f"scale\\[0\\] = {shown} must be finite and positive"):
            ops.quantize(x, bad, 8)


def test_layernorm_qat_scales_in_any_form():
    """The LayerNorm QAT ops read a 0-d float64 scale that needs no gradient in place (csrc/ops/qat.cpp scale_arg)
    and convert any other form: the same values; the returned S_out has its own storage and shape []."""
    g = torch.Generator().manual_seed(3)
    cols = 24
    w, b = torch.rand(cols, generator=g) + 0.5, torch.randn(cols, generator=g) * 0.1
    alpha = torch.randint(0, 4, (cols,), generator=g)
    s = 6.0 / 2**21
    x = (torch.randint(-(2**20), 2**20, (5, cols), generator=g).double() * s).float()
    want = ops.ibert_layernorm_qat(x, s, w, b)[0]
    want_i = ops.ilayernorm_qat(x, s * 64, w, b)[0]  # 16-bit codes on the scale 64·s
    assert not bool(want_i.isnan().any())
    sb, sn = 0.01, 0.05
    xp = (torch.randint(-127, 128, (5, cols), generator=g).double() * sb * 2.0 ** alpha.double()).float()
    want_p = ops.ptf_layernorm_qat(xp, alpha, sb, w, b, sn)[0]
    for form in (lambda v: f64(v), lambda v: torch.tensor([v], dtype=torch.float64),
                 lambda v: torch.tensor(v, dtype=torch.float64, requires_grad=True)):
        assert torch.equal(ops.ibert_layernorm_qat(x, form(s), w, b)[0], want)
        assert torch.equal(ops.ilayernorm_qat(x, form(s * 64), w, b)[0], want_i)
        s_next = form(sn)
        out, s_out = ops.ptf_layernorm_qat(xp, alpha, form(sb), w, b, s_next)
        assert torch.equal(out, want_p)
        assert s_out.shape == () and s_out.dtype == torch.float64 and float(s_out) == sn
        with torch.no_grad():
            s_next.mul_(2.0)  # S_out is a copy, not the scale given
        assert float(s_out) == sn
