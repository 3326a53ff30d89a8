"""Where an analyzer run spends its op time, call by call: record every mnq op call of one `mnq.analyze` run
(a TorchDispatchMode sees the calls the C++ models make through the dispatcher), then replay each distinct call
(op, input shapes, per-tensor or per-channel scales, bits, residual) from its recorded arguments and time it
against a float multiply-add over the same input (`x + a·x`, one pass over the tensor: the bench_ops baseline of
quantize / requant). Prints the groups by their share of the replayed time (count × least time per call).

bench_ops.py times each op on fixed shapes; this shows the shapes, scale layouts and multipliers a real model
gives them (it found per-tensor requants of 50-column attention scores at 4x, weight quantizers at 17-20x and a
16 -> 16-bit residual requant at ~3x that the bench rows did not show; docs/PERFORMANCE.md, 2026-12-07).

    python scripts/bench_analyzer_calls.py [--preset vit_mnist_tiny] [--batches 2] [--batch-size 64] [--top 25]
"""
import argparse
import collections
import time

import torch
from torch.utils._python_dispatch import TorchDispatchMode

import mnq


def least_time(fn, reps=10):
    best = float("inf")
    for _ in range(reps):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


def describe(arg):
    if isinstance(arg, torch.Tensor):
        return "x".join(map(str, arg.shape)) or "scalar"
    return repr(arg)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="vit_mnist_tiny")
    ap.add_argument("--batches", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--bits", type=int, default=8)
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    fp = mnq.models.create(args.preset).eval()
    g = torch.Generator().manual_seed(1)
    batches = [torch.randn(args.batch_size, 1, 28, 28, generator=g) for _ in range(args.batches)]

    groups = collections.OrderedDict()  # key -> [count, first recorded args]

    class Record(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if func.namespace == "mnq":
                key = (str(func.overloadpacket.__name__),) + tuple(describe(a) for a in args)
                entry = groups.get(key)
                if entry is None:
                    saved = tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in args)
                    groups[key] = [1, func, saved, kwargs or {}]
                else:
                    entry[0] += 1
            return out

    with Record():
        mnq.analyze(fp, batches, bits=args.bits, calib_batches=args.batches, progress=False)

    rows = []
    for key, (count, func, saved, kwargs) in groups.items():
        x = next((a for a in saved if isinstance(a, torch.Tensor) and a.is_floating_point() and a.numel() > 0), None)
        t_op = least_time(lambda: func(*saved, **kwargs))
        t_madd = least_time(lambda: torch.add(x, x, alpha=0.5)) if x is not None else float("nan")
        rows.append((count * t_op, count, t_op, t_madd, key))
    total = sum(r[0] for r in rows)
    rows.sort(key=lambda r: -r[0])
    print(f"{args.preset}, {args.batches} batches x {args.batch_size} images, W/A {args.bits}, 1 thread, CPU time; "
          f"{len(rows)} distinct calls, {sum(r[1] for r in rows)} calls, replayed op time {total * 1e3:.1f} ms")
    print(f"{'share':>6} {'calls':>6} {'ms/call':>8} {'x madd':>7}  op(args)")
    for share_t, count, t_op, t_madd, key in rows[:args.top]:
        ratio = t_op / t_madd if t_madd == t_madd and t_madd > 0 else float("nan")
        print(f"{100 * share_t / total:5.1f}% {count:6d} {t_op * 1e3:8.3f} {ratio:7.1f}  {key[0]}({', '.join(key[1:])})")


if __name__ == "__main__":
    main()
