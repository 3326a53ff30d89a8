#!/usr/bin/env python3
"""Crash consistency of mnq-train: kill a small job at every write and rename of its files, resume it with --resume,
and check that it ends with the bytes of an uninterrupted run.

The kill points are the fault points of the atomic file writer (csrc/util/fault.h): every file a job publishes
passes three — `open` (temporary file created), `write` (its bytes written and fsync'ed, not yet renamed) and
`rename` (published, directory not yet fsync'ed). MNQ_FAULT_TRACE lists them during an uninterrupted reference run;
MNQ_FAULT_AT=<n> makes a job SIGKILL itself at point n (as `kill -9` or a power cut at that instant). For every
chosen point the job is run in a fresh folder, killed there, resumed without the fault, and compared with the
reference:
  - results.json, every plan (plans/*.yaml, <run>/plan.yaml), every weights file (model.safetensors,
    best.safetensors) and each run's integer model and its evaluation (model.int.safetensors, model.int.json)
    byte for byte;
  - each checkpoint.safetensors tensor for tensor, and its state.json without the wall-clock fields;
  - no temporary file (`.<name>.tmp<pid>`) left anywhere.

The job (`job_config`) is the smallest that exercises every stage kind: FP pretraining (1 epoch), the analyzer
(`plan: mixed` at W6), two QAT runs of 2 epochs each with a checkpoint after every epoch, drop-path masks from the
checkpointed CPU generator and Mixup/CutMix/random erasing on, on 128 Fashion-MNIST training images (~5 s).

    python scripts/fault_inject.py                 # every point (~130; a few seconds each)
    python scripts/fault_inject.py --points 5 40   # those points only
    python scripts/fault_inject.py --sample 6      # 6 points spread over the job (what CI's pytest runs)

The job runs as build/cmake/mnq-train when the repository has been built (it starts in ~1 s; MNQ_TRAIN=<path> picks
another), else through Python's mnq.cli (an installed mnq, or PYTHONPATH=python with the extension modules copied
there, README).
Exit status 0 when every point resumed to the reference bytes.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import yaml

DATA = Path("/usr/share/datasets/fashion-mnist")
TEMP_NAME = re.compile(r"^\..+\.tmp\d+$")
# state.json fields that measure time, not training (they differ between any two runs)
CLOCK_FIELDS = ("elapsed_s",)
CLOCK_HISTORY_FIELDS = ("epoch_s", "train_img_s", "elapsed_s")

_RUN_JOB = "import sys, mnq.cli; sys.argv = ['mnq-train'] + sys.argv[1:]; mnq.cli.train()"
_BUILT = Path(__file__).resolve().parents[1] / "build" / "cmake" / "mnq-train"


def train_command() -> List[str]:
    """The mnq-train command line: $MNQ_TRAIN, the repository's build, or Python's entry point."""
    if os.environ.get("MNQ_TRAIN"):
        return [os.environ["MNQ_TRAIN"]]
    if _BUILT.exists():
        return [str(_BUILT)]
    return [sys.executable, "-c", _RUN_JOB]


def job_config(out_dir: Path, data_root: Path = DATA) -> dict:
    return {
        "data": {"root": str(data_root), "batch_size": 32, "eval_batch_size": 64, "workers": 1, "prefetch": 2,
                 "train_subset": 128, "val_subset": 64, "seed": 5, "mean": [0.286], "std": [0.353],
                 "randaugment": "", "random_erasing": 0.25},
        "model": {"preset": "vit_mnist_tiny", "drop_path": 0.1,
                  "pretrain": {"epochs": 1, "lr": 2e-3, "warmup_steps": 2, "mixup": 0.8, "cutmix": 1.0}},
        "quant": {"calib_batches": 1},
        "train": {"epochs": 2, "lr": 1e-4, "mixup": 0.8, "cutmix": 1.0},
        "analyze": {"calib_batches": 1, "progress": False},
        "compare": [{"name": "w6_mixed", "bits": 6, "plan": "mixed"}, {"name": "w8_ibert", "bits": 8, "plan": "ibert"}],
        "output": {"dir": str(out_dir)},
        "threads": 1,
        "device": "cpu",
    }


def run_job(out_dir: Path, *, resume: bool = False, fault_at: int = 0, trace: Optional[Path] = None,
            timeout: float = 600) -> subprocess.CompletedProcess:
    out_dir.mkdir(parents=True, exist_ok=True)
    config = out_dir.parent / (out_dir.name + ".yaml")
    config.write_text(yaml.safe_dump(job_config(out_dir)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MNQ_FAULT_")}
    if fault_at:
        env["MNQ_FAULT_AT"] = str(fault_at)
    if trace is not None:
        env["MNQ_FAULT_TRACE"] = str(trace)
    args = train_command() + ["--config", str(config)] + (["--resume"] if resume else [])
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)


def reference(work: Path) -> Tuple[Path, List[Tuple[int, str, str]]]:
    """Runs the job uninterrupted with the trace on; returns its folder and its fault points (n, kind, path)."""
    ref, trace = work / "reference", work / "reference.trace"
    trace.unlink(missing_ok=True)
    r = run_job(ref, trace=trace)
    if r.returncode != 0:
        raise RuntimeError(f"the reference job failed ({r.returncode}):\n{r.stderr[-4000:]}")
    points = []
    for line in trace.read_text().splitlines():
        n, kind, path = line.split(" ", 2)
        points.append((int(n), kind, os.path.relpath(path, ref)))
    return ref, points


def safetensors(path: Path) -> Dict[str, Tuple[str, list, bytes]]:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    return {k: (v["dtype"], v["shape"], data[v["data_offsets"][0]:v["data_offsets"][1]])
            for k, v in header.items() if k != "__metadata__"}


def _state_without_clock(raw: bytes) -> dict:
    state = json.loads(raw)
    for k in CLOCK_FIELDS:
        state.pop(k, None)
    for h in state.get("history", []):
        for k in CLOCK_HISTORY_FIELDS:
            h.pop(k, None)
    return state


def compare(ref: Path, got: Path) -> List[str]:
    """Differences between a resumed run folder and the reference ([] when it matches)."""
    problems = []
    for p in sorted(got.rglob("*")):
        if TEMP_NAME.match(p.name):
            problems.append(f"temporary file left: {p.relative_to(got)}")
    for p in sorted(ref.rglob("*")):
        rel = p.relative_to(ref)
        q = got / rel
        if p.is_dir() or p.suffix not in (".json", ".yaml", ".safetensors") or rel.name == "config.yaml":
            continue
        if rel.name.endswith("_report.json"):
            continue  # the analyzer's report carries its run time
        if not q.exists():
            problems.append(f"missing: {rel}")
        elif rel.name == "checkpoint.safetensors":
            a, b = safetensors(p), safetensors(q)
            if a.keys() != b.keys():
                problems.append(f"{rel}: keys differ: {sorted(a.keys() ^ b.keys())}")
                continue
            for k in a:
                if k == "state.json":
                    if _state_without_clock(a[k][2]) != _state_without_clock(b[k][2]):
                        problems.append(f"{rel}: state.json differs")
                elif a[k] != b[k]:
                    problems.append(f"{rel}: tensor {k} differs")
        elif p.read_bytes() != q.read_bytes():
            problems.append(f"{rel} differs")
    return problems


def check_point(work: Path, ref: Path, point: Tuple[int, str, str], keep: bool = False) -> List[str]:
    """Kill at `point`, resume, compare. Returns the problems ([] when the point passes)."""
    n, kind, path = point
    out = work / f"p{n:04d}"
    shutil.rmtree(out, ignore_errors=True)
    killed = run_job(out, fault_at=n)
    if killed.returncode != -9:
        return [f"point {n} ({kind} {path}): expected the job to die of SIGKILL, exit status {killed.returncode}:\n"
                f"{killed.stderr[-2000:]}"]
    resumed = run_job(out, resume=True)
    if resumed.returncode != 0:
        return [f"point {n} ({kind} {path}): --resume failed ({resumed.returncode}):\n{resumed.stderr[-2000:]}"]
    problems = [f"point {n} ({kind} {path}): {p}" for p in compare(ref, out)]
    if not problems and not keep:
        shutil.rmtree(out, ignore_errors=True)
    return problems


def sample(points: Sequence[Tuple[int, str, str]], count: int) -> List[Tuple[int, str, str]]:
    """`count` points spread evenly inside the job, plus the first point after the analyzer's plans are published
    (the kill that used to resume to other results: the first QAT run then drew from another generator state)."""
    chosen = {points[min(len(points) - 1, (i + 1) * len(points) // (count + 1))][0] for i in range(count)}
    after_plans = [p for p in points if p[2].startswith("plans/mixed_w") and p[1] == "rename" and
                   "_report" not in p[2]]
    if after_plans:
        chosen.add(after_plans[-1][0] + 1)
    return [p for p in points if p[0] in chosen]


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--points", type=int, nargs="*", help="fault points to test (default: all)")
    ap.add_argument("--sample", type=int, help="test this many points spread over the job")
    ap.add_argument("--workdir", type=Path, help="where the run folders go (default: a temporary folder)")
    ap.add_argument("--keep", action="store_true", help="keep the run folders of passing points")
    args = ap.parse_args(argv)
    if not (DATA / "train-images-idx3-ubyte.gz").exists():
        print(f"fault_inject: {DATA} has no Fashion-MNIST (Debian's dataset-fashion-mnist)", file=sys.stderr)
        return 2
    work = args.workdir or Path(tempfile.mkdtemp(prefix="mnq-fault-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    ref, points = reference(work)
    print(f"reference run: {len(points)} fault points in {time.monotonic() - t0:.1f} s ({work})", flush=True)
    if args.points:
        todo = [p for p in points if p[0] in set(args.points)]
    elif args.sample:
        todo = sample(points, args.sample)
    else:
        todo = list(points)
    failed = 0
    for point in todo:
        t = time.monotonic()
        problems = check_point(work, ref, point, keep=args.keep)
        status = "ok" if not problems else "FAILED"
        print(f"point {point[0]:4d} {point[1]:6s} {point[2]}: {status} ({time.monotonic() - t:.1f} s)", flush=True)
        for p in problems:
            print("  " + p, flush=True)
        failed += bool(problems)
    print(f"{len(todo) - failed}/{len(todo)} points resumed to the reference bytes in {time.monotonic() - t0:.0f} s")
    if not args.workdir and not failed and not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
