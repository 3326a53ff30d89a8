"""Data-parallel jobs: join the process group torchrun set up, and keep every rank's quantizers identical.

    torchrun --standalone --nproc-per-node=2 --no-python mnq-train --config job.yaml   # the trainer
    torchrun --standalone --nproc-per-node=2 my_qat.py      # my_qat.py calls mnq.distributed.init_from_env()

The group is torch.distributed's (Gloo on CPU, NCCL on CUDA), created from torchrun's environment (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``; torch's rendezvous also handles
``TORCHELASTIC_USE_AGENT_STORE``) and handed to mnq's C++ side, so the C++ layers (``mnq.models.create``) and the
Python layers (``mnq.quantize``) all-reduce their observers' batch statistics before each update: the batch min/max
of every range observer (one MAX all-reduce of [−min, max]) and the PTF α error sums (SUM). Every rank then holds
the same quantizer state after every step, equal to what one process would compute on the global batch (min/max
exactly; the α error sums up to float64 summation order). Without a group (one process) nothing changes.
Gradients: average them with ``allreduce_mean(grads)`` (flat buckets, one all-reduce each) or torch's DDP.
"""
from __future__ import annotations

import os
from datetime import timedelta
from typing import Iterable, Optional

import torch
import torch.distributed as dist

from . import _mnq


def active() -> bool:
    """Whether a process group with more than one rank is initialized."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def init_from_env(device: Optional[str] = None, timeout_s: float = 600.0, shm: Optional[bool] = None) -> bool:
    """Join torchrun's process group when this process was started by torchrun (``WORLD_SIZE`` is set), and hand
    it to mnq's C++ side. Returns whether the job runs on more than one process; without torchrun's variables it
    does nothing and returns False.

    The group is torch's, from its ``env://`` rendezvous (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
    ``MASTER_PORT``; with ``TORCHELASTIC_USE_AGENT_STORE=True`` every rank connects to torchrun's agent store as a
    client, which this torch's agent creates afresh for each restart attempt). Backends: Gloo on a machine without
    CUDA or for ``device="cpu"``; otherwise ``cpu:gloo,cuda:nccl`` (NCCL for CUDA tensors, Gloo for the few host
    values the ranks agree on; NCCL starts only at the first CUDA collective), with this rank's GPU
    (``LOCAL_RANK``) made the current device before the first collective. A rank that stops answering makes the
    others' collectives fail after ``timeout_s`` (the trainer sets each collective's timeout from its config's
    ``dist.timeout_s``).

    When every rank runs on this host, mnq's CPU collectives (observers, losses, flags, gradient buckets up to
    64 MiB) go through one shared-memory segment instead of Gloo over loopback (csrc/dist/shm.h: tens of µs instead
    of hundreds each), with the same results and the same fault handling; ``shm=False`` (or the environment variable
    ``MNQ_DIST_SHM=0``) keeps them on Gloo. Collectives through ``torch.distributed`` itself are unaffected."""
    if "WORLD_SIZE" not in os.environ:
        return False
    if not dist.is_initialized():
        cuda = torch.cuda.is_available() and (device is None or torch.device(device).type == "cuda")
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("cpu:gloo,cuda:nccl" if cuda else "gloo", timeout=timedelta(seconds=timeout_s))
    _mnq.dist_set_group(dist.group.WORLD)
    # The store tells a failed collective which ranks still answer (csrc/dist/dist.h).
    _mnq.dist_set_store(dist.distributed_c10d._get_default_store())
    _mnq.dist_set_timeout(timeout_s)  # the group's own, until a job sets dist.timeout_s
    if shm is None:
        shm = os.environ.get("MNQ_DIST_SHM", "1") != "0"
    _mnq.dist_enable_shm(bool(shm))  # collective: every rank agrees on the path
    return dist.get_world_size() > 1


def path() -> str:
    """Which path mnq's collectives take, in words (shared memory or the group's backend, and why)."""
    return _mnq.dist_path()


def stats() -> dict:
    """This process's mnq collectives since its group was set: ``collectives`` (of them ``shm_collectives``),
    ``bytes``, ``wall_s`` spent in them and ``wait_s`` of that waiting for the last rank (shared-memory path)."""
    return _mnq.dist_stats()


def rank() -> int:
    """This process's rank in the group (0 without one)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def restarted() -> bool:
    """Whether torchrun's elastic agent restarted this job (``--max-restarts``): it then resumes by itself."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0) > 0


def shutdown() -> None:
    """Leave the group (mnq's collectives become no-ops again)."""
    _mnq.dist_clear_group()
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def allreduce_mean(tensors: Iterable[torch.Tensor], bucket_bytes: int = 25 << 20) -> None:
    """In place: the mean over ranks of each tensor (e.g. ``[p.grad for p in model.parameters()]``), packed into
    flat buckets of at most ``bucket_bytes`` per dtype and device, one all-reduce each (the C++ trainer's own)."""
    _mnq.dist_allreduce_mean([t for t in tensors if t is not None], bucket_bytes)


def sync_min_max(lo: torch.Tensor, hi: torch.Tensor) -> None:
    """In place: lo, hi become the minimum and maximum over ranks (one all-reduce); no-op on one process. Through
    torch.distributed (traceable by torch.compile, which cannot trace mnq's pybind11 functions), so not through
    mnq's shared-memory path: that serves the C++ layers and trainer."""
    if active():
        both = torch.stack([-lo, hi])
        dist.all_reduce(both, op=dist.ReduceOp.MAX)
        lo.copy_(-both[0])
        hi.copy_(both[1])


def sync_sum(t: torch.Tensor) -> None:
    """In place: the sum over ranks; no-op on one process (through torch.distributed, as sync_min_max)."""
    if active():
        dist.all_reduce(t)
