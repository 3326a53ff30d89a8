"""The intra-host shared-memory path of mnq's collectives (csrc/dist/shm.h) against Gloo's: two processes on this
host, started as torchrun starts them. The same collectives and the same training-mode forward/backward of a C++
quantized model give bit-identical results on both paths and on both ranks (min/max, sums of every dtype the path
takes, tensors larger than one 1 MiB chunk, the observers' buffers, the averaged gradients); the shared-memory path
is the one taken (counted in mnq.distributed.stats) and leaves nothing in /dev/shm. Faults: a rank that hangs makes the other's collective fail
after the timeout naming it, a killed rank is named at once, and every later collective on the group fails too."""
import os
import signal
import socket
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _join(rank, world, port, shm, timeout_s=300):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    import mnq

    assert mnq.distributed.init_from_env(timeout_s=300, shm=shm)  # the rendezvous: generous on a loaded machine
    mnq._mnq.dist_set_timeout(timeout_s)  # the collectives' (a job's dist.timeout_s)
    return mnq


def _collectives(rank, world, port, out, shm):
    mnq = _join(rank, world, port, shm)
    from mnq import _mnq

    g = torch.Generator().manual_seed(100 + rank)  # each rank its own values
    got = {"path": mnq.distributed.path(), "pid": os.getpid()}
    for dtype in (torch.float32, torch.float64, torch.int32, torch.int64, torch.uint8):
        if dtype.is_floating_point:
            x = torch.randn(37, generator=g, dtype=dtype) * 1e3
        else:
            x = torch.randint(0, 100, (37,), generator=g).to(dtype)
        s, m = x.clone(), x.clone()
        _mnq.dist_allreduce_sum(s)
        _mnq.dist_allreduce_max(m)
        got[str(dtype)] = [s, m]
        if dtype.is_floating_point:
            lo, hi = x.clone(), x.clone()
            _mnq.dist_allreduce_min_max(lo, hi)
            got[str(dtype)] += [lo, hi]
    big = torch.randn(300_001, generator=g, dtype=torch.float64)  # 2.4 MB: three chunks of the 1 MiB slots
    _mnq.dist_allreduce_sum(big)
    got["big"] = big
    grads = [torch.randn(1000, generator=g), torch.randn(3, 3, generator=g, dtype=torch.float64)]
    mnq.distributed.allreduce_mean(grads, bucket_bytes=2048)
    got["mean"] = grads
    # A quantized model's training step on this rank's half of a batch: observers all-reduce in the forward.
    torch.manual_seed(0)
    model = mnq.models.create("vit_mnist_tiny", bits=8, plan={"all": "fqvit", "gelu": "ibert"})
    x = torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(5))[rank * 4:(rank + 1) * 4]
    model.train()
    model(x).square().mean().backward()
    params = [p.grad for p in model.parameters() if p.grad is not None]
    mnq.distributed.allreduce_mean(params)
    got["buffers"] = {k: v.clone() for k, v in model.state_dict().items()}
    got["grads"] = [p.clone() for p in params]
    _mnq.dist_barrier()
    got["stats"] = mnq.distributed.stats()
    torch.save(got, os.path.join(out, f"{'shm' if shm else 'gloo'}{rank}.pt"))
    mnq.distributed.shutdown()


def _equal(a, b):
    if isinstance(a, torch.Tensor):
        return a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return a == b


