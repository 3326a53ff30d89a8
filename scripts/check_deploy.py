"""The whole-test-set equality check of mnq.deploy (issue 11): for ViT and Swin, every method and a mixed plan,
W8/W6/W4, the integer engine's logits against the fake-quant eval model's on all 10 000 Fashion-MNIST test
images: the fraction of integer logits equal bit for bit, of images with the same top-1, and the largest code
difference. tests/python/test_deploy.py runs the same comparison on 256 images.

    PYTHONPATH=python python scripts/check_deploy.py [--images 10000] [--fp-weights runs/fashion_mnist/fp/model.safetensors]

--fp-weights: full-precision weights (timm names, e.g. the main job's pretrained vit_mnist_tiny) loaded into the
ViT before calibration; without it the weights are seeded unit-scale random ones. Exits 1 when a case misses
the goals (≥ 99 % of elements, ≥ 99.9 % of top-1).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "python"))
import mnq  # noqa: E402
from deploy_util import PLANS, SWIN_MIXED, calibrated, compare, fashion_test_images  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=10000)
    ap.add_argument("--calib", type=int, default=256, help="calibration images (from the start of the test split)")
    ap.add_argument("--fp-weights", default="")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--presets", default="vit_mnist_tiny,swin_mnist_tiny")
    ap.add_argument("--plans", default=",".join(PLANS))
    ap.add_argument("--bits", default="8,6,4")
    ap.add_argument("--emulate-float32", action="store_true",
                    help="also compare with the engine's LayerNorm / I-BERT GELU outputs rounded through float32 as "
                         "the fake-quant model stores them (the diagnostic of README 'Deploy')")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    x, _ = fashion_test_images(args.images)
    calib = x[: args.calib]
    ok = True
    extra = " equal logits, float32-emulating engine |" if args.emulate_float32 else ""
    print("| model | plan | W/A | equal logits | equal top-1 | max code diff | s |" + extra)
    print("|---|---|---|---|---|---|---|" + ("---|" if extra else ""))
    for preset in args.presets.split(","):
        for plan in args.plans.split(","):
            for bits in [int(b) for b in args.bits.split(",")]:
                t0 = time.time()
                p = SWIN_MIXED if (preset.startswith("swin") and plan == "mixed") else PLANS[plan]
                model = calibrated(preset, bits, p, calib)
                if args.fp_weights and preset == "vit_mnist_tiny":
                    from safetensors.torch import load_file
                    model.train()
                    model.load_state_dict(load_file(args.fp_weights), strict=False)
                    with torch.no_grad():
                        for b in calib.split(64):
                            model(b)
                    model.freeze_alpha()
                    model.eval()
                imodel = mnq.deploy.convert(model)
                r = compare(model, imodel, x)
                emulated = ""
                if args.emulate_float32:
                    mnq._mnq.deploy_emulate_float32(True)
                    emulated = f" {100 * compare(model, imodel, x)['elements']:.3f} % |"
                    mnq._mnq.deploy_emulate_float32(False)
                good = r["elements"] >= 0.99 and r["top1"] >= 0.999
                ok &= good
                print(f"| {preset} | {plan} | {bits} | {100 * r['elements']:.3f} % | {100 * r['top1']:.2f} % | "
                      f"{r['max_diff']} | {time.time() - t0:.0f} |{emulated}{'' if good else ' MISSED'}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
