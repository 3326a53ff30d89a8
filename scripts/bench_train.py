"""Benchmark the C++ trainer's steps: images/s of the QAT training step of each method against the full-precision
step of the same model in the same run (one random batch, forward + cross-entropy + backward + AdamW), of
evaluation likewise, and of the data loader. Runs mnq-bench-train's measurement (csrc/jobs/bench.h) through
``mnq.bench_train``. Prints the rates and their ratios to FP; img/CPU-s (images per CPU-second of this process)
stays comparable when other jobs share the machine; reads/step: tensor values the step (or eval forward) read back
to the host, counted in one more untimed call (on a GPU each is a device sync; the goal is 0). Nothing is
asserted: ratios, not timings, are the result.

    python scripts/bench_train.py [--preset vit_mnist_tiny] [--bits 8] [--methods ivit,ibert,fqvit] [--batch 128]
                                  [--steps 10] [--threads 2] [--device cpu|cuda] [--data fashion_mnist|synthetic|none]
                                  [--json result.json]

Data parallel (``--nproc 1,2``): QAT images/s of a whole `mnq-train` QAT stage on N processes, each with one
torch thread and its loader in the training thread (Gloo over loopback, started as torchrun starts them). Each
process count trains the same job: the preset's FP weights (random, saved once), calibration, then one QAT epoch
of ``--steps`` global batches of ``--batch`` Fashion-MNIST images with the first of ``--methods``; the rate is
the QAT pass's ``train_img_s`` (metrics.jsonl: global-batch images per second of the training pass, loading,
all-reduces and the optimizer included). Prints each rate and its ratio to one process, each rank's CPU seconds,
the load average, and per QAT step each rank's collectives (count, of them through shared memory, bytes, wall time
in them, and the part of it spent waiting for the other rank to arrive). ``--paths shm,gloo``: with the intra-host
shared-memory collectives and with Gloo only (MNQ_DIST_SHM=0). ``--ceiling``: also N separate one-process jobs of
batch/N each at the same time, with no collectives at all: the sum of their rates bounds what N ranks can reach
on this machine (shared cores, caches and memory bandwidth; smaller per-process batches).

    python scripts/bench_train.py --nproc 1,2 [--paths shm,gloo] [--ceiling] [--batch 128] [--steps 30]
                                  [--methods ivit] [--bits 8]

``--allreduce``: one all-reduce between 2 processes (1 thread each), 8 B to 4 MB, wall and CPU time per call
through shared memory and through Gloo on loopback.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import mnq


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="vit_mnist_tiny")
    ap.add_argument("--bits", type=int, default=8, help="W/A bits of the quantized models")
    ap.add_argument("--methods", default="ivit,ibert,fqvit", help="uniform plans to time, comma-separated")
    ap.add_argument("--batch", type=int, default=128, help="images per step")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per row (after 2 untimed)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--data", default="fashion_mnist", choices=["fashion_mnist", "synthetic", "none"],
                    help="loader rows: the Fashion-MNIST IDX files, generated images of the model's shape, or none")
    ap.add_argument("--fashion-root", default="", help="Fashion-MNIST folder (default: Debian's)")
    ap.add_argument("--image-folder", default="", help="also time an ImageNet-style folder (root with train/)")
    ap.add_argument("--img-size", type=int, default=224, help="image-folder crop size")
    ap.add_argument("--workers", type=int, default=1, help="loader threads")
    ap.add_argument("--loader-images", type=int, default=20000, help="images read in each loader row")
    ap.add_argument("--json", default="", help="also write the result to this file (scripts/gpu_table.py reads it)")
    ap.add_argument("--nproc", default="", help="data-parallel QAT throughput on these process counts, e.g. 1,2")
    ap.add_argument("--paths", default="shm,gloo",
                    help="with --nproc: the collectives' paths to time (shm: intra-host shared memory; gloo: Gloo)")
    ap.add_argument("--allreduce", action="store_true",
                    help="time single all-reduces between 2 processes instead (shared memory vs Gloo; 8 B to 4 MB)")
    ap.add_argument("--ceiling", action="store_true",
                    help="with --nproc: also run N separate one-process jobs of batch/N at once (no collectives)")
    args = ap.parse_args()
    if args.allreduce:
        return allreduce_latency(args)
    if args.nproc:
        return data_parallel(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    r = mnq.bench_train(preset=args.preset, batch=args.batch, steps=args.steps, bits=args.bits,
                        methods=[m for m in args.methods.split(",") if m], device=args.device, data=args.data,
                        fashion_root=args.fashion_root, image_folder=args.image_folder, img_size=args.img_size,
                        workers=args.workers, loader_images=args.loader_images)
    rows = {(row["kind"], row["method"]): row for row in r["rows"]}
    print(f"{r['preset']}, batch {r['batch']}, QAT W/A {r['bits']}, device {r['device']}, threads {r['threads']}, "
          f"{r['steps']} timed steps")
    print(f"  {'model':<16} {'step img/s':>11} {'img/CPU-s':>10} {'vs FP':>7} {'reads/step':>10}   "
          f"{'eval img/s':>11} {'vs FP':>7} {'reads/fwd':>9}")
    for method in ["fp"] + [m for m in args.methods.split(",") if m]:
        tr, ev = rows[("train", method)], rows[("eval", method)]
        label = "FP" if method == "fp" else f"QAT W{r['bits']} {method}"
        print(f"  {label:<16} {tr['img_s']:11.0f} {tr['img_cpu_s']:10.0f} {tr['vs_fp']:6.2f}x {tr['host_reads']:10d}   "
              f"{ev['img_s']:11.0f} {ev['vs_fp']:6.2f}x {ev['host_reads']:9d}")
    for row in r["rows"]:
        if row["kind"] == "loader":
            print(f"  {row['name']:<36} {row['img_s']:11.0f} img/s ({row['img_cpu_s']:.0f} img/CPU-s)")
    fp = rows[("train", "fp")]
    for method in [m for m in args.methods.split(",") if m]:
        q = rows[("train", method)]
        print(f"  QAT {method} step costs {fp['img_s'] / q['img_s']:.2f}x the FP step "
              f"({fp['img_cpu_s'] / q['img_cpu_s']:.2f}x in CPU time)")
    if args.json:
        Path(args.json).write_text(json.dumps({k: v for k, v in r.items() if k != "table"}, indent=1))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _job_config(workdir: Path, fp: Path, name: str, batch: int, args) -> Path:
    import yaml

    out = workdir / name
    job = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs" / "fashion_mnist.yaml").read_text())
    job["data"].update(batch_size=batch, train_subset=batch * args.steps, val_subset=256, workers=0)
    job["model"].update(preset=args.preset, checkpoint=str(fp), drop_path=0.0)
    job["quant"]["calib_batches"] = 1
    job["compare"] = [{"name": "qat", "bits": args.bits, "plan": args.methods.split(",")[0]}]
    job["output"]["dir"] = str(out)
    job["threads"] = 1
    config = out.with_suffix(".yaml")
    config.write_text(yaml.safe_dump(job))
    return config


def _qat_rate(workdir: Path, fp: Path, nproc: int, args, shm: bool = True, independent: bool = False) -> dict:
    """Runs the QAT job on `nproc` processes (mnq-train's entry point, 1 thread each) and returns rank 0's QAT img/s,
    each rank's CPU seconds and its collectives per QAT step (dist.records). With `independent`, `nproc` separate
    one-process jobs of batch/nproc images each run at the same time instead (no group): the sum of their rates is
    what `nproc` ranks could reach with free collectives (the machine's ceiling)."""
    tag = f"n{nproc}" + ("_alone" if independent else "_shm" if shm and nproc > 1 else "")
    batch = args.batch // nproc if independent else args.batch
    configs = [_job_config(workdir, fp, f"{tag}_{r}" if independent else tag, batch, args)
               for r in range(nproc if independent else 1)]
    port = _free_port()
    t0 = time.monotonic()
    procs = []
    for rank in range(nproc):
        config = configs[rank if independent else 0]
        stats = workdir / f"{tag}_rank{rank}.json"
        argv = ["mnq-train", "--config", str(config), "--quiet"]
        # Each rank leaves its collectives' totals per stage (the trainer's dist.records) at exit.
        code = (f"import sys, atexit, json; sys.argv = {argv!r}; from mnq import _mnq; "
                f"atexit.register(lambda: open({str(stats)!r}, 'w').write(json.dumps(_mnq.dist_records()))); "
                "from mnq.cli import train; train()")
        env = dict(os.environ, OMP_NUM_THREADS="1", MNQ_DIST_SHM="1" if shm else "0")
        if nproc > 1 and not independent:
            env.update(RANK=str(rank), WORLD_SIZE=str(nproc), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                       MASTER_PORT=str(port))
        with open(workdir / f"{tag}_rank{rank}.log", "w") as log:
            procs.append(subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL,
                                          stderr=log))
    # Each rank's CPU seconds over its whole job (os.wait4's rusage): with the wall time, the CPU share it got.
    cpu = []
    for p in procs:
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        cpu.append(usage.ru_utime + usage.ru_stime)
    for rank, p in enumerate(procs):
        if p.returncode != 0:
            log = (workdir / f"{tag}_rank{rank}.log").read_text()
            raise SystemExit(f"{tag}: rank {rank} failed:\n{log[-2000:]}")
    rates = [json.loads((c.with_suffix("") / "qat" / "metrics.jsonl").read_text().splitlines()[-1])["train_img_s"]
             for c in configs]
    colls = []
    for rank in range(nproc):
        colls.append(json.loads((workdir / f"{tag}_rank{rank}.json").read_text())["qat"])
    return {"img_s": sum(rates), "img_s_each": rates, "cpu_s": cpu, "wall_s": time.monotonic() - t0,
            "collectives": colls, "load": os.getloadavg()[0]}


def data_parallel(args) -> None:
    counts = [int(n) for n in args.nproc.split(",") if n]
    runs = []  # (label, nproc, result)
    with tempfile.TemporaryDirectory(prefix="mnq_bench_dp_") as tmp:
        workdir = Path(tmp)
        fp = workdir / "fp.safetensors"
        mnq.models.create(args.preset).save(str(fp))  # random FP weights: the rate does not depend on them
        for n in counts:
            if n == 1:
                runs.append(("1 process", 1, _qat_rate(workdir, fp, 1, args)))
                continue
            if args.ceiling:
                runs.append((f"{n} separate jobs of batch {args.batch // n} at once (ceiling)", n,
                             _qat_rate(workdir, fp, n, args, independent=True)))
            for shm in [p == "shm" for p in args.paths.split(",") if p]:
                runs.append((f"{n} processes, {'shared memory' if shm else 'Gloo only'}", n,
                             _qat_rate(workdir, fp, n, args, shm=shm)))
    method = args.methods.split(",")[0]
    print(f"{args.preset}, QAT W{args.bits} {method}, global batch {args.batch}, {args.steps} steps, "
          f"1 torch thread per process, Gloo on loopback or intra-host shared memory")
    base = next((r for _, n, r in runs if n == 1), None)
    cpu_step = lambda c: c["pass_cpu_s"] / c["steps"]  # noqa: E731  (the QAT pass's process CPU s per step)
    for label, n, r in runs:
        share = sum(r["cpu_s"]) / r["wall_s"]
        line = f"  {label:<48} {r['img_s']:7.0f} img/s"
        if base:
            # With a core to each rank and nothing else running, a step would take the slowest rank's CPU time:
            # this ratio is what the wall ratio becomes on a quiet machine (spinning waits count as CPU).
            cpu_ratio = cpu_step(base["collectives"][0]) / max(cpu_step(c) for c in r["collectives"])
            line += f" {r['img_s'] / base['img_s']:5.2f}x one (CPU-time bound {cpu_ratio:4.2f}x)"
        print(line + f" | job {r['wall_s']:.0f} s wall, CPU-s per rank {', '.join(f'{c:.0f}' for c in r['cpu_s'])}"
              f" ({share:.2f} cores busy), load {r['load']:.1f}")
        for rank, c in enumerate(r["collectives"]):
            k = c["steps"]
            print(f"      rank {rank}: QAT step {1e3 * c['pass_wall_s'] / k:6.1f} ms wall, {1e3 * cpu_step(c):6.1f} ms "
                  "CPU"
                  + (f"; {c['collectives'] / k:.1f} collectives/step ({c['shm_collectives'] / k:.1f} in shared "
                     f"memory), {c['bytes'] / k / 1024:.0f} KiB, {1e3 * c['wall_s'] / k:.2f} ms wall in them, "
                     f"{1e3 * c['wait_s'] / k:.2f} ms of it waiting for the other rank" if c["collectives"] else ""))
    print("  (cores busy well below the process count, or a load above it: the machine is shared and the ratio says "
          "little)")
    if args.json:
        Path(args.json).write_text(json.dumps({"runs": [{"label": l, "nproc": n, **r} for l, n, r in runs],
                                               "batch": args.batch, "steps": args.steps}, indent=1))


_SIZES = [8, 8 << 10, 800 << 10, 4 << 20]  # an observer's [−min, max], error sums, the gradient bucket, a big one


def _allreduce_rank(rank: int, port: int, shm: bool, out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from mnq import _mnq

    mnq.distributed.init_from_env(timeout_s=300, shm=shm)
    rows = []
    for size in _SIZES:
        t = torch.ones(size // 4)
        reps = max(20, min(2000, (64 << 20) // size))
        for _ in range(5):
            _mnq.dist_allreduce_sum(t)
        c0, w0 = time.process_time(), time.perf_counter()
        for _ in range(reps):
            _mnq.dist_allreduce_sum(t)
        rows.append((size, (time.perf_counter() - w0) / reps, (time.process_time() - c0) / reps))
    Path(out, f"{int(shm)}_{rank}.json").write_text(json.dumps(rows))
    mnq.distributed.shutdown()


def allreduce_latency(args) -> None:
    """Two processes (1 thread each) time float32 SUM all-reduces of each size through shared memory and Gloo."""
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory(prefix="mnq_bench_ar_") as tmp:
        for shm in (True, False):
            mp.start_processes(_allreduce_rank, args=(_free_port(), shm, tmp), nprocs=2, start_method="spawn")
        got = {shm: [json.loads(Path(tmp, f"{int(shm)}_{r}.json").read_text()) for r in range(2)]
               for shm in (True, False)}
    print(f"one all-reduce (float32 SUM) between 2 processes, rank 0's wall / process CPU time per call, load "
          f"{os.getloadavg()[0]:.1f}")
    for i, size in enumerate(_SIZES):
        (_, ws, cs), (_, wg, cg) = got[True][0][i], got[False][0][i]
        print(f"  {size:>9} B   shared memory {1e6 * ws:8.1f} µs ({1e6 * cs:7.1f} CPU)   Gloo {1e6 * wg:8.1f} µs "
              f"({1e6 * cg:7.1f} CPU)   {wg / ws:5.1f}x")


if __name__ == "__main__":
    main()
