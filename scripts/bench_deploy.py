"""Benchmark (not a test): FP32 timm eval vs the fake-quant eval model vs the integer engine (mnq.deploy), CPU,
1 and 2 threads, vit_mnist_tiny batch 256 and deit_tiny_patch16_224 batch 8 (random weights: no downloads), plus
the engine's time per op type and the weight bytes; the engine with its fused CPU paths off (the unfused program,
csrc/deploy/int_fused.h) in the same run, for before/after.

    PYTHONPATH=python python scripts/bench_deploy.py [--repeat 20] [--json out.json] [--plan ivit|ibert|fqvit|mixed]
                                                     [--cpu-time]

Each number is the median of --repeat timed forwards after 3 warm-up forwards, same process, same inputs; the
machine may be shared, so run it on a quiet machine for numbers to quote (the script prints the load average).
Goal (issue 11): integer engine ≤ 0.75× the FP32 eval time; weights ≤ 0.3× the FP32 bytes.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "python"))
import mnq  # noqa: E402
from deploy_util import unit_scale_init  # noqa: E402

CASES = [("vit_mnist_tiny", 256), ("deit_tiny_patch16_224", 8)]
TIMM_KW = {"vit_mnist_tiny": dict(img_size=28, patch_size=4, in_chans=1, num_classes=10, embed_dim=64, depth=4,
                                  num_heads=4)}
MIXED = {"all": "ivit", "softmax": "ibert", "blocks.0.norm1": "fqvit", "blocks.1.mlp.gelu": "ibert", "norm": "ibert"}


def timm_model(preset: str) -> torch.nn.Module:
    import timm
    from timm.models.vision_transformer import VisionTransformer
    torch.manual_seed(0)
    if preset in TIMM_KW:
        return VisionTransformer(**TIMM_KW[preset]).eval()
    return timm.create_model(preset, pretrained=False).eval()


CLOCK = time.perf_counter  # --cpu-time: time.process_time (CPU seconds of this process: robust on a loaded machine)


def timed(fn, x, repeat: int) -> float:
    with torch.no_grad():
        for _ in range(3):
            fn(x)
        times = []
        for _ in range(repeat):
            t0 = CLOCK()
            fn(x)
            times.append(CLOCK() - t0)
    return statistics.median(times)


def bytes_of(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--plan", default="mixed", choices=["ivit", "ibert", "fqvit", "mixed"])
    ap.add_argument("--bits", type=int, default=8)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--json", default="")
    ap.add_argument("--cpu-time", action="store_true",
                    help="time with process CPU time instead of wall time (a shared machine; one thread)")
    args = ap.parse_args()
    if args.cpu_time:
        global CLOCK
        CLOCK = time.process_time
    plan = MIXED if args.plan == "mixed" else args.plan
    print(f"load average {os.getloadavg()}, {os.cpu_count()} CPUs, torch {torch.__version__}, plan {args.plan}, "
          f"W/A {args.bits}, {'CPU' if args.cpu_time else 'wall'} time", flush=True)
    rows, profiles = [], {}
    for preset, batch in CASES:
        fp = timm_model(preset)
        shape = (batch, fp.patch_embed.proj.in_channels, fp.patch_embed.img_size[0], fp.patch_embed.img_size[1])
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
        q = mnq.models.create(preset, bits=args.bits, plan=plan)
        unit_scale_init(q)
        with torch.no_grad():
            for _ in range(2):
                q(x)
        q.freeze_alpha()
        q.eval()
        imodel = mnq.deploy.convert(q)
        fp_bytes = bytes_of(fp.parameters())
        int_bytes = bytes_of(imodel.state_dict().values())
        for threads in [int(t) for t in args.threads.split(",")]:
            torch.set_num_threads(threads)
            t_fp = timed(fp, x, args.repeat)
            t_fq = timed(q, x, args.repeat)
            t_int = timed(imodel, x, args.repeat)
            mnq._mnq.deploy_set_fused(False)  # the unfused program (before the fused CPU paths), same process
            t_unfused = timed(imodel, x, args.repeat)
            mnq._mnq.deploy_set_fused(True)
            rows.append(dict(model=preset, batch=batch, threads=threads, fp32_ms=1e3 * t_fp, fake_quant_ms=1e3 * t_fq,
                             integer_ms=1e3 * t_int, integer_vs_fp32=t_int / t_fp,
                             unfused_ms=1e3 * t_unfused, fp32_bytes=fp_bytes,
                             integer_bytes=int_bytes, bytes_ratio=int_bytes / fp_bytes))
            print(f"  measured {preset} b{batch} t{threads}: FP32 {1e3 * t_fp:.1f} ms, fake-quant {1e3 * t_fq:.1f} ms, "
                  f"integer {1e3 * t_int:.1f} ms (unfused {1e3 * t_unfused:.1f} ms)", flush=True)
            prof = {}
            for _ in range(5):
                _, sec = imodel.profile(x)
                for k, v in sec.items():
                    prof[k] = prof.get(k, 0.0) + v / 5
            profiles[f"{preset} b{batch} t{threads}"] = prof
    print("\n| model | batch | threads | FP32 timm eval ms | fake-quant eval ms | integer engine ms | int / FP32 | "
          "unfused engine ms | unfused / FP32 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['batch']} | {r['threads']} | {r['fp32_ms']:.2f} | {r['fake_quant_ms']:.2f} | "
              f"{r['integer_ms']:.2f} | {r['integer_vs_fp32']:.2f}× | {r['unfused_ms']:.2f} | "
              f"{r['unfused_ms'] / r['fp32_ms']:.2f}× |")
    print("\nweights: " + ", ".join(f"{r['model']} {r['integer_bytes'] / 1e6:.2f} MB vs FP32 {r['fp32_bytes'] / 1e6:.2f} MB "
                                     f"({r['bytes_ratio']:.2f}×)" for r in {r['model']: r for r in rows}.values()))
    print("\ninteger engine, time per op type (ms per forward):")
    keys = sorted({k for p in profiles.values() for k in p})
    print("| run | " + " | ".join(keys) + " |")
    print("|---|" + "---|" * len(keys))
    for run, p in profiles.items():
        print(f"| {run} | " + " | ".join(f"{1e3 * p.get(k, 0.0):.2f}" for k in keys) + " |")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "profiles": profiles}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
