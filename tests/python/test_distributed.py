"""Data-parallel building blocks (mnq.distributed, csrc/dist): two processes on Gloo over loopback, started the way
torchrun starts them (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT). Each rank sees half of a global batch; after one
training-mode forward every observer buffer of the C++ and the Python quantized models is identical on both ranks
and equal to one process on the whole batch (min/max bit for bit, PTF α error sums to float64 rounding), and the
bucketed gradient mean equals the whole batch's gradient to float32 rounding."""
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

BATCH = 8


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _batch():
    g = torch.Generator().manual_seed(5)
    return torch.randn(BATCH, 1, 28, 28, generator=g), torch.randint(0, 10, (BATCH,), generator=g)


def _cpp_model():
    import mnq

    torch.manual_seed(0)
    return mnq.models.create("vit_mnist_tiny", bits=8, plan={"all": "fqvit", "gelu": "ibert"})


def _py_model():
    import timm
    import mnq

    torch.manual_seed(0)
    vit = timm.models.vision_transformer.VisionTransformer(img_size=28, patch_size=4, in_chans=1, num_classes=10,
                                                          embed_dim=32, depth=2, num_heads=2)
    return mnq.quantize(vit, {"all": "fqvit", "softmax": "ivit"}, 8)


def _observers(model):
    return {k: v.clone() for k, v in model.state_dict().items()
            if k.endswith(("min_val", "max_val", "scale", "alpha", "alpha_err"))}


def _step(model, x, y, allreduce):
    model.train()  # a fresh model: no gradients yet
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    allreduce(grads)
    return _observers(model), [g.clone() for g in grads]


def _worker(rank, world, port, out):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    import timm  # noqa: F401  (before the rendezvous: on a loaded machine one rank's import can outlast a timeout)
    import mnq
    from mnq import _mnq

    assert mnq.distributed.init_from_env(timeout_s=300)
    x, y = _batch()
    half = BATCH // world
    xs, ys = x[rank * half:(rank + 1) * half], y[rank * half:(rank + 1) * half]
    result = {}
    for name, make in (("cpp", _cpp_model), ("py", _py_model)):
        result[name] = _step(make(), xs, ys, mnq.distributed.allreduce_mean)
    # The bucketed mean itself: several dtypes, buckets smaller than one tensor, an undefined entry skipped.
    ts = [torch.full((5,), float(rank + 1)), torch.full((3, 2), float(10 * rank), dtype=torch.float64),
          torch.arange(7, dtype=torch.float32) * (rank + 1)]
    mnq.distributed.allreduce_mean(ts, bucket_bytes=16)
    result["mean"] = ts
    # The trainer's check that the ranks hold the same state: passes on equal tensors, names a difference.
    state = [t.clone() for t in ts] + [torch.tensor([True, False]), torch.arange(3, dtype=torch.int64)]
    _mnq.dist_check_identical(state, "the test state")
    state[-1][rank] += 1  # one word differs on each rank
    try:
        _mnq.dist_check_identical(state, "the test state")
        result["differs"] = ""
    except RuntimeError as e:
        result["differs"] = str(e)
    torch.save(result, os.path.join(out, f"rank{rank}.pt"))
    mnq.distributed.shutdown()


def test_two_ranks_hold_the_observers_and_gradients_of_the_global_batch(tmp_path):
    import mnq

    world = 2
    mp.start_processes(_worker, args=(world, _free_port(), str(tmp_path)), nprocs=world, start_method="spawn")
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(world)]
    x, y = _batch()
    assert not mnq.distributed.active()
    for name, make in (("cpp", _cpp_model), ("py", _py_model)):
        want_obs, want_grads = _step(make(), x, y, lambda grads: None)  # one process, the whole batch
        obs0, grads0 = ranks[0][name]
        obs1, grads1 = ranks[1][name]
        assert want_obs.keys() == obs0.keys() and any(k.endswith("alpha_err") for k in obs0)
        for k in obs0:
            assert torch.equal(obs0[k], obs1[k]), f"{name}: {k} differs between ranks"
            if k.endswith("alpha_err"):
                torch.testing.assert_close(obs0[k], want_obs[k], rtol=1e-12, atol=0, msg=f"{name}: {k}")
            elif not k.endswith("alpha"):  # α = argmin of the error sums: equal unless two sums tie to rounding
                assert torch.equal(obs0[k], want_obs[k]), f"{name}: {k} differs from one process"
        assert len(grads0) == len(want_grads)
        for g0, g1, w in zip(grads0, grads1, want_grads):
            assert torch.equal(g0, g1)
            torch.testing.assert_close(g0, w, rtol=1e-4, atol=1e-6)
    m0, m1 = ranks[0]["mean"], ranks[1]["mean"]
    torch.testing.assert_close(m0[0], torch.full((5,), 1.5))
    torch.testing.assert_close(m0[1], torch.full((3, 2), 5.0, dtype=torch.float64))
    torch.testing.assert_close(m0[2], torch.arange(7, dtype=torch.float32) * 1.5)
    assert all(torch.equal(a, b) for a, b in zip(m0, m1))
    for r in range(world):
        assert "the test state differ between ranks (rank %d of 2" % r in ranks[r]["differs"]


def test_without_torchrun_nothing_changes(monkeypatch):
    import mnq

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert mnq.distributed.init_from_env() is False
    assert not mnq.distributed.active()
    t = torch.tensor([1.0, 2.0])
    mnq.distributed.allreduce_mean([t])
    lo, hi = torch.tensor(-1.0), torch.tensor(3.0)
    mnq.distributed.sync_min_max(lo, hi)
    assert torch.equal(t, torch.tensor([1.0, 2.0])) and lo.item() == -1.0 and hi.item() == 3.0


def _agent_worker(rank, world, port, out):
    # torchrun's workers under its agent: the agent serves the store; the workers only connect to it.
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port), TORCHELASTIC_USE_AGENT_STORE="True", TORCHELASTIC_RESTART_COUNT="1")
    import mnq

    assert mnq.distributed.init_from_env(timeout_s=60)
    t = torch.tensor([float(rank + 1)])
    mnq.distributed.sync_sum(t)
    torch.distributed.distributed_c10d._get_default_store().set(f"probe{rank}", "x")
    torch.save({"sum": t, "restarted": mnq.distributed.restarted()}, os.path.join(out, f"agent{rank}.pt"))
    mnq.distributed.shutdown()


def test_ranks_join_the_agent_store_of_their_attempt(tmp_path):
    import torch.distributed as dist

    world, port = 2, _free_port()
    agent = dist.TCPStore("127.0.0.1", port, world + 1, is_master=True, wait_for_workers=False)
    mp.start_processes(_agent_worker, args=(world, port, str(tmp_path)), nprocs=world, start_method="spawn")
    for r in range(world):
        got = torch.load(tmp_path / f"agent{r}.pt")
        assert got["sum"].item() == 3.0 and got["restarted"]
    # Both ranks were clients of the agent's store (torch's env:// rendezvous; this torch's agent starts a fresh
    # store per restart attempt instead of the older /worker/attempt_<n> key prefix): their keys are in it.
    keys = agent.list_keys()
    assert all(any(k.endswith(f"/probe{r}") for k in keys) for r in range(world)), keys
