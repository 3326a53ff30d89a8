"""scripts/plot_sensitivity.py: reads the analyzer's report.json (non-finite values as strings) and draws the PNG."""
import importlib.util
import json
import math
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "plot_sensitivity.py"


def _module():
    spec = importlib.util.spec_from_file_location("plot_sensitivity", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _report(tmp_path):
    # the layout Report::write_json writes (csrc/analysis/report.cpp)
    def scores(delta, iso):
        return {"sqnr_in": 30.0, "sqnr_out": 30.0 + delta if isinstance(delta, float) else delta,
                "delta_sqnr": delta, "isolated_sqnr_in": 40.0, "isolated_sqnr_out": iso}

    report = {
        "preset": "vit_mnist_tiny", "bits": 8, "mode": "paper", "batches": 2, "images": 16,
        "calibration_passes": 3, "measurement_passes": 4, "seconds": 1.0,
        "layers": [
            {"layer": "blocks.0.norm1", "op_type": "layernorm", "chosen": "ibert", "margin": 3.5,
             "chosen_isolated": "ibert", "margin_isolated": 1.0,
             "methods": {"ivit": scores(-5.0, 20.0), "ibert": scores(-1.5, 35.0), "fqvit": scores("-inf", "nan")}},
            {"layer": "blocks.0.mlp.gelu", "op_type": "gelu", "chosen": "ivit", "margin": "inf",
             "chosen_isolated": "ibert", "margin_isolated": 0.5,
             "methods": {"ivit": scores("inf", 30.0), "ibert": scores(-2.0, 30.5)}},
        ],
        "plan": "blocks.0.norm1: ibert\nblocks.0.mlp.gelu: ivit\n", "disagreements": ["blocks.0.mlp.gelu"],
    }
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    return path


def test_load_report_reads_non_finite_strings(tmp_path):
    report, layers = _module().load_report(_report(tmp_path))
    assert report["preset"] == "vit_mnist_tiny"
    assert [layer["name"] for layer in layers] == ["blocks.0.norm1", "blocks.0.mlp.gelu"]
    assert layers[0]["methods"]["fqvit"]["delta"] == -math.inf
    assert math.isnan(layers[0]["methods"]["fqvit"]["iso_out"])
    assert layers[1]["methods"]["ivit"]["delta"] == math.inf
    assert layers[1]["chosen_isolated"] == "ibert"


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    mod = _module()
    report, layers = mod.load_report(_report(tmp_path))
    out = tmp_path / "sensitivity.png"
    mod.plot(report, layers, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _png_height(path):
    return int.from_bytes(Path(path).read_bytes()[20:24], "big")  # IHDR: width, height


def test_plot_of_a_paper_mode_report_has_one_panel(tmp_path):
    """A report without the isolated scores (analyze.isolated; its isolated values "nan") plots the ΔSQNR panel
    alone; one with them, both panels."""
    pytest.importorskip("matplotlib")
    mod = _module()
    path = _report(tmp_path)
    full = json.loads(path.read_text())
    paper = dict(full, isolated=False, layers=[dict(layer, chosen_isolated="", margin_isolated="nan", methods={
        m: dict(s, isolated_sqnr_in="nan", isolated_sqnr_out="nan") for m, s in layer["methods"].items()})
        for layer in full["layers"]])
    heights = []
    for name, data in (("full", dict(full, isolated=True)), ("paper", paper)):
        src = tmp_path / f"{name}.json"
        src.write_text(json.dumps(data))
        report, layers = mod.load_report(src)
        mod.plot(report, layers, tmp_path / f"{name}.png")
        heights.append(_png_height(tmp_path / f"{name}.png"))
    assert heights[1] < 0.7 * heights[0], heights


def _search(tmp_path):
    # the layout SearchResult::write_json writes (csrc/analysis/search.cpp)
    steps = [(1, "start", "uniform ivit", 0.30, True, 0.30), (2, "start", "uniform ibert", 0.20, True, 0.20),
             (3, "start", "paper (ΔSQNR)", "inf", False, 0.20), (4, "move", "norm: ibert → ivit", 0.15, True, 0.15),
             (5, "move", "norm: ivit → fqvit", 0.18, False, 0.15)]
    search = {"objective": "kl_fp", "score": 0.15, "start": "uniform ibert", "evaluations": 5,
              "starts": [{"plan": "uniform ivit", "score": 0.30}], "holdout_images": 64, "seconds": 2.0,
              "plan": {"norm": "ivit"},
              "trajectory": [{"evaluation": e, "kind": k, "label": lab, "score": v, "accepted": a, "best": b}
                             for e, k, lab, v, a, b in steps]}
    path = tmp_path / "search.json"
    path.write_text(json.dumps(search))
    return path


def test_search_trajectory_loads_and_plots(tmp_path):
    mod = _module()
    search, steps = mod.load_search(_search(tmp_path))
    assert [s[0] for s in steps] == [1, 2, 3, 4, 5]
    assert steps[2][3] == math.inf
    assert [s[5] for s in steps] == [0.30, 0.20, 0.20, 0.15, 0.15]
    pytest.importorskip("matplotlib")
    out = tmp_path / "search.png"
    mod.plot_search(search, steps, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
