"""GPU-minded by construction (STYLE rule 16): a QAT training step and an eval forward of the quantized ViT and
Swin read no value back to the host (on CUDA each read is a device synchronization), in Python (mnq.quantize) and
in C++ (mnq.models.create); and torch.compile traces the Python models in one graph.

Counted on the CPU with mnq.profiling.count_host_reads (torch.profiler: `aten::_local_scalar_dense` and
`aten::item` are what Tensor.item(), float(t), bool(t) and scalar copies to the host dispatch, on any device).
"""
import pytest
import torch

import mnq
from mnq.profiling import count_host_reads
from test_cpp_models import MIXED, _batches, _calibrate_cpp, _plan, _timm

PRESETS = ("vit_mnist_tiny", "swin_mnist_tiny")
PLANS = ("ivit", "ibert", "fqvit", "mixed")


def _python_model(preset, plan):
    model = mnq.quantize(_timm(preset), _plan(preset, plan), 8)
    return mnq.calibrate(model, _batches(2, 2))


def _cpp_model(preset, plan):
    model = mnq.models.create(preset, 8, _plan(preset, plan))
    model.load_state_dict(_timm(preset).state_dict(), strict=False)
    return _calibrate_cpp(model, _batches(2, 2))


def _train_step(model, opt, x, y):
    loss = torch.nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.detach()


@pytest.mark.parametrize("side", ("python", "cpp"))
@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("plan", PLANS)
def test_a_qat_step_and_an_eval_forward_read_nothing_back(side, preset, plan):
    model = (_python_model if side == "python" else _cpp_model)(preset, plan)
    x = _batches(1, 4, seed=3)[0]
    y = torch.randint(0, 10, (4,))
    # SGD: torch.optim.Adam(W)'s CPU path reads its step counter back (optimizer.py _get_value) unless capturable,
    # which needs CUDA; the C++ trainer's torch::optim::AdamW keeps the step on the host.
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    model.train()  # live observers: EMA ranges update; PtfAct α frozen by calibrate, as in QAT
    _train_step(model, opt, x, y)  # first step: the optimizer creates its state
    assert count_host_reads(lambda: _train_step(model, opt, x, y)) == 0
    model.eval()
    with torch.no_grad():
        assert count_host_reads(lambda: model(x)) == 0


def test_calibration_from_scratch_reads_nothing_back():
    model = mnq.quantize(_timm("vit_mnist_tiny"), MIXED["vit_mnist_tiny"], 8)
    batches = _batches(2, 2)
    assert count_host_reads(lambda: mnq.calibrate(model, batches)) == 0


def test_a_loaded_checkpoint_restores_the_calibrated_state(tmp_path):
    src = _python_model("vit_mnist_tiny", "mixed")
    dst = mnq.quantize(_timm("vit_mnist_tiny"), MIXED["vit_mnist_tiny"], 8).eval()
    with pytest.raises(RuntimeError, match="before any training/calibration batch"):
        dst(_batches(1, 1)[0])
    dst.load_state_dict(src.state_dict())
    x = _batches(1, 2, seed=5)[0]
    with torch.no_grad():
        assert torch.equal(dst(x), src(x))


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("plan", ("ivit", "mixed"))
def test_torch_compile_traces_one_graph(preset, plan):
    eager = _python_model(preset, plan)
    compiled_model = _python_model(preset, plan)
    compiled = torch.compile(compiled_model, fullgraph=True, backend="aot_eager")
    x = _batches(1, 2, seed=9)[0]
    with torch.no_grad():
        assert torch.equal(compiled(x), eager(x))  # eval
    eager.train()
    compiled_model.train()
    y_e = eager(x)
    y_c = compiled(x)
    assert torch.equal(y_c, y_e)  # training mode: observers update on both sides alike
    g = torch.randn_like(y_e)
    y_e.backward(g)
    y_c.backward(g)
    for (name, a), (_, b) in zip(eager.named_parameters(), compiled_model.named_parameters()):
        assert (a.grad is None) == (b.grad is None), name
        if a.grad is not None:
            torch.testing.assert_close(b.grad, a.grad, rtol=1e-5, atol=1e-6, msg=name)
    for (name, a), (_, b) in zip(eager.named_buffers(), compiled_model.named_buffers()):
        assert torch.equal(a, b), name
