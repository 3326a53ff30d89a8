"""mnq.frozen_weights(): the C++ models keep their fake-quantized weights between no-grad forwards while it is open
(csrc/nn/layers.h FrozenWeightsScope) — the same outputs, fewer weight quantizations, changes to a weight still
seen."""
import pytest
import torch
from torch.profiler import ProfilerActivity, profile

import mnq


def _model(plan="ivit", bits=8, seed=0):
    torch.manual_seed(seed)
    fp = mnq.models.create("vit_mnist_tiny").eval()
    q = mnq.models.create("vit_mnist_tiny", bits=bits, plan=plan)
    q.load_state_dict(fp.state_dict(), strict=False)
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(6, 1, 28, 28, generator=g)
    q.train()
    with torch.no_grad():
        q(x)
    q.eval()
    return q, x


def _weight_quantizations(fn):
    """How many mnq::quantize_qat calls on a weight-shaped tensor (2-D or 4-D, axis 0) one call of fn makes."""
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as p:
        fn()
    n = 0
    for e in p.events():
        if e.name == "mnq::quantize_qat" and e.input_shapes and len(e.input_shapes[0]) in (2, 4) and \
                len(e.input_shapes[1]) == 1 and e.input_shapes[1][0] == e.input_shapes[0][0]:
            n += 1
    return n


@pytest.mark.parametrize("plan", ["ivit", "ibert", "fqvit"])
def test_the_same_outputs_as_without_the_scope(plan):
    q, x = _model(plan)
    with torch.no_grad():
        ref = q(x)
        with mnq.frozen_weights():
            first, second = q(x), q(x)
            part = q(x[:2])
    assert torch.equal(first, ref) and torch.equal(second, ref)
    assert torch.equal(part, ref[:2])


def test_weights_are_quantized_once_per_scope():
    q, x = _model()
    with torch.no_grad():
        plain = _weight_quantizations(lambda: q(x))
        assert plain > 0  # every QuantLinear / QuantConv2d quantizes its weight at every forward
        assert _weight_quantizations(lambda: q(x)) == plain
        with mnq.frozen_weights():
            assert _weight_quantizations(lambda: q(x)) == plain  # the first forward of the scope computes them
            assert _weight_quantizations(lambda: q(x)) == 0      # later ones reuse them
        assert _weight_quantizations(lambda: q(x)) == plain      # the scope's end dropped the kept copies
        with mnq.frozen_weights():
            assert _weight_quantizations(lambda: q(x)) == plain  # a new scope starts afresh


def test_an_in_place_weight_change_inside_the_scope_is_seen():
    q, x = _model()
    name, w = next((n, p) for n, p in q.named_parameters() if n.endswith("fc1.weight"))
    with torch.no_grad():
        with mnq.frozen_weights():
            before = q(x)
            w.mul_(0.5)
            after = q(x)
        fresh = q(x)
    assert torch.equal(after, fresh), name
    assert not torch.equal(after, before)


def test_forwards_with_autograd_are_unaffected():
    q, x = _model()  # eval mode (train mode would move the ranges between the calls), autograd on
    xs = x.clone().requires_grad_()
    y_ref = q(xs)
    (g_ref,) = torch.autograd.grad(y_ref.sum(), xs)
    with mnq.frozen_weights():
        assert _weight_quantizations(lambda: q(xs)) > 0  # grad mode on: quantized at every forward
        y = q(xs)
        (g,) = torch.autograd.grad(y.sum(), xs)
    assert torch.equal(y, y_ref) and torch.equal(g, g_ref)


def test_a_scope_object_enters_once_and_scopes_nest():
    q, x = _model()
    scope = mnq.frozen_weights()
    with scope:
        with pytest.raises(RuntimeError, match="mnq.frozen_weights: this scope is already entered"):
            scope.__enter__()
        with torch.no_grad(), mnq.frozen_weights():  # a nested scope keeps the outer one's kept weights
            q(x)
        with torch.no_grad():
            assert _weight_quantizations(lambda: q(x)) == 0
    with scope, torch.no_grad():  # the same object again, after its exit
        assert torch.equal(q(x), q(x))
