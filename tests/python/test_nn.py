"""mnq.nn modules: quantizer state and its EMA, calling style, linear-layer integer identities, method choice,
and exact checkpoint reload."""
import io

import pytest
import torch

from mnq import nn as mnn
from mnq import ops


def test_quantact_ema_scale_and_eval_freeze():
    qa = mnn.QuantAct(8)
    x1 = torch.tensor([-1.0, 2.0])
    x2 = torch.tensor([-4.0, 1.0])
    y, s = qa(x1)
    assert float(qa.min_val) == -1.0 and float(qa.max_val) == 2.0  # first batch initialises
    assert float(s) == 2.0 / 127
    qa(x2)
    assert float(qa.min_val) == pytest.approx(0.95 * -1.0 + 0.05 * -4.0)
    assert float(qa.max_val) == pytest.approx(0.95 * 2.0 + 0.05 * 1.0)
    qa.eval()
    before = qa.state_dict()
    y, s = qa(torch.randn(10) * 100)
    assert all(torch.equal(before[k], v) for k, v in qa.state_dict().items())
    assert float(y.abs().max()) <= 128 * float(s) + 1e-6  # codes in [-128, 127]


def test_quantact_errors():
    qa = mnn.QuantAct(8).eval()
    with pytest.raises(RuntimeError, match="before any training/calibration batch"):
        qa(torch.randn(3))
    with pytest.raises(ValueError, match="bits must be an int in \\[2, 32\\]"):
        mnn.QuantAct(1)
    with pytest.raises(ValueError, match="identity and identity_scale must be given together"):
        mnn.QuantAct(8)(torch.randn(3), torch.tensor(0.1), torch.randn(3))


def test_quantact_requant_with_residual_matches_integer_op():
    qa = mnn.QuantAct(16)
    s_in, s_id = torch.tensor(0.01, dtype=torch.float64), torch.tensor(0.02, dtype=torch.float64)
    q = torch.randint(-100, 100, (4, 8), dtype=torch.int32)
    qi = torch.randint(-100, 100, (4, 8), dtype=torch.int32)
    y, s = qa(q.double().mul(0.01).float(), s_in, qi.double().mul(0.02).float(), s_id)
    want = ops.requant(q, s_in, float(s), 16, qi, s_id)
    assert torch.equal(y, (want.double() * float(s)).float())


def test_quantlinear_is_an_integer_gemm():
    torch.manual_seed(1)
    lin = mnn.QuantLinear(24, 10, bits=8)
    qa = mnn.QuantAct(8)
    xq, s_a = qa(torch.randn(5, 24))
    y, s_out = lin(xq, s_a)
    assert s_out.shape == (10,)
    # y / s_out is the integer result q_a @ q_wᵀ + q_b up to the float32 GEMM's rounding (SPEC §1: QAT runs a
    # float GEMM on dequantized values)
    w_fake, s_w = lin.quantized_weight()
    q_a = torch.round(xq.double() / s_a).long()
    q_w = torch.round(w_fake.double() / s_w[:, None]).long()
    q_b = torch.round(lin.bias.double() / (s_a * s_w)).long()
    want = q_a @ q_w.t() + q_b
    torch.testing.assert_close((y.double() / s_out), want.double(), atol=1e-3, rtol=1e-5)


def test_quantlinear_gradient_is_straight_through():
    lin = mnn.QuantLinear(6, 3)
    x = torch.randn(2, 6, requires_grad=True)
    y, _ = lin(x, torch.tensor(0.05, dtype=torch.float64))
    y.sum().backward()
    w_fake, _ = lin.quantized_weight()
    torch.testing.assert_close(x.grad, torch.ones(2, 3) @ w_fake.detach())
    torch.testing.assert_close(lin.weight.grad, torch.ones(2, 3).t() @ x.detach())


def test_quantconv_and_matmul_scales():
    conv = mnn.QuantConv2d(1, 4, kernel_size=4, stride=4, bits=6)
    y, s = conv(torch.randn(2, 1, 28, 28), torch.tensor(0.1, dtype=torch.float64))
    assert y.shape == (2, 4, 7, 7) and s.shape == (4,)
    mm = mnn.QuantMatMul()
    out, s_mm = mm(torch.ones(2, 3), torch.tensor(0.5), torch.ones(3, 4), torch.tensor(0.25))
    assert float(s_mm) == 0.125 and torch.equal(out, torch.full((2, 4), 3.0))


