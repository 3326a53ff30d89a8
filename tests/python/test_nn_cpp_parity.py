"""The C++ modules (csrc/nn) compute exactly what mnq.nn computes. A chain of mnq.nn modules shaped like a ViT
block (LayerNorm → QuantLinear → GELU → QuantLinear → fused residual, and scores → softmax) runs two training
batches and one eval batch here; its initial parameters, inputs, outputs and final buffers go to a file, and the
hidden ``[python]`` Catch2 test (tests/cpp/models/test_nn_parity.cpp) runs the C++ twins on it and requires equality
bit for bit (outputs, scales, min/max, PtfAct α)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import torch

import mnq.nn as mnn

st = pytest.importorskip("safetensors.torch")

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("MNQ_BUILD_DIR", ROOT / "build" / "cmake")) / "tests" / "cpp" / "mnq_model_tests"
pytestmark = pytest.mark.skipif(not BIN.exists(), reason=f"{BIN} not built (MNQ_BUILD_TESTS=OFF?)")
PARITY_TEST = "the C++ modules equal mnq.nn on a block-shaped chain"
C, H = 12, 20


def _chain(ln_method: str, gelu_method: str, softmax_method: str) -> torch.nn.ModuleDict:
    res_bits = 22 if ln_method == "ibert" else 16
    m = torch.nn.ModuleDict(dict(
        act_in=mnn.QuantAct(res_bits), ln=mnn.IntLayerNorm(C, ln_method), act_ln=mnn.QuantAct(8),
        fc1=mnn.QuantLinear(C, H), act_fc1=mnn.QuantAct(8), gelu=mnn.IntGELU(gelu_method),
        act_gelu=mnn.QuantAct(8), fc2=mnn.QuantLinear(H, C), act_fc2=mnn.QuantAct(16),
        act_res=mnn.QuantAct(res_bits), act_sm=mnn.QuantAct(8), sm=mnn.IntSoftmax(softmax_method)))
    with torch.no_grad():  # γ, β away from 1, 0 so per-channel scales differ
        m.ln.weight.copy_(torch.rand(C) + 0.5)
        m.ln.bias.copy_(torch.randn(C) * 0.1)
    return m


def _forward(m: torch.nn.ModuleDict, x: torch.Tensor, gelu_method: str):
    x16, s16 = m.act_in(x)
    y, s = m.ln(x16, s16, m.act_ln.scale)
    y, s = m.act_ln(y, s)
    h, sh = m.fc1(y, s)
    if gelu_method != "ibert":
        h, sh = m.act_fc1(h, sh)
    h, sh = m.gelu(h, sh)
    h, sh = m.act_gelu(h, sh)
    h, sh = m.fc2(h, sh)
    h, sh = m.act_fc2(h, sh)
    r, sr = m.act_res(h, sh, x16, s16)
    a, sa = m.act_sm(y @ y.transpose(-1, -2), s * s)
    p, sp = m.sm(a, sa)
    return r, sr, p


@pytest.mark.parametrize("methods", [("ivit", "ivit", "ivit"), ("ibert", "ibert", "ibert"),
                                     ("fqvit", "fqvit", "fqvit"), ("fqvit", "ibert", "ivit")])
def test_cpp_modules_equal_python(methods, tmp_path):
    ln_m, gelu_m, sm_m = methods
    torch.manual_seed(0)
    m = _chain(*methods)
    data = {f"init.{k}": v.detach().clone() for k, v in m.state_dict().items()}
    for step in range(3):  # two training (calibration) batches, then eval
        m.train(step < 2)
        x = torch.randn(2, 7, C) * (1 + step)
        r, sr, p = _forward(m, x, gelu_m)
        data.update({f"x{step}": x, f"r{step}": r.detach(), f"sr{step}": sr, f"p{step}": p.detach()})
    data.update({f"final.{k}": v.detach().clone() for k, v in m.state_dict().items()})
    path = tmp_path / "parity.safetensors"
    st.save_file({k: v.contiguous() for k, v in data.items()}, str(path))
    env = {**os.environ, "MNQ_NN_PARITY": str(path), "MNQ_NN_METHODS": ",".join(methods)}
    r = subprocess.run([str(BIN), PARITY_TEST], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 test case" in r.stdout, r.stdout
