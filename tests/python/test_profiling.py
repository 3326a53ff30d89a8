"""mnq.profiling.count_host_reads: every way Python reads a tensor value back counts once, backward included;
tensor-only code counts 0."""
import torch

from mnq.profiling import count_host_reads


def test_three_item_calls_count_three():
    x = torch.rand(5)

    def three(t):
        return t[0].item() + t[1].item() + t.sum().item()

    assert count_host_reads(three, x) == 3


def test_python_scalar_conversions_count_once_each():
    x = torch.rand(4) + 0.5

    def conversions(t, *, threshold):
        n = float(t.max()) + int(t.argmax()) + bool(t[0] > threshold)
        if t.sum() > 0:  # a tensor in an `if`: one more
            n += 1
        return n

    assert count_host_reads(conversions, x, threshold=0.1) == 4


def test_tensor_only_code_counts_zero():
    w = torch.randn(8, 8, requires_grad=True)

    def step(x):
        y = torch.relu(x @ w).softmax(-1)
        (y * y).sum().backward()
        return y

    assert count_host_reads(step, torch.randn(4, 8)) == 0
    assert w.grad is not None


class _ReadsInBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        return g * (1.0 if g.sum().item() != 0 else 0.0)


def test_backward_is_counted():
    x = torch.rand(3, requires_grad=True)
    assert count_host_reads(lambda: _ReadsInBackward.apply(x).sum().backward()) == 1
