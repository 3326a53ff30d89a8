"""Data-parallel mnq-train (csrc/train/data_parallel.h): a tiny job on 2 processes (Gloo over loopback, started as
torchrun starts them: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT, through the console script's entry
mnq.cli.train) against the same job in one process. Same global batch, so the same results: every stage's weights
within float-summation tolerance after its steps (pretraining, calibration, QAT with the analyzer's mixed plan and
PTF LayerNorms, with drop-path, Mixup/CutMix and RandAugment on), quantizer state bit-identical across the ranks
(the trainer checks a checksum of every parameter and buffer before each checkpoint and fails otherwise), the same
results rows and paired tests, only rank 0 writing. A killed rank makes the other exit non-zero naming it."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

import mnq

DATA = Path("/usr/share/datasets/fashion-mnist")
needs_data = pytest.mark.skipif(not (DATA / "train-images-idx3-ubyte.gz").exists(),
                                reason="Debian's dataset-fashion-mnist is not installed")
PYTHON_DIR = Path(mnq.__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _job(out, fp=None, **train):
    model = {"checkpoint": str(fp)} if fp else {"pretrain": {"epochs": 1, "lr": 2e-3}}
    return {
        "data": {"batch_size": 32, "eval_batch_size": 64, "workers": 1, "train_subset": 96, "val_subset": 100},
        "model": {"preset": "vit_mnist_tiny", "drop_path": 0.1, **model},
        "quant": {"calib_batches": 2},
        "train": {"epochs": 1, "lr": 1e-6, **train},  # SPEC §8's QAT learning rate
        "analyze": {"calib_batches": 2, "progress": False, "isolated": True},  # the isolated scores too (below)
        "compare": [{"name": "w8_fqvit", "bits": 8, "plan": "fqvit"}, {"name": "w6_mixed", "bits": 6, "plan": "mixed"}],
        "output": {"dir": str(out)},
        "threads": 1,
        "dist": {"timeout_s": 60},
    }


def _launch(config: dict, tmp_path, world: int, extra=(), python_api=False):
    """Starts `world` ranks of mnq-train (its console entry point; with python_api, of ``mnq.train``, each rank
    printing the rows it returns) on `config`; returns the processes."""
    cfg = tmp_path / f"job_{world}.yaml"
    cfg.write_text(yaml.safe_dump(config))
    port = _free_port()
    procs = []
    for rank in range(world):
        env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world),
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1",
                   PYTHONPATH=os.pathsep.join([str(PYTHON_DIR), os.environ.get("PYTHONPATH", "")]))
        argv = ["mnq-train", "--config", str(cfg), "--quiet", *extra]
        code = f"import sys; sys.argv = {argv!r}; from mnq.cli import train; train()"
        if python_api:
            code = (f"import json, mnq; r = mnq.train({str(cfg)!r}, quiet=True); "
                    "print(json.dumps({'finished': r['finished'], 'rows': r['rows'], 'comparisons': r['comparisons']}))")
        procs.append(subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    return procs


def _wait(procs, timeout=240):
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=timeout)
        outs.append((p.returncode, err))
        p.stdout_text = out
    return outs


@needs_data
def test_two_processes_train_the_one_process_job(tmp_path):
    # QAT runs (3 steps each) from one FP checkpoint (random weights), so each comparison is of its own steps. At
    # SPEC's QAT lr the float-rounding differences of the gradient means stay below the weight quantizers' steps; a
    # large lr would flip some quantized weights after a step and let the runs drift apart as they may.
    fp = tmp_path / "fp.safetensors"
    mnq.models.create("vit_mnist_tiny").save(str(fp))
    two = _launch(_job(tmp_path / "two", fp), tmp_path, 2)
    one = mnq.train(_job(tmp_path / "one", fp), quiet=True)  # meanwhile, here: the same job on one process
    outs = _wait(two)
    for rank, (rc, err) in enumerate(outs):
        assert rc == 0, f"rank {rank} failed:\n{err[-3000:]}"
    # Rank 0 alone logs and writes: rank 1 says nothing (the job succeeded, so its checksums matched rank 0's).
    assert "data-parallel: 2 processes, global batch 32 = 2 × 16" in outs[0][1]
    assert outs[1][1].strip() == ""
    assert not list((tmp_path / "two").rglob(".*.tmp*"))

    saved = json.loads((tmp_path / "two" / "results.json").read_text())
    assert [r["name"] for r in saved["runs"]] == [r["name"] for r in one["rows"]] == ["fp", "w8_fqvit", "w6_mixed"]
    for a, b in zip(saved["runs"], one["rows"]):
        assert a["test_images"] == b["test_images"] == 100 and a["finished"] and b["finished"]
        assert abs(a["top1"] - b["top1"]) <= 0.01, (a["name"], a["top1"], b["top1"])  # a near-tie may flip 1 image
        if "integer" in b:
            assert a["integer"]["test_images"] == b["integer"]["test_images"] == 100
    assert [(c["a"], c["b"], c["available"]) for c in saved["comparisons"]] == \
        [(c["a"], c["b"], c["available"]) for c in one["comparisons"]]
    # The analyzer's plan from the all-reduced SQNR sums is the one-process plan; so are the isolated scores (each
    # rank clamps its shard to the whole batch's code range, all-reduced) and the isolated plan.
    for plan in ("mixed_w6.yaml", "mixed_isolated_w6.yaml"):
        assert (tmp_path / "two" / "plans" / plan).read_text() == (tmp_path / "one" / "plans" / plan).read_text()
    reports = [json.loads((tmp_path / r / "plans" / "mixed_w6_report.json").read_text()) for r in ("two", "one")]
    for la, lb in zip(reports[0]["layers"], reports[1]["layers"]):
        assert la["layer"] == lb["layer"] and la["methods"].keys() == lb["methods"].keys()
        for m in la["methods"]:
            for k, a in la["methods"][m].items():
                b = lb["methods"][m][k]
                assert a == b if isinstance(a, str) else a == pytest.approx(b, rel=1e-12, abs=1e-12), \
                    (la["layer"], m, k, a, b)

    for stage in ["w8_fqvit", "w6_mixed"]:
        # The same images, augmentations, Mixup/CutMix pairs and drop-path masks: the same training loss.
        losses = [json.loads((tmp_path / r / stage / "metrics.jsonl").read_text().splitlines()[-1])["train_loss"]
                  for r in ("two", "one")]
        assert losses[0] == pytest.approx(losses[1], rel=1e-6), (stage, losses)
        a = load_file(str(tmp_path / "two" / stage / "model.safetensors"))
        b = load_file(str(tmp_path / "one" / stage / "model.safetensors"))
        assert a.keys() == b.keys()
        for k in a:
            if a[k].is_floating_point():
                torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-7, msg=f"{stage}: {k}")
            else:  # PTF α choices, initialised flags
                assert torch.equal(a[k], b[k]), f"{stage}: {k}"


@needs_data
def test_mnq_train_under_torchrun_returns_the_same_results_on_every_rank(tmp_path):
    fp = tmp_path / "fp.safetensors"
    mnq.models.create("vit_mnist_tiny").save(str(fp))
    job = _job(tmp_path / "run", fp)
    job["compare"] = job["compare"][:1]
    procs = _launch(job, tmp_path, 2, python_api=True)
    for rank, (rc, err) in enumerate(_wait(procs)):
        assert rc == 0, f"rank {rank} failed:\n{err[-3000:]}"
    answers = [json.loads(p.stdout_text.strip().splitlines()[-1]) for p in procs]
    assert answers[0] == answers[1] and answers[0]["finished"]  # rank 1 returns rank 0's results
    saved = json.loads((tmp_path / "run" / "results.json").read_text())  # written once, by rank 0
    assert answers[0]["rows"] == saved["runs"] and answers[0]["comparisons"] == saved["comparisons"]
    assert [r["name"] for r in saved["runs"]] == ["fp", "w8_fqvit"]
    # The integer model's evaluation is sharded too and counts the whole test set.
    assert saved["runs"][1]["integer"]["test_images"] == 100
    assert not list((tmp_path / "run").rglob(".*.tmp*"))


@needs_data
def test_a_killed_rank_stops_the_others_naming_it(tmp_path):
    job = _job(tmp_path / "run")
    job["model"]["pretrain"]["epochs"] = 100  # long enough to be killed in
    procs = _launch(job, tmp_path, 2)
    ckpt = tmp_path / "run" / "fp" / "checkpoint.safetensors"
    deadline = time.monotonic() + 180
    while not ckpt.exists() and time.monotonic() < deadline and procs[0].poll() is None:
        time.sleep(0.2)
    assert ckpt.exists(), procs[0].communicate()[1][-3000:] if procs[0].poll() is not None else "no checkpoint"
    t0 = time.monotonic()
    procs[1].send_signal(signal.SIGKILL)
    rc, err = _wait(procs[:1], timeout=120)[0]
    procs[1].wait()
    assert rc != 0
    assert time.monotonic() - t0 < 60  # dist.timeout_s: a dead peer is noticed at once, not after the timeout
    assert "rank 0 of 2" in err and "rank 1 did not answer" in err, err[-3000:]
    # The checkpoint left is a whole one: the job resumes from it on one process (another N).
    job["model"]["pretrain"]["epochs"] = 1
    job["compare"] = job["compare"][:1]
    result = mnq.train(job, resume=True, quiet=True)
    assert result["finished"] and [r["name"] for r in result["rows"]] == ["fp", "w8_fqvit"]


def test_dist_timeout_is_range_checked(tmp_path):
    job = _job(tmp_path / "run")
    job["dist"]["timeout_s"] = 0
    with pytest.raises(ValueError, match=r"dist\.timeout_s: must be in 1\.\.86400"):
        mnq.train(job)
