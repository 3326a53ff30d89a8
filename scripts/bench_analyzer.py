"""Benchmark the sensitivity analyzer against one float forward pass over the same calibration set (same run).

The analyzer costs one calibration pass per candidate uniform model plus (methods + 1) measurement passes; since
the fake-quant Linears compute their integer product exactly on int8 GEMMs (SPEC §1) a quantized pass costs about
what a float one does, and the observers that score every mixable layer add the rest (README: "Where the
analyzer's time goes"). Prints both times and the ratio: the float pass is the least of 3, the analyzer the least
of --repeat runs (the same statistic on both sides; the median run is printed too). The float pass runs under the CPU
buffer cache the analyzer runs under (mnq.cpu_buffer_cache); without it, it is printed as well: page faults on
fresh buffers make it vary per process (0.17-0.18 s or 0.32-0.42 s on vit_mnist_tiny).

    python scripts/bench_analyzer.py [--preset vit_mnist_tiny] [--batches 8] [--batch-size 64] [--threads 2]
                                     [--cpu-time] [--repeat 3] [--isolated]

The analysis is mnq.analyze's default: the paper-mode scores and plan of SPEC §7. --isolated: mnq.analyze(...,
isolated=True), the isolated scores too (each layer re-run on the full-precision input; ~15-20% more).

--cpu-time (CPU only): process CPU time instead of wall time for both, which on a shared, loaded machine excludes the
time the process waits for a core (with --threads 1 it is the work itself; with more threads their sum).
"""
import argparse
import statistics
import time

import torch

import mnq


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="vit_mnist_tiny")
    ap.add_argument("--batches", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--bits", type=int, default=8)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--cpu-time", action="store_true", help="process CPU time instead of wall time (CPU only)")
    ap.add_argument("--repeat", type=int, default=3, help="analyzer runs (the least and the median are printed)")
    ap.add_argument("--isolated", action="store_true",
                    help="analyze(isolated=True): the isolated scores too (default: the paper mode's, SPEC §7)")
    args = ap.parse_args()
    clock = time.process_time if args.cpu_time else time.perf_counter
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    fp = mnq.models.create(args.preset).eval()
    fp.to(torch.device(args.device))
    shape = {"vit_mnist_tiny": (1, 28), "swin_mnist_tiny": (1, 28), "deit_mnist_tiny_distilled": (1, 28),
             "vit_mnist_small": (1, 28)}.get(args.preset, (3, 224))
    g = torch.Generator().manual_seed(1)
    batches = [torch.randn(args.batch_size, shape[0], shape[1], shape[1], generator=g).to(args.device)
               for _ in range(args.batches)]

    def sync():
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    def float_pass():
        # the least of 3 passes: one pass of a small model is a fraction of a second, which a shared machine's
        # interruptions can double
        best = float("inf")
        with torch.no_grad():
            fp(batches[0])  # warm-up
            sync()
            for _ in range(3):
                t0 = clock()
                for x in batches:
                    fp(x)
                sync()
                best = min(best, clock() - t0)
        return best

    # The analyzer runs under the CPU buffer cache (no page faults on its activation buffers); the float pass it is
    # compared with runs under it too: without it a pass may pay a page fault per 4 KiB of every large buffer, by
    # the process's heap state (0.17-0.18 s or 0.32-0.42 s on the default setting), which would flatter the ratio.
    t_plain = float_pass()
    with mnq.cpu_buffer_cache():
        t_fp = float_pass()
    # The analyzer's least of --repeat runs, as the float pass's least of 3 (the same statistic on both sides); the
    # median too.
    runs = []
    for _ in range(max(1, args.repeat)):
        t0 = clock()
        report = mnq.analyze(fp, batches, bits=args.bits, calib_batches=args.batches, progress=False,
                             isolated=True if args.isolated else None)
        sync()
        runs.append(clock() - t0)
    t_an, t_med = min(runs), statistics.median(runs)
    print(f"{args.preset}, {args.batches} batches x {args.batch_size} images, W/A {args.bits}, device {args.device}, "
          f"threads {torch.get_num_threads()}" + (", CPU time" if args.cpu_time else ", wall time")
          + (", paper and isolated scores" if report.isolated else ", paper-mode scores (SPEC §7)"))
    print(f"  one float pass       {t_fp:8.3f} s  (least of 3, CPU buffer cache as the analyzer's)")
    print(f"    without the cache  {t_plain:8.3f} s  (page faults on fresh buffers, varies per process)")
    print(f"  analyzer             {t_an:8.3f} s  (least of {len(runs)}; median {t_med:.3f} s; "
          f"{report.calibration_passes} calibration + {report.measurement_passes} measurement passes)")
    print(f"  analyzer / float     {t_an / t_fp:8.1f} x  (median run: {t_med / t_fp:.1f} x)")


if __name__ == "__main__":
    main()
