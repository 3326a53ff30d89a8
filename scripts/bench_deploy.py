"""Benchmark (not a test): FP32 timm eval vs the fake-quant eval model vs the integer engine (mnq.deploy), CPU,
1 and 2 threads, vit_mnist_tiny batch 256 and deit_tiny_patch16_224 batch 8 (random weights: no downloads), plus
the engine's time per op type and the weight bytes; the engine with its fused CPU paths off (the unfused program,
csrc/deploy/int_fused.h) in the same run, for before/after.

    PYTHONPATH=python python scripts/bench_deploy.py [--repeat 20] [--json out.json] [--plan ivit|ibert|fqvit|mixed]
                                                     [--cpu-time]
    PYTHONPATH=python python scripts/bench_deploy.py --device cuda [--batch 256] [--json out.json]

--device cuda (scripts/gpu_check.sh's deploy stage): vit_mnist_tiny and swin_mnist_tiny, mixed plans (every
method), converted on the CPU and moved with .to("cuda"); the CUDA integer logits must equal the CPU engine's bit
for bit on 3 batches (exit status 1 otherwise), then FP32 and FP16 timm eval and the integer engine are timed on
the device (median, CUDA synchronized) and one integer forward's device synchronizations are counted
(torch.profiler: cudaStreamSynchronize / cudaDeviceSynchronize / cudaEventSynchronize, and host reads).

Each number is the median of --repeat timed forwards after 3 warm-up forwards, same process, same inputs; the
machine may be shared, so run it on a quiet machine for numbers to quote (the script prints the load average).
Goal (issue 11): integer engine ≤ 0.75× the FP32 eval time; weights ≤ 0.3× the FP32 bytes.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "python"))
import mnq  # noqa: E402
from deploy_util import SWIN_MIXED, unit_scale_init  # noqa: E402

CASES = [("vit_mnist_tiny", 256), ("deit_tiny_patch16_224", 8)]
DEVICE_CASES = ["vit_mnist_tiny", "swin_mnist_tiny"]
TIMM_KW = {"vit_mnist_tiny": dict(img_size=28, patch_size=4, in_chans=1, num_classes=10, embed_dim=64, depth=4,
                                  num_heads=4),
           "swin_mnist_tiny": dict(img_size=28, patch_size=2, in_chans=1, num_classes=10, embed_dim=32, depths=(2, 2),
                                   num_heads=(2, 4), window_size=7)}
MIXED = {"all": "ivit", "softmax": "ibert", "blocks.0.norm1": "fqvit", "blocks.1.mlp.gelu": "ibert", "norm": "ibert"}


def timm_model(preset: str) -> torch.nn.Module:
    import timm
    from timm.models.swin_transformer import SwinTransformer
    from timm.models.vision_transformer import VisionTransformer
    torch.manual_seed(0)
    if preset in TIMM_KW:
        return (SwinTransformer if preset.startswith("swin") else VisionTransformer)(**TIMM_KW[preset]).eval()
    return timm.create_model(preset, pretrained=False).eval()


def images_for(fp: torch.nn.Module, batch: int, seed: int = 1) -> torch.Tensor:
    size = fp.patch_embed.img_size
    return torch.randn(batch, fp.patch_embed.proj.in_channels, size[0], size[1],
                       generator=torch.Generator().manual_seed(seed))


def calibrated_model(preset: str, bits: int, plan, x: torch.Tensor):
    """The fake-quant C++ model with seeded unit-scale random weights, calibrated on x twice, α frozen, in eval."""
    q = mnq.models.create(preset, bits=bits, plan=plan)
    unit_scale_init(q)
    with torch.no_grad():
        for _ in range(2):
            q(x)
    q.freeze_alpha()
    return q.eval()


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


SYNC_EVENTS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize")


def device_syncs(fn, device: str) -> int:
    """Device synchronizations of one call of fn: on CUDA the runtime's syncs (each copy to or from pageable host
    memory and each host read waits on one; at least 1 when torch.cuda's sync debug mode sees one the profiler did
    not list), elsewhere the host reads (mnq.profiling.count_host_reads' events)."""
    from torch.profiler import ProfilerActivity, profile
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith("cuda") else [])
    with profile(activities=activities) as prof:
        fn()
    syncs = sum(1 for e in prof.events() if e.name in SYNC_EVENTS)
    reads = sum(1 for e in prof.events() if e.name == "aten::_local_scalar_dense")
    counted = syncs if syncs else reads
    if device.startswith("cuda") and counted == 0:  # cross-check: torch's sync debug mode raises at the first sync
        torch.cuda.set_sync_debug_mode("error")
        try:
            fn()
        except RuntimeError:
            counted = 1
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return counted


