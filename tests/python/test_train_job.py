"""mnq.train and the mnq-train / mnq-analyze console scripts: a tiny job end to end on Fashion-MNIST subsets, the
results rows and paired comparisons, resuming a finished job, and config errors naming the key path; the shape of
mnq.bench_train's answer (no timing is asserted)."""
import json
import shutil
import subprocess
from pathlib import Path

import pytest

import mnq

DATA = Path("/usr/share/datasets/fashion-mnist")
needs_data = pytest.mark.skipif(not (DATA / "train-images-idx3-ubyte.gz").exists(),
                                reason="Debian's dataset-fashion-mnist is not installed")


def tiny_job(out):
    return {
        "data": {"batch_size": 32, "eval_batch_size": 128, "workers": 1, "train_subset": 256, "val_subset": 128},
        "model": {"preset": "vit_mnist_tiny", "pretrain": {"epochs": 1, "lr": 2e-3}},
        "quant": {"calib_batches": 2},
        "train": {"epochs": 1, "lr": 1e-4},
        "analyze": {"calib_batches": 2, "progress": False},
        "compare": [{"name": "w8_ivit", "bits": 8, "plan": "ivit"}, {"name": "w6_mixed", "bits": 6, "plan": "mixed"}],
        "output": {"dir": str(out)},
        "threads": 1,
    }


@needs_data
def test_train_job_end_to_end(tmp_path):
    result = mnq.train(tiny_job(tmp_path / "run"), quiet=True)
    assert result["finished"]
    rows = result["rows"]
    assert [r["name"] for r in rows] == ["fp", "w8_ivit", "w6_mixed"]
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["runs"] == rows
    # Paired tests on the same 128 test images: each run vs FP (one per width here, no same-width pairs).
    assert [(c["a"], c["b"]) for c in result["comparisons"]] == [("w8_ivit", "fp"), ("w6_mixed", "fp")]
    assert result["comparisons"] == saved["comparisons"]
    for c in result["comparisons"]:
        assert c["available"] and c["both_right"] + c["only_a_right"] + c["only_b_right"] + c["both_wrong"] == 128
        assert 0 < c["p"] <= c["p_holm"] <= 1
        lo, hi = c["delta_top1_ci95"]
        assert lo <= c["delta_top1"] <= hi
    assert [s["bits"] for s in result["summary"]] == [8, 6]
    assert "## Paired comparisons" in (tmp_path / "run" / "results.md").read_text()
    for r in rows:
        assert r["test_images"] == 128 and r["finished"]
        lo, hi = r["top1_ci95"]
        assert 0 <= lo <= r["top1"] <= hi <= 1
    assert (tmp_path / "run" / "results.md").exists()
    assert (tmp_path / "run" / "plans" / "mixed_w6.yaml").exists()
    again = mnq.train(tiny_job(tmp_path / "run"), resume=True, quiet=True)  # finished: nothing is redone
    assert again["rows"] == rows and again["comparisons"] == result["comparisons"]
    _check_integer_models(tmp_path / "run", rows)


@needs_data
def test_train_job_with_seeds_returns_the_pooled_results(tmp_path):
    job = tiny_job(tmp_path / "run")
    job["data"].update(train_subset=128, val_subset=64)
    job["compare"] = [{"name": "w8_ivit", "bits": 8, "plan": "ivit"}, {"name": "w8_ibert", "bits": 8, "plan": "ibert"}]
    job["seeds"] = [4, 7]
    result = mnq.train(job, quiet=True)
    assert result["finished"] and result["seeds"] == [4, 7]
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["runs"] == result["rows"] and saved["comparisons"] == result["comparisons"]
    assert [r["name"] for r in result["rows"]] == ["fp", "w8_ivit", "w8_ibert"]
    for r in result["rows"]:  # each run once per seed, from that seed's own folder
        assert [s["seed"] for s in r["per_seed"]] == [4, 7] and r["seeds_done"] == 2
        per_seed = json.loads((tmp_path / "run" / f"seed{7}" / "results.json").read_text())["runs"]
        assert r["per_seed"][1]["top1"] == next(x["top1"] for x in per_seed if x["name"] == r["name"])
        tops = [s["top1"] for s in r["per_seed"]]
        assert r["mean_top1"] == pytest.approx(sum(tops) / 2) and r["min_top1"] == min(tops)
    pairs = {(c["a"], c["b"]) for c in result["comparisons"]}
    assert {("w8_ivit", "w8_ibert"), ("w8_ibert", "w8_ivit")} & pairs  # the same-width pair, pooled over seeds
    for c in result["comparisons"]:
        assert c["seeds"] == [4, 7] and len(c["delta_top1_per_seed"]) == 2 and 0 < c["p"] <= c["p_holm"] <= 1
    assert "pooled over seeds" in (tmp_path / "run" / "results.md").read_text()
    again = mnq.train(job, resume=True, quiet=True)  # finished: the pooled results are read back, nothing redone
    assert again["rows"] == result["rows"] and again["comparisons"] == result["comparisons"]


