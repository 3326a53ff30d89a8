"""Host reads: how often a piece of code reads a tensor value back to the host (STYLE rule 16).

``Tensor.item()``, ``float(t)``, ``int(t)``, ``bool(t)`` and ``if t:`` all dispatch ``aten::item``, which calls
``aten::_local_scalar_dense``; C++'s ``t.item<T>()`` does the same. On a CUDA tensor each one waits for the
device to finish its queue (a synchronisation), so a training step should do none. torch.profiler records these
ops on the CPU too, so a step can be checked on a machine without a GPU.

Not counted: copies of whole tensors to the host (``t.cpu()``, ``t.tolist()``, ``t.to("cpu")``), which are
syncs on CUDA but dispatch ``aten::to`` / ``aten::copy_``, no-ops that cannot be told apart on a CPU tensor.
"""
from __future__ import annotations

from typing import Any, Callable

from torch.profiler import ProfilerActivity, profile

HOST_READ_OPS = ("aten::item", "aten::_local_scalar_dense")


def count_host_reads(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """Run ``fn(*args, **kwargs)`` once under torch.profiler (CPU activity) and return the number of tensor
    values it read back to the host: each ``aten::_local_scalar_dense``, plus each ``aten::item`` that did not
    go through one (one ``.item()`` is one read, not two). Backward passes run inside ``fn`` are included (the
    autograd engine carries the profiler to its threads)."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn(*args, **kwargs)
    reads = 0
    for event in prof.events():
        if event.name == "aten::_local_scalar_dense":
            reads += 1
        elif event.name == "aten::item" and not any(c.name == "aten::_local_scalar_dense"
                                                      for c in event.cpu_children):
            reads += 1
    return reads