def timed_on(device: str, fn, x: torch.Tensor, repeat: int) -> float:
    """Median seconds of fn(x) on `device` (CUDA: synchronized before and after each call)."""
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def call(inp):
        sync()
        fn(inp)
        sync()
    return timed(call, x, repeat)


def device_row(preset: str, device: str, batch: int, repeat: int, checks: int = 3) -> dict:
    """One preset on `device` (issue 11's CUDA check): the model converted on the CPU and moved; its integer
    logits against the CPU engine's on `checks` batches; FP32 / FP16 timm eval and the integer engine timed."""
    fp = timm_model(preset)
    x = images_for(fp, batch)
    q = calibrated_model(preset, 8, SWIN_MIXED if preset.startswith("swin") else MIXED, x)
    imodel = mnq.deploy.convert(q)
    batches = [images_for(fp, batch, seed=10 + i) for i in range(checks)]
    with torch.no_grad():
        cpu_out = [imodel.forward_int(b) for b in batches]
    imodel.to(device)
    equal = 0
    with torch.no_grad():
        for b, (q_cpu, s_cpu) in zip(batches, cpu_out):
            q_dev, s_dev = imodel.forward_int(b.to(device))
            same = q_dev.dtype == q_cpu.dtype and torch.equal(q_dev.cpu(), q_cpu) and torch.equal(s_dev.cpu(), s_cpu)
            equal += int(same)
    xd = x.to(device)
    fp32 = fp.to(device)
    fp16 = copy.deepcopy(fp).half()
    t_fp32 = timed_on(device, fp32, xd, repeat)
    t_fp16 = timed_on(device, fp16, xd.half(), repeat)
    t_int = timed_on(device, imodel.forward_int, xd, repeat)
    with torch.no_grad():
        syncs = device_syncs(lambda: imodel.forward_int(xd), device)
    return dict(model=preset, device=device, batch=batch, equal_batches=equal, checked_batches=checks,
                fp32_ms=1e3 * t_fp32, fp16_ms=1e3 * t_fp16, integer_ms=1e3 * t_int, integer_vs_fp32=t_int / t_fp32,
                integer_vs_fp16=t_int / t_fp16, syncs_per_forward=syncs)


def device_main(args) -> int:
    print(f"device {args.device} ({torch.cuda.get_device_name() if args.device.startswith('cuda') else 'cpu'}), "
          f"torch {torch.__version__}, mixed plans W8, batch {args.batch}", flush=True)
    rows = [device_row(preset, args.device, args.batch, args.repeat) for preset in DEVICE_CASES]
    print("\n| model | device | batch | integer == CPU engine | FP32 eval ms | FP16 eval ms | integer ms | "
          "int / FP32 | int / FP16 | syncs per forward |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['device']} | {r['batch']} | {r['equal_batches']}/{r['checked_batches']} batches | "
              f"{r['fp32_ms']:.2f} | {r['fp16_ms']:.2f} | {r['integer_ms']:.2f} | {r['integer_vs_fp32']:.2f}× | "
              f"{r['integer_vs_fp16']:.2f}× | {r['syncs_per_forward']} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 0 if all(r["equal_batches"] == r["checked_batches"] for r in rows) else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--plan", default="mixed", choices=["ivit", "ibert", "fqvit", "mixed"])
    ap.add_argument("--bits", type=int, default=8)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--json", default="")
    ap.add_argument("--cpu-time", action="store_true",
                    help="time with process CPU time instead of wall time (a shared machine; one thread)")
    ap.add_argument("--device", default="cpu",
                    help="cpu: the CPU benchmark above; cuda: the CUDA check (CUDA vs CPU engine, FP32 / FP16 eval)")
    ap.add_argument("--batch", type=int, default=256, help="--device cuda: the batch size")
    args = ap.parse_args()
    if args.device != "cpu":
        return device_main(args)
    if args.cpu_time:
        global CLOCK
        CLOCK = time.process_time
    plan = MIXED if args.plan == "mixed" else args.plan
    print(f"load average {os.getloadavg()}, {os.cpu_count()} CPUs, torch {torch.__version__}, plan {args.plan}, "
          f"W/A {args.bits}, {'CPU' if args.cpu_time else 'wall'} time", flush=True)
    rows, profiles = [], {}
    for preset, batch in CASES:
        fp = timm_model(preset)
        x = images_for(fp, batch)
        q = calibrated_model(preset, args.bits, plan, x)
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
