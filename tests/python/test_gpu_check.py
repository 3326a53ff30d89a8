"""scripts/gpu_check.sh without a GPU: its stage bookkeeping (pass, failure, timeout, no time left) on fake stages,
its table (scripts/gpu_table.py) from fake stage and benchmark files, and a dry run of the whole script."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import gpu_table  # noqa: E402


def _stages(tmp_path, body):
    """Runs `body` after sourcing gpu_stages.sh with a fresh log folder; returns (stages.tsv rows, FAILED)."""
    script = (f'LOGS={tmp_path}; BUDGET=60; START=$SECONDS; TABLE_RESERVE=5; DRY=0; FAILED=0; : >"$LOGS/stages.tsv"\n'
              f"source scripts/gpu_stages.sh\n{body}\necho FAILED=$FAILED")
    out = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    rows = [line.split("\t") for line in (tmp_path / "stages.tsv").read_text().splitlines()]
    return rows, int(out.stdout.strip().splitlines()[-1].split("=")[1])


def test_stages_record_pass_fail_timeout_and_no_time(tmp_path):
    rows, failed = _stages(tmp_path, 'stage ok 20 "echo hello"\nstage bad 20 "exit 3"\nstage slow 1 "sleep 30"\n'
                                     "START=$((SECONDS - 1000))\nstage late 20 true")
    assert [(r[0], r[1]) for r in rows] == [("ok", "pass"), ("bad", "fail"), ("slow", "timeout"), ("late", "fail")]
    assert "exit status 3" in rows[1][3] and "1 s limit" in rows[2][3] and "budget is spent" in rows[3][3]
    assert int(rows[2][2]) < 10  # stopped by the timeout, not after the 30 s sleep
    assert (tmp_path / "ok.log").read_text() == "hello\n"
    assert failed == 1


def test_stages_all_passing_or_skipped_do_not_fail(tmp_path):
    rows, failed = _stages(tmp_path, 'stage a 20 true\nrecord memcheck skip 0 "not installed"')
    assert [(r[0], r[1]) for r in rows] == [("a", "pass"), ("memcheck", "skip")]
    assert failed == 0


def _fake_outputs(folder: Path):
    (folder / "stages.tsv").write_text("build\tpass\t120\t\nmemcheck\tfail\t30\texit status 1\n")
    (folder / "bench_ops.json").write_text(json.dumps([
        {"device": "cpu", "op": "shiftmax", "shape": "2x6x197x197", "int_ms": 2.0, "qat_ms": 3.0, "int_gbs": 3.7},
        {"device": "cuda", "op": "copy", "shape": "64 MB", "int_ms": 0.05, "int_gbs": 2800.0},
        {"device": "cuda", "op": "shiftmax", "shape": "96x6x197x197", "int_ms": 0.2, "qat_ms": 0.3,
         "int_gbs": 700.0}]))
    (folder / "bench_train.json").write_text(json.dumps({"preset": "vit_mnist_tiny", "device": "cuda", "rows": [
        {"name": "QAT W8 ivit train step", "kind": "train", "host_reads": 0},
        {"name": "QAT W8 ivit eval", "kind": "eval", "host_reads": 2},
        {"name": "loader synthetic (4 workers)", "kind": "loader", "host_reads": None}]}))
    (folder / "bench_models.json").write_text(json.dumps([
        {"model": "vit_mnist_tiny", "variant": "py ivit", "step_ms": 4.5, "reads_fwd": 1, "reads_step": 7}]))
    (folder / "bench_deploy.json").write_text(json.dumps([
        {"model": "vit_mnist_tiny", "device": "cuda", "batch": 256, "equal_batches": 3, "checked_batches": 3,
         "fp32_ms": 2.0, "fp16_ms": 1.0, "integer_ms": 1.5, "integer_vs_fp32": 0.75, "integer_vs_fp16": 1.5,
         "syncs_per_forward": 0},
        {"model": "swin_mnist_tiny", "device": "cuda", "batch": 256, "equal_batches": 2, "checked_batches": 3,
         "fp32_ms": 4.0, "fp16_ms": 2.0, "integer_ms": 6.0, "integer_vs_fp32": 1.5, "integer_vs_fp16": 3.0,
         "syncs_per_forward": 12}]))


def test_table_from_fake_outputs(tmp_path):
    _fake_outputs(tmp_path)
    lines = gpu_table.table(tmp_path).splitlines()
    assert lines[0] == "| section | what | result | numbers |"
    assert "| stage | build | pass | 120 s |" in lines
    assert "| stage | memcheck | fail | 30 s; exit status 1 |" in lines
    shiftmax = next(line for line in lines if "| ops | shiftmax |" in line)
    assert "cpu 2.000 ms" in shiftmax and "cuda 0.200 ms" in shiftmax and "cuda at 25% of copy" in shiftmax
    assert any("copy (baseline)" in line and "2800 GB/s" in line for line in lines)
    assert "| host reads | bench_train vit_mnist_tiny QAT W8 ivit train step | 0 | per step, device cuda |" in lines
    assert any("QAT W8 ivit eval | 2 | per eval forward" in line for line in lines)
    assert not any("loader" in line for line in lines)
    assert any("bench_models vit_mnist_tiny py ivit | 7 |" in line for line in lines)
    assert ("| deploy | vit_mnist_tiny b256 cuda | bit-exact | integer 1.50 ms, FP32 2.00 ms, FP16 1.00 ms "
            "(0.75× FP32, 1.50× FP16); 0 device syncs per forward |") in lines
    assert any(line.startswith("| deploy | swin_mnist_tiny b256 cuda | DIFFERS (2/3 batches equal) |")
               and "12 device syncs" in line for line in lines)


def test_table_says_what_is_missing_or_unreadable(tmp_path):
    (tmp_path / "bench_ops.json").write_text(json.dumps([{"device": "cuda"}]))  # no "op": another shape
    lines = gpu_table.table(tmp_path).splitlines()
    assert "| stage | (none) | n/a | stages.tsv missing |" in lines
    assert any(line.startswith("| ops | (unreadable) | n/a | KeyError") for line in lines)
    assert "| host reads | bench_train | n/a | no bench_train.json |" in lines
    assert "| deploy | bench_deploy | n/a | no bench_deploy.json |" in lines


def _dry_run(tmp_path, **env):
    env = {**os.environ, "GPU_CHECK_DRY_RUN": "1", "GPU_CHECK_LOGS": str(tmp_path), "GPU_CHECK_SANITIZER": "true",
           **env}
    return subprocess.run(["bash", "scripts/gpu_check.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def test_dry_run_runs_every_stage_and_prints_one_table(tmp_path):
    out = _dry_run(tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    table = out.stdout[out.stdout.index("| section |"):]
    stages = ["build", "ctest", "pytest-cuda", "launch-blocking", "dist-nccl", "deploy", "memcheck", "racecheck",
              "synccheck", "bench-ops",
              "bench-train", "bench-models"]
    assert [line.split(" | ")[1] for line in table.splitlines() if line.startswith("| stage |")] == stages
    assert "PYTORCH_NO_CUDA_MEMORY_CACHING=1 true --tool memcheck --error-exitcode 1" in out.stdout
    assert "CUDA_LAUNCH_BLOCKING=1" in out.stdout
    assert (tmp_path / "table.md").read_text().strip() == table.strip()


def test_dry_run_without_time_left_fails(tmp_path):
    out = _dry_run(tmp_path, GPU_CHECK_BUDGET="25")
    assert out.returncode == 1
    assert "budget is spent" in (tmp_path / "stages.tsv").read_text()