def test_ptfact_picks_alpha_per_channel_and_freezes():
    gains = torch.tensor([0.05, 0.1, 1.0, 8.0])
    p = mnn.PtfAct(4, bits=8)
    for _ in range(3):
        p(torch.randn(64, 4) * gains)
    assert p.alpha.tolist()[0] == 0 and p.alpha.tolist()[-1] == 3
    p.freeze_alpha()
    a = p.alpha.clone()
    p(torch.randn(64, 4) * gains.flip(0))
    assert torch.equal(p.alpha, a)


@pytest.mark.parametrize("method", ["ivit", "ibert", "fqvit"])
def test_softmax_module_methods(method):
    sm = mnn.IntSoftmax(method)
    q = torch.randint(-128, 128, (2, 3, 17), dtype=torch.int32)
    y, s_out = sm(q.float() * 0.05, torch.tensor(0.05, dtype=torch.float64))
    assert y.shape == q.shape and s_out.dim() == 0
    codes = y.double() / s_out
    assert torch.equal(codes, torch.round(codes))  # outputs are integers on scale_out
    assert torch.allclose(y.sum(-1), torch.ones(2, 3), atol=0.2)


def test_module_errors():
    with pytest.raises(ValueError, match="method must be one of ivit, ibert, fqvit"):
        mnn.IntSoftmax("exact")
    with pytest.raises(ValueError, match="method must be one of"):
        mnn.IntLayerNorm(8, method="foo")
    ln = mnn.IntLayerNorm(8, method="fqvit")
    with pytest.raises(ValueError, match="scale_next"):
        ln(torch.randn(2, 8))


def _block(method):
    """A small quantized residual MLP + attention-like step using every module kind."""

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.act_in = mnn.QuantAct(16)
            self.norm = mnn.IntLayerNorm(16, method=method)
            self.act_norm = mnn.QuantAct(8)
            self.fc = mnn.QuantLinear(16, 16)
            self.act_fc = mnn.QuantAct(8)
            self.sm = mnn.IntSoftmax("ivit")
            self.act_out = mnn.QuantAct(16)

        def forward(self, x):
            x, s = self.act_in(x)
            if method == "fqvit":
                h, sh = self.norm(x, s, self.act_norm.scale)
            else:
                h, sh = self.norm(x, s)
            h, sh = self.act_norm(h, sh)
            h, sh = self.fc(h, sh)
            h, sh = self.act_fc(h, sh)
            h, sh = self.sm(h, sh)
            return self.act_out(h, sh, x, s)

    return Block()


@pytest.mark.parametrize("method", ["ivit", "ibert", "fqvit"])
def test_checkpoint_reload_is_exact(method):
    torch.manual_seed(0)
    blk = _block(method)
    for _ in range(3):
        blk(torch.randn(4, 5, 16))
    blk.eval()
    x = torch.randn(4, 5, 16)
    y, s = blk(x)
    buf = io.BytesIO()
    torch.save(blk.state_dict(), buf)
    buf.seek(0)
    fresh = _block(method)
    fresh.load_state_dict(torch.load(buf))
    fresh.eval()
    y2, s2 = fresh(x)
    assert torch.equal(y, y2) and torch.equal(s, s2)


@pytest.mark.parametrize("method", ["ivit", "ibert", "fqvit"])
def test_gelu_module_methods(method):
    g = mnn.IntGELU(method)
    if method == "ibert":  # the fc1 accumulator with its per-output-channel scale
        scale = torch.rand(12, dtype=torch.float64) * 1e-4 + 1e-4
        x = torch.round(torch.randn(3, 5, 12) / scale.float()) * scale.float()
    else:
        scale = torch.tensor(4.0 / 127, dtype=torch.float64)
        x = torch.clamp(torch.round(torch.randn(3, 5, 12) / scale.float()), -128, 127) * scale.float()
    y, s_out = g(x, scale)
    if method == "fqvit":
        assert s_out is None and torch.equal(y, torch.nn.functional.gelu(x))
    else:
        codes = y.double() / s_out  # integers up to the float32 rounding of y
        torch.testing.assert_close(codes, torch.round(codes), atol=1e-6, rtol=1.2e-7)
        # both methods approximate x·Φ(x); ShiftGELU's sigmoid runs up to ~0.071 low (test_shift_gelu.py)
        assert bool(((y - torch.nn.functional.gelu(x)).abs() <= 0.08 * x.abs() + 0.02).all())
