"""The QAT ops with and without an autograd node (csrc/autograd/ste.h records_grad): a call that needs no gradient
(grad mode off, or no tensor argument requiring grad) runs the kernel directly; one that does records the
straight-through node. Both give the same values, and the flags and gradients a torch.autograd.Function gives."""
import pytest
import torch

from mnq import ops


def _cases():
    g = torch.Generator().manual_seed(3)
    s16 = 6.0 / 32767
    h = (torch.clamp(torch.round(torch.randn(2, 5, 48, generator=g) / s16), -32768, 32767) * s16).float()
    att = torch.randn(2, 3, 7, 7, generator=g) * 2
    acc = torch.randn(2, 5, 64, generator=g)
    alpha = torch.randint(0, 4, (48,), generator=g)
    w, b = torch.rand(48, generator=g) + 0.5, torch.randn(48, generator=g) * 0.1
    return [
        ("quantize_qat", lambda x: ops.quantize_qat(x, 0.05, 8), h),
        ("ptf_quantize_qat", lambda x: ops.ptf_quantize_qat(x, alpha, 0.01, 8), h),
        ("requant_qat", lambda x: ops.requant_qat(x, s16, 0.05, 8), h),
        ("requant_qat residual", lambda x: ops.requant_qat(x, s16, 0.05, 8, x, s16), h),
        ("ibert_softmax_qat", lambda x: ops.ibert_softmax_qat(x, 8.0 / 127)[0], att),
        ("shiftmax_qat", lambda x: ops.shiftmax_qat(x, 8.0 / 127)[0], att),
        ("log_int_softmax_qat", lambda x: ops.log_int_softmax_qat(x, 8.0 / 127)[0], att),
        ("ibert_gelu_qat", lambda x: ops.ibert_gelu_qat(x, 2e-4)[0], acc),
        ("shift_gelu_qat", lambda x: ops.shift_gelu_qat(x, 4.0 / 127)[0], acc),
        ("ilayernorm_qat", lambda x: ops.ilayernorm_qat(x, s16, w, b)[0], h),
        ("ibert_layernorm_qat", lambda x: ops.ibert_layernorm_qat(x, s16, w, b)[0], h),
        ("ptf_layernorm_qat", lambda x: ops.ptf_layernorm_qat(x, alpha, 0.01, w, b, 4.0 / 127)[0], h),
    ]


@pytest.mark.parametrize("name,fn,x", _cases(), ids=[c[0] for c in _cases()])
def test_same_values_with_and_without_a_node(name, fn, x):
    plain = fn(x)
    assert not plain.requires_grad and plain.grad_fn is None
    with torch.no_grad():
        off = fn(x.clone().requires_grad_())
    assert not off.requires_grad
    xg = x.clone().requires_grad_()
    on = fn(xg)
    assert on.requires_grad and on.grad_fn is not None
    assert torch.equal(plain, off) and torch.equal(plain, on.detach())
    on.sum().backward()  # the straight-through gradient reaches x
    assert xg.grad is not None and xg.grad.shape == x.shape and torch.isfinite(xg.grad).all()


def test_layernorm_weights_that_require_grad_record_the_node():
    # The input needs no gradient but γ and β do (a QAT run's learned affine): the node is recorded and they get
    # their gradients.
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 5, 48, generator=g)
    w = (torch.rand(48, generator=g) + 0.5).requires_grad_()
    b = (torch.randn(48, generator=g) * 0.1).requires_grad_()
    y, _ = ops.ilayernorm_qat(x, 0.05, w, b)
    assert y.requires_grad
    y.sum().backward()
    assert w.grad is not None and b.grad is not None


def test_a_scale_that_requires_grad_still_records_the_node():
    # Scales are not learned (their gradient is None), but a scale that requires grad keeps the Function's
    # behaviour: the output requires grad, and backward gives the scale no gradient.
    x = torch.randn(3, 16)
    s = torch.tensor(0.05, dtype=torch.float64, requires_grad=True)
    y = torch.ops.mnq.quantize_qat(x, s, 8, -1)
    assert y.requires_grad
    y.sum().backward()
    assert s.grad is None
