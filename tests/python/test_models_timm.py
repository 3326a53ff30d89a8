"""The C++ ViT / DeiT / Swin against timm. timm lives in Python, the model in C++: this test exports random-init timm
weights with scripts/export_timm.py, writes timm's input/output (and parameter shapes) to files, and runs the
hidden ``[timm]`` Catch2 tests of ``mnq_model_tests`` on them (tests/cpp/models/test_vit.cpp, test_swin.cpp), which compare."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

timm = pytest.importorskip("timm")
st = pytest.importorskip("safetensors.torch")

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("MNQ_BUILD_DIR", ROOT / "build" / "cmake")) / "tests" / "cpp" / "mnq_model_tests"
pytestmark = pytest.mark.skipif(not BIN.exists(), reason=f"{BIN} not built (MNQ_BUILD_TESTS=OFF?)")

FP_TEST = "the FP model equals timm's forward on the same weights"
SWIN_FP_TEST = "the FP Swin equals timm's forward on the same weights"
SHAPES_TEST = "every timm-named preset has timm's parameter names and shapes"
TIMM_PRESETS = [
    "vit_small_patch16_224", "vit_base_patch16_224", "deit_tiny_patch16_224", "deit_small_patch16_224",
    "deit_base_patch16_224", "deit_tiny_distilled_patch16_224", "deit_small_distilled_patch16_224",
    "deit_base_distilled_patch16_224", "swin_tiny_patch4_window7_224", "swin_small_patch4_window7_224",
]


def _export_timm():
    spec = importlib.util.spec_from_file_location("export_timm", ROOT / "scripts" / "export_timm.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _run_catch(test_name: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN), test_name], env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.parametrize("preset", ["vit_mnist_tiny", "deit_mnist_tiny_distilled", "deit_tiny_patch16_224",
                                    "swin_mnist_tiny"])
def test_fp_forward_matches_timm(preset, tmp_path):
    weights = tmp_path / "weights.safetensors"
    subprocess.run([sys.executable, str(ROOT / "scripts" / "export_timm.py"), "--model", preset, "--seed", "3",
                    "--out", str(weights)], check=True, capture_output=True)
    model = _export_timm().build_model(preset, seed=0)
    model.load_state_dict(st.load_file(str(weights)), strict=True)  # exactly the exported weights
    exporter = _export_timm()
    c, h, w = (1, 28, 28) if preset in exporter.MNQ_PRESETS else model.pretrained_cfg["input_size"]
    x = torch.randn(2, c, h, w, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        io = {"input": x, "features": model.forward_features(x), "output": model(x)}
    st.save_file(io, str(tmp_path / "io.safetensors"))
    env = {"MNQ_TIMM_PRESET": preset, "MNQ_TIMM_WEIGHTS": str(weights), "MNQ_TIMM_IO": str(tmp_path / "io.safetensors")}
    test = SWIN_FP_TEST if preset.startswith("swin") else FP_TEST
    r = _run_catch(test, env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 test case" in r.stdout, r.stdout  # the hidden test ran (a name typo would run nothing)

    # the comparison is live: timm's output moved by 1e-2 must fail it
    io["output"] = io["output"] + 1e-2
    st.save_file(io, str(tmp_path / "io.safetensors"))
    assert _run_catch(test, env).returncode != 0


def test_presets_have_timm_parameter_shapes(tmp_path):
    shapes = {}
    for name in TIMM_PRESETS:
        with torch.device("meta"):  # shapes only: no memory, no initialisation
            m = timm.create_model(name, pretrained=False)
        shapes[name] = {k: list(p.shape) for k, p in m.named_parameters()}
    (tmp_path / "shapes.json").write_text(json.dumps(shapes))
    r = _run_catch(SHAPES_TEST, {"MNQ_TIMM_SHAPES": str(tmp_path / "shapes.json")})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 test case" in r.stdout, r.stdout
