"""mnq-infer (csrc/deploy/infer_cli.cpp), the executable, on a saved integer model: --idx with --labels (top-1 /
top-5 against the engine's own logits in Python), --data (a job's data section), --images (a folder of class
sub-folders of JPEGs), --threads / --device / --batch, the progress line and images/s, and its errors."""
from __future__ import annotations

import os
import re
import struct
import subprocess
from pathlib import Path

import pytest
import torch

import mnq
from deploy_util import FASHION, PLANS, calibrated, fashion_test_images

ROOT = Path(__file__).resolve().parents[2]
EXE = ROOT / os.environ.get("MNQ_BUILD_DIR", "build/cmake") / "mnq-infer"
pytestmark = [pytest.mark.skipif(not EXE.exists(), reason=f"{EXE} is not built (scripts/test.sh builds it)"),
              pytest.mark.skipif(not FASHION.exists(), reason="Fashion-MNIST is not installed")]
N = 64
RESULT = re.compile(r"top-1 ([\d.]+) %  top-5 ([\d.]+) %  \((\d+) images\)")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    x, _ = fashion_test_images(N + 64)
    imodel = mnq.deploy.convert(calibrated("vit_mnist_tiny", 8, PLANS["mixed"], x[N:]))
    path = tmp_path_factory.mktemp("infer") / "m.safetensors"
    imodel.save(str(path))
    return imodel, path


def _run(*args, ok=True):
    out = subprocess.run([str(EXE), *map(str, args)], capture_output=True, text=True, timeout=120)
    if ok:
        assert out.returncode == 0, out.stdout + out.stderr
    return out


def _idx_files(folder: Path):
    """The first N test images and labels as raw (uncompressed) IDX files."""
    import gzip
    with gzip.open(FASHION / "t10k-images-idx3-ubyte.gz") as f:
        images = f.read()[16:16 + N * 28 * 28]
    with gzip.open(FASHION / "t10k-labels-idx1-ubyte.gz") as f:
        labels = f.read()[8:8 + N]
    img, lab = folder / "images.idx", folder / "labels.idx"
    img.write_bytes(b"\x00\x00\x08\x03" + struct.pack(">III", N, 28, 28) + images)
    lab.write_bytes(b"\x00\x00\x08\x01" + struct.pack(">I", N) + labels)
    return img, lab


def test_idx_top1_top5_equal_the_engine(model_file, tmp_path):
    imodel, path = model_file
    img, lab = _idx_files(tmp_path)
    out = _run("--model", path, "--idx", img, "--labels", lab, "--batch", 32, "--threads", 2, "--device", "cpu")
    top1, top5, n = RESULT.search(out.stdout).groups()
    assert int(n) == N and "images/s (model only" in out.stdout
    assert "[mnq-infer] 1/2 batches" in out.stderr and "[mnq-infer] 2/2 batches" in out.stderr  # progress line
    x, y = fashion_test_images(N)
    logits = imodel(x)
    ref1 = 100 * float((logits.argmax(1) == y).float().mean())
    ref5 = 100 * float((logits.topk(5, 1).indices == y[:, None]).any(1).float().mean())
    # the CLI normalises as x·(1/(255·std)) − mean/std in float32, deploy_util as (x/255 − mean)/std: an input code
    # may round the other way, so allow one image of the 64
    assert abs(float(top1) - ref1) <= 100 / N + 1e-9 and abs(float(top5) - ref5) <= 100 / N + 1e-9
    unlabelled = _run("--model", path, "--idx", img)
    assert f"{N} images (no labels: no accuracy)" in unlabelled.stdout


def test_data_section_and_image_folder(model_file, tmp_path):
    _, path = model_file
    job = tmp_path / "job.yaml"
    job.write_text(f"data: {{kind: fashion_mnist, root: {FASHION}, val_subset: {N}, eval_batch_size: 32}}\n"
                   "model: {preset: vit_mnist_tiny}\n")
    out = _run("--model", path, "--data", job)
    assert RESULT.search(out.stdout).group(3) == str(N)
    from PIL import Image
    x, y = fashion_test_images(8)
    folder = tmp_path / "imgs" / "val"
    for i in range(8):
        d = folder / f"class{int(y[i]) % 2}"
        d.mkdir(parents=True, exist_ok=True)
        raw = ((x[i, 0] * 0.3530 + 0.2860) * 255).round().clamp(0, 255).to(torch.uint8).numpy()
        Image.fromarray(raw, "L").save(d / f"{i}.jpg")
    out = _run("--model", path, "--images", folder, "--mean", 0.2860, "--std", 0.3530, "--batch", 4)
    top1, top5, n = RESULT.search(out.stdout).groups()
    assert int(n) == 8 and 0 <= float(top1) <= float(top5) <= 100


def test_errors(model_file, tmp_path):
    _, path = model_file
    out = _run("--model", path, ok=False)
    assert out.returncode != 0 and "--data, --images, --idx" in out.stderr + out.stdout
    img, _ = _idx_files(tmp_path)
    out = _run("--model", path, "--idx", img, "--device", "tpu9", ok=False)
    assert out.returncode == 1 and out.stderr.startswith("mnq-infer: error:") and out.stderr.count("\n") == 1
    if not torch.cuda.is_available():
        out = _run("--model", path, "--idx", img, "--device", "cuda", ok=False)
        assert out.returncode == 1 and "--device cuda: no CUDA device is available" in out.stderr
    out = _run("--model", tmp_path / "missing.safetensors", "--idx", img, ok=False)
    assert out.returncode == 1 and "cannot open it for reading" in out.stderr
    out = _run("--model", path, "--idx", img, "--threads", 0, ok=False)
    assert out.returncode != 0 and "--threads" in out.stderr + out.stdout
