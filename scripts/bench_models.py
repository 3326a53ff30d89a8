"""Benchmark the quantized models against the full-precision model, in the same run on the same input.

For each model: forward (eval) and forward+backward (a QAT step without the optimizer: training mode, cross-entropy
loss, backward) of the full-precision timm model and of its quantized twins — uniform ivit, ibert, fqvit and a mixed
plan — built by ``mnq.quantize`` (Python modules over the C++ ops) and, when the bindings are built, by
``mnq.models.create`` (the C++ models). Prints milliseconds, the ratio to the FP model, and the host reads of
one more (untimed, profiled) forward and step: tensor values read back to the host (``mnq.profiling``), each a
device sync on a GPU; the goal is 0.
Targets (issue "Quantized ViT, DeiT and Swin"): QAT step <= 2x the float step on CPU, <= 1.5x on GPU.

    python scripts/bench_models.py [--threads 2] [--device cpu|cuda] [--models vit_mnist_tiny,deit_tiny_patch16_224]
                                   [--json rows.json]
"""
import argparse
import json
import statistics
import time
from pathlib import Path

import timm
import torch
import torch.nn.functional as F

import mnq
import mnq.models
from mnq.profiling import count_host_reads

# timm constructors of the presets benchmarked here (the C++ presets of the same names have the same shapes)
TIMM_ARGS = {
    "vit_mnist_tiny": dict(model_name="vit_tiny_patch16_224", img_size=28, patch_size=4, in_chans=1, num_classes=10,
                           embed_dim=64, depth=4, num_heads=4),
    "swin_mnist_tiny": dict(model_name="swin_tiny_patch4_window7_224", img_size=28, patch_size=2, in_chans=1,
                            num_classes=10, embed_dim=32, depths=(2, 2), num_heads=(2, 4), window_size=7, drop_path_rate=0.0),
    "deit_tiny_patch16_224": dict(model_name="deit_tiny_patch16_224", drop_path_rate=0.0),
    "swin_tiny_patch4_window7_224": dict(model_name="swin_tiny_patch4_window7_224", drop_path_rate=0.0),
}
BATCH = {"vit_mnist_tiny": 128, "swin_mnist_tiny": 64, "deit_tiny_patch16_224": 8,
         "swin_tiny_patch4_window7_224": 4}


def mixed_plan(model):
    """A plan using every method: softmax fqvit/ivit/ibert, GELU ibert/ivit, LayerNorm rotating, by layer index."""
    layers = mnq.models.swin_layer_names([len(s.blocks) for s in model.layers]) if hasattr(model, "layers") \
        else mnq.models.vit_layer_names(len(model.blocks))
    order = {"softmax": ["ivit", "ibert", "fqvit"], "gelu": ["ibert", "ivit"], "layernorm": ["ivit", "fqvit", "ibert"]}
    seen = {k: 0 for k in order}
    plan = {}
    for name, op in layers.items():
        plan[name] = order[op][seen[op] % len(order[op])]
        seen[op] += 1
    return plan


def timed(fn, reps, warmup=2):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def bench(model, x, y, reps):
    def fwd():
        with torch.no_grad():
            model.eval()
            model(x)

    def step():
        model.train()
        out = model(x)
        out = out[0] if isinstance(out, tuple) else out
        F.cross_entropy(out, y).backward()

    return timed(fwd, reps), timed(step, reps), count_host_reads(fwd), count_host_reads(step)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--models", default="vit_mnist_tiny,swin_mnist_tiny,deit_tiny_patch16_224")
    ap.add_argument("--bits", type=int, default=8)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--json", default="", help="also write the rows to this file (scripts/gpu_table.py reads it)")
    args = ap.parse_args()
    rows = []

    def row(model, variant, batch, f, s, rf, rs, ref_f, ref_s):
        print(f"{model:24} {variant:14} {batch:5d} {f:9.2f} {s:11.2f} {f / ref_f:7.2f} {s / ref_s:8.2f} "
              f"{rf:9d} {rs:10d}")
        rows.append({"model": model, "variant": variant, "batch": batch, "fwd_ms": f, "step_ms": s,
                     "fwd_vs_fp": f / ref_f, "step_vs_fp": s / ref_s, "reads_fwd": rf, "reads_step": rs})
        if args.json:  # after every row: a run stopped by a time limit keeps what it measured
            Path(args.json).write_text(json.dumps(rows, indent=1))

    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    cpp = hasattr(mnq.models, "create")
    print(f"device {dev}, threads {torch.get_num_threads()}, W/A {args.bits}, median of {args.reps}; "
          f"C++ models: {'yes' if cpp else 'no (bindings not built)'}")
    print(f"{'model':24} {'variant':14} {'batch':>5} {'fwd ms':>9} {'fwd+bwd ms':>11} {'fwd/FP':>7} {'step/FP':>8} "
          f"{'reads fwd':>9} {'reads step':>10}")
    for name in args.models.split(","):
        kw = dict(TIMM_ARGS[name])
        torch.manual_seed(0)
        fp = timm.create_model(kw.pop("model_name"), pretrained=False, **kw).to(dev)
        b = BATCH[name]
        size = kw.get("img_size", 224)
        x = torch.randn(b, kw.get("in_chans", 3), size, size, device=dev)
        y = torch.randint(0, kw.get("num_classes", 1000), (b,), device=dev)
        fp_fwd, fp_step, rf, rs = bench(fp, x, y, args.reps)
        row(name, "fp (timm)", b, fp_fwd, fp_step, rf, rs, fp_fwd, fp_step)
        plans = {"ivit": "ivit", "ibert": "ibert", "fqvit": "fqvit", "mixed": mixed_plan(fp)}
        for label, plan in plans.items():
            q = mnq.quantize(fp, {"all": plan} if isinstance(plan, str) else plan, args.bits)
            mnq.calibrate(q, [x, x])
            row(name, "py " + label, b, *bench(q, x, y, args.reps), fp_fwd, fp_step)
            if cpp:
                try:
                    c = mnq.models.create(name, bits=args.bits, plan=plan)
                except ValueError:
                    continue  # a timm-only shape (no C++ preset of this name)
                c.load_state_dict(fp.state_dict(), strict=False)
                c.to(dev)
                c.train()
                for _ in range(2):
                    with torch.no_grad():
                        c(x)
                c.freeze_alpha()
                row(name, "c++ " + label, b, *bench(c, x, y, args.reps), fp_fwd, fp_step)


if __name__ == "__main__":
    main()
