"""I-BERT GELU with a per-channel scale vs float GELU, CPU, one thread: least-of-N process (CPU) time per call.

    python scripts/bench_ibert_gelu_channel.py [--reps 30] [--base 2e-4,2e-6] [--batch 8,1]

Scales S_c = base·(0.5 + U[0, 1)) per channel of [B, 197, 1536] (the fc1 accumulator's S_a·S_w[c]); the input is
round(N(0, 1.5²)/S_c) as int32 (ops.ibert_gelu) and those codes times S_c as float32 (ops.ibert_gelu_qat). Prints
each op's time and its ratio to torch.nn.functional.gelu on the float32 input.
"""
import argparse
import time

import torch
import torch.nn.functional as F

from mnq import ops


def cpu_time(fn, reps):
    fn()
    best = float("inf")
    for _ in range(reps):
        t0 = time.process_time_ns()
        fn()
        best = min(best, time.process_time_ns() - t0)
    return best / 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--base", default="2e-4,2e-6")
    ap.add_argument("--batch", default="8,1")
    a = ap.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    for base in (float(v) for v in a.base.split(",")):
        s = base * (0.5 + torch.rand(1536, generator=g, dtype=torch.float64))
        for b in (int(v) for v in a.batch.split(",")):
            q = torch.round(torch.randn(b, 197, 1536, generator=g, dtype=torch.float64) * 1.5 / s)
            qi, xf = q.to(torch.int32), (q * s).float()
            tf = cpu_time(lambda: F.gelu(xf), a.reps)
            ti = cpu_time(lambda: ops.ibert_gelu(qi, s), a.reps)
            tq = cpu_time(lambda: ops.ibert_gelu_qat(xf, s), a.reps)
            print(f"S=({base:g})·(0.5+U) [{b},197,1536]: gelu {tf:.3f} ms  int {ti:.3f} ms ({ti / tf:.2f}x)  "
                  f"qat {tq:.3f} ms ({tq / tf:.2f}x)", flush=True)


if __name__ == "__main__":
    main()
