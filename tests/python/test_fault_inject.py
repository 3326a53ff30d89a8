"""Crash consistency (scripts/fault_inject.py): a small job (FP pretraining, the analyzer, two QAT runs with
checkpoints) killed with SIGKILL at a sample of the write/rename points of its files and resumed with --resume ends
with results.json, plans and weights byte-identical to an uninterrupted run, and no temporary file left. The script
runs every point; this runs a few spread over the job, including the first one after the analyzer's plans (which
resumed to other results when the analyzer's random draws leaked into the first QAT run)."""
import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "fault_inject.py"
spec = importlib.util.spec_from_file_location("fault_inject", SCRIPT)
fi = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fi)

needs_data = pytest.mark.skipif(not (fi.DATA / "train-images-idx3-ubyte.gz").exists(),
                                reason="Debian's dataset-fashion-mnist is not installed")
SAMPLE = 3  # + the point after the plans: ~10 s each on a 2-core machine


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    work = tmp_path_factory.mktemp("fault")
    ref, points = fi.reference(work)
    return work, ref, points


@needs_data
def test_reference_run_lists_its_fault_points(reference):
    work, ref, points = reference
    kinds = [k for _, k, _ in points]
    assert len(points) % 3 == 0 and kinds[:3] == ["open", "write", "rename"]
    assert [n for n, _, _ in points] == list(range(1, len(points) + 1))
    files = {p for _, _, p in points}
    for f in ("config.yaml", "results.json", "plans/mixed_w6.yaml", "fp/checkpoint.safetensors",
              "w6_mixed/checkpoint.safetensors", "w8_ibert/best.safetensors", "w8_ibert/model.safetensors",
              "w6_mixed/model.int.safetensors", "w8_ibert/model.int.json"):
        assert f in files
    # two QAT runs × 2 epochs: a checkpoint each epoch
    assert sum(p == "w8_ibert/checkpoint.safetensors" and k == "rename" for _, k, p in points) == 2
    runs = json.loads((ref / "results.json").read_text())["runs"]
    assert [r["name"] for r in runs] == ["fp", "w6_mixed", "w8_ibert"] and all(r["finished"] for r in runs)
    assert "wall_s" not in runs[0]  # results.json holds what the seed determines (wall times: results.md)
    assert all("top1" in r["integer"] for r in runs[1:])  # each QAT run's integer model
    assert fi.compare(ref, ref) == []


@needs_data
@pytest.mark.parametrize("index", range(SAMPLE + 1))
def test_killed_and_resumed_job_ends_with_the_same_bytes(reference, index):
    work, ref, points = reference
    todo = fi.sample(points, SAMPLE)
    if index >= len(todo):
        pytest.skip("fewer sampled points")
    assert fi.check_point(work, ref, todo[index]) == []


@needs_data
def test_compare_notices_a_changed_weight_and_a_stale_temporary_file(reference, tmp_path):
    work, ref, _ = reference
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(ref, copy)
    raw = bytearray((copy / "w8_ibert/model.safetensors").read_bytes())
    raw[-1] ^= 1
    (copy / "w8_ibert/model.safetensors").write_bytes(bytes(raw))
    (copy / "fp/.checkpoint.safetensors.tmp123").write_bytes(b"")
    problems = fi.compare(ref, copy)
    assert "w8_ibert/model.safetensors differs" in problems
    assert "temporary file left: fp/.checkpoint.safetensors.tmp123" in problems