def test_shared_memory_and_gloo_give_bit_identical_results(tmp_path):
    world = 2
    for shm in (True, False):
        mp.start_processes(_collectives, args=(world, _free_port(), str(tmp_path), shm), nprocs=world,
                           start_method="spawn")
    shm = [torch.load(tmp_path / f"shm{r}.pt") for r in range(world)]
    gloo = [torch.load(tmp_path / f"gloo{r}.pt") for r in range(world)]
    assert shm[0]["path"].startswith("intra-host shared memory"), shm[0]["path"]
    assert gloo[0]["path"].startswith("gloo (no shared memory: disabled"), gloo[0]["path"]
    assert shm[0]["stats"]["shm_collectives"] >= 30 and gloo[0]["stats"]["shm_collectives"] == 0
    assert shm[0]["stats"]["collectives"] == shm[0]["stats"]["shm_collectives"]  # nothing fell back to Gloo
    # Rank 0 unlinked the segment's name as soon as both ranks had mapped it: nothing is left in /dev/shm.
    assert not list(Path("/dev/shm").glob(f"mnq_dp_{shm[0]['pid']}_*"))
    for key in shm[0]:
        if key in ("path", "stats", "pid"):
            continue
        assert _equal(shm[0][key], shm[1][key]), f"{key} differs between the ranks"
        assert _equal(shm[0][key], gloo[0][key]), f"{key} differs between shared memory and Gloo"
    # And the values are the reductions: the sum of the two ranks' inputs.
    g0, g1 = torch.Generator().manual_seed(100), torch.Generator().manual_seed(101)
    want = torch.randn(37, generator=g0) * 1e3 + torch.randn(37, generator=g1) * 1e3
    assert torch.equal(shm[0][str(torch.float32)][0], want)


def _hang(rank, world, port, out):
    mnq = _join(rank, world, port, True, timeout_s=2)
    from mnq import _mnq

    t = torch.ones(3)
    _mnq.dist_allreduce_sum(t)  # both join the first
    msg, t0 = "", time.monotonic()
    if rank == 1:
        while not os.path.exists(os.path.join(out, "done0")):  # hung: joins only after rank 0 gave up
            time.sleep(0.05)
    try:
        _mnq.dist_allreduce_sum(t)
    except RuntimeError as e:
        msg = str(e)
    with open(os.path.join(out, f"hang{rank}.txt"), "w") as f:
        f.write(f"{time.monotonic() - t0:.2f}\n{msg}")
    open(os.path.join(out, f"done{rank}"), "w").close()
    os._exit(0)  # the group is broken: leaving it cleanly is not the point here


def test_a_hung_rank_fails_the_collective_after_the_timeout_naming_it(tmp_path):
    mp.start_processes(_hang, args=(2, _free_port(), str(tmp_path)), nprocs=2, start_method="spawn")
    wait0, msg0 = (tmp_path / "hang0.txt").read_text().split("\n", 1)
    assert 1.9 < float(wait0) < 15
    assert "data-parallel all-reduce failed on rank 0 of 2" in msg0
    assert "rank 1 did not answer: dead or hung" in msg0 and "dist.timeout_s = 2" in msg0
    # The late rank finds the group failed at once, with rank 0's reason.
    wait1, msg1 = (tmp_path / "hang1.txt").read_text().split("\n", 1)
    assert "failed on rank 1 of 2" in msg1 and "rank 0 failed first" in msg1 and "rank 1 did not answer" in msg1


def _killed(rank, world, port, out):
    mnq = _join(rank, world, port, True, timeout_s=600)
    from mnq import _mnq

    t = torch.ones(1000)
    msg = ""
    try:
        for i in range(100_000):
            if rank == 1 and i == 500:
                os.kill(os.getpid(), signal.SIGKILL)
            _mnq.dist_allreduce_sum(t)
            t.fill_(1)
    except RuntimeError as e:
        msg = f"{time.monotonic()}\n{e}"
    with open(os.path.join(out, f"killed{rank}.txt"), "w") as f:
        f.write(msg)
    os._exit(0)


def test_a_killed_rank_is_named_at_once_not_after_the_timeout(tmp_path):
    ctx = mp.get_context("spawn")
    port = _free_port()
    procs = [ctx.Process(target=_killed, args=(r, 2, port, str(tmp_path))) for r in range(2)]
    for p in procs:
        p.start()
    procs[1].join(120)
    t_dead = time.monotonic()
    procs[0].join(120)
    assert procs[1].exitcode == -signal.SIGKILL and procs[0].exitcode == 0
    when, msg = (tmp_path / "killed0.txt").read_text().split("\n", 1)
    assert float(when) - t_dead < 5  # the timeout is 600 s
    assert "failed on rank 0 of 2 (intra-host shared memory: the process of rank 1 ended" in msg, msg
    assert "rank 1 did not answer: dead" in msg


def test_without_a_group_the_path_says_one_process():
    import mnq

    assert mnq.distributed.path() == "one process"
    assert mnq.distributed.stats()["collectives"] == 0
