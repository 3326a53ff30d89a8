"""Benchmark the C++ trainer's steps: images/s of the QAT training step of each method against the full-precision
step of the same model in the same run (one random batch, forward + cross-entropy + backward + AdamW), of
evaluation likewise, and of the data loader. Runs mnq-bench-train's measurement (csrc/train/bench.h) through
``mnq.bench_train``. Prints the rates and their ratios to FP; img/CPU-s (images per CPU-second of this process)
stays comparable when other jobs share the machine; reads/step: tensor values the step (or eval forward) read back
to the host, counted in one more untimed call (on a GPU each is a device sync; the goal is 0). Nothing is
asserted: ratios, not timings, are the result.

    python scripts/bench_train.py [--preset vit_mnist_tiny] [--bits 8] [--methods ivit,ibert,fqvit] [--batch 128]
                                  [--steps 10] [--threads 2] [--device cpu|cuda] [--data fashion_mnist|synthetic|none]
                                  [--json result.json]
"""
import argparse
import json
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
    args = ap.parse_args()
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


if __name__ == "__main__":
    main()