def _check_integer_models(run, rows):
    """Every QAT run exported its integer model and evaluated it next to the fake-quant model; a resume skips an
    export made from the same weights and redoes one whose weights differ."""
    assert "integer" not in rows[0]  # FP
    for r in rows[1:]:
        m = r["integer"]
        assert m["test_images"] == 128 and len(m["weights_hash"]) == 16
        # the engine computes the fake-quant model's integer logits (README "Deploy": a few float32 roundings)
        assert m["top1_agree"] >= 0.99 and m["equal_logits"] >= 0.95 and m["equal_images"] >= 0.9
        assert abs(m["top1"] - r["top1"]) <= 0.02
        imodel = mnq.deploy.load(run / r["name"] / "model.int.safetensors")
        assert imodel.bits == r["bits"]
        assert json.loads((run / r["name"] / "model.int.json").read_text()) == m
    assert "Integer models" in (run / "results.md").read_text()
    doc = run / "w8_ivit" / "model.int.json"
    stale = json.loads(doc.read_text())
    stale["weights_hash"], stale["top1"] = "0" * 16, 0.0  # as if exported from other weights
    doc.write_text(json.dumps(stale))
    model_file = run / "w8_ivit" / "model.int.safetensors"
    model_file.write_bytes(b"stale")
    again = mnq.train(tiny_job(run), resume=True, quiet=True)
    assert again["rows"] == rows and model_file.read_bytes()[:8] != b"stale"
    mnq.deploy.load(model_file)


def test_train_config_errors_name_the_key(tmp_path):
    job = tiny_job(tmp_path / "run")
    job["train"]["epochz"] = 1
    with pytest.raises(ValueError, match=r"train\.epochz: unknown key"):
        mnq.train(job)
    with pytest.raises(ValueError, match=r"compare\.0\.bits: must be in 2\.\.16"):
        mnq.train(tiny_job(tmp_path / "run"), overrides=["compare.0.bits=1"])
    with pytest.raises(ValueError, match="existing file"):
        mnq.train("no_such_job.yaml")


@pytest.mark.skipif(shutil.which("mnq-train") is None, reason="console scripts not installed (pip install -e .)")
def test_console_scripts_list_every_key():
    out = subprocess.run(["mnq-train", "--help"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0
    assert "train.epochs (int)" in out.stdout and "analyze.calib_batches (int)" in out.stdout
    out = subprocess.run(["mnq-analyze", "--config", "/nonexistent.yaml"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 2 and "cannot read" in out.stderr


def test_bench_train_rows():
    r = mnq.bench_train(batch=8, steps=1, warmup=0, methods=["ivit"], data="synthetic", loader_images=32)
    assert [(row["kind"], row["method"]) for row in r["rows"]] == [
        ("train", "fp"), ("eval", "fp"), ("train", "ivit"), ("eval", "ivit"), ("loader", "synthetic")]
    for row in r["rows"]:
        assert row["img_s"] > 0 and row["img_cpu_s"] > 0
        assert (row["vs_fp"] is None) == (row["kind"] == "loader")
        assert (row["host_reads"] is None) == (row["kind"] == "loader")
    # the FP step (forward, cross-entropy, backward, C++ AdamW) and the FP eval forward read nothing back
    assert r["rows"][0]["host_reads"] == 0 and r["rows"][1]["host_reads"] == 0
    assert all(row["host_reads"] >= 0 for row in r["rows"][2:4]) and "host reads" in r["table"]
    assert r["rows"][0]["vs_fp"] == 1.0 and "QAT W8 ivit train step" in r["table"]
    with pytest.raises(ValueError, match="unknown method 'nope'"):
        mnq.bench_train(methods=["nope"])
    with pytest.raises(ValueError, match="data must be"):
        mnq.bench_train(data="imagenet")
