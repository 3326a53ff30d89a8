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
all-reduces and the optimizer included). Prints each rate and its ratio to one process.

    python scripts/bench_train.py --nproc 1,2 [--batch 128] [--steps 30] [--methods ivit] [--bits 8]
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
    args = ap.parse_args()
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


def _qat_rate(workdir: Path, fp: Path, nproc: int, args) -> float:
    """Runs the QAT job on `nproc` processes (mnq-train's entry point, 1 thread each); rank 0's QAT img/s."""
    import yaml

    out = workdir / f"n{nproc}"
    job = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs" / "fashion_mnist.yaml").read_text())
    job["data"].update(batch_size=args.batch, train_subset=args.batch * args.steps, val_subset=256, workers=0)
    job["model"].update(preset=args.preset, checkpoint=str(fp), drop_path=0.0)
    job["quant"]["calib_batches"] = 1
    job["compare"] = [{"name": "qat", "bits": args.bits, "plan": args.methods.split(",")[0]}]
    job["output"]["dir"] = str(out)
    job["threads"] = 1
    config = out.with_suffix(".yaml")
    config.write_text(yaml.safe_dump(job))
    argv = ["mnq-train", "--config", str(config), "--quiet"]
    code = f"import sys; sys.argv = {argv!r}; from mnq.cli import train; train()"
    port = _free_port()
    t0 = time.monotonic()
    procs = []
    for rank in range(nproc):
        env = dict(os.environ, OMP_NUM_THREADS="1")
        if nproc > 1:
            env.update(RANK=str(rank), WORLD_SIZE=str(nproc), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                       MASTER_PORT=str(port))
        with open(out.with_name(f"{out.name}_rank{rank}.log"), "w") as log:
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
            log = out.with_name(f"{out.name}_rank{rank}.log").read_text()
            raise SystemExit(f"--nproc {nproc}: rank {rank} failed:\n{log[-2000:]}")
    epoch = json.loads((out / "qat" / "metrics.jsonl").read_text().splitlines()[-1])
    return {"img_s": epoch["train_img_s"], "cpu_s": cpu, "wall_s": time.monotonic() - t0}


def data_parallel(args) -> None:
    counts = [int(n) for n in args.nproc.split(",") if n]
    with tempfile.TemporaryDirectory(prefix="mnq_bench_dp_") as tmp:
        workdir = Path(tmp)
        fp = workdir / "fp.safetensors"
        mnq.models.create(args.preset).save(str(fp))  # random FP weights: the rate does not depend on them
        rates = {n: _qat_rate(workdir, fp, n, args) for n in counts}
    method = args.methods.split(",")[0]
    print(f"{args.preset}, QAT W{args.bits} {method}, global batch {args.batch}, {args.steps} steps, "
          f"1 torch thread per process, Gloo on loopback")
    base = rates[1]["img_s"] if 1 in rates else None
    for n, r in rates.items():
        share = sum(r["cpu_s"]) / r["wall_s"]
        print(f"  {n} process{'es' if n > 1 else '  '} {r['img_s']:9.0f} img/s" +
              (f"  {r['img_s'] / base:5.2f}x one" if base else "") +
              f"  | whole job: {r['wall_s']:.0f} s wall, CPU-s per rank {', '.join(f'{c:.0f}' for c in r['cpu_s'])}"
              f" ({share:.2f} cores busy on average)")
    print("  (cores busy well below the process count: the machine is shared and the ratio says little)")
    if args.json:
        Path(args.json).write_text(json.dumps({"nproc": rates, "batch": args.batch, "steps": args.steps}, indent=1))


if __name__ == "__main__":
    main()
