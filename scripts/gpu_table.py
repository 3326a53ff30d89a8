"""The one table scripts/gpu_check.sh ends with, from the files its stages left in one folder:

- ``stages.tsv``: a line per stage, ``name<TAB>pass|fail|timeout|skip<TAB>seconds<TAB>note``;
- ``bench_ops.json`` (scripts/bench_ops.py --json): per device and op, ms and GB/s, and the CUDA copy baseline;
- ``bench_train.json`` (scripts/bench_train.py --json) and ``bench_models.json`` (scripts/bench_models.py --json):
  the host reads of one training step per model and method;
- ``bench_deploy.json`` (scripts/bench_deploy.py --device cuda --json): per model, the CUDA integer engine against
  the CPU engine (bit-exact batches), its time against FP32 / FP16 eval and its device syncs per forward.

A missing or unreadable file gives a row saying so; the table is always printed. Markdown on stdout:

    python scripts/gpu_table.py DIR
"""
import json
import sys
from pathlib import Path


def _load(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def stage_rows(folder: Path):
    rows = []
    try:
        lines = (folder / "stages.tsv").read_text().splitlines()
    except OSError:
        return [("stage", "(none)", "n/a", "stages.tsv missing")]
    for line in lines:
        name, status, seconds, note = (line.split("\t") + ["", "", ""])[:4]
        rows.append(("stage", name, status, f"{seconds} s" + (f"; {note}" if note else "")))
    return rows


def op_rows(ops):
    if not ops:
        return [("ops", "bench_ops", "n/a", "no bench_ops.json")]
    copy = next((r["int_gbs"] for r in ops if r["device"] == "cuda" and r["op"] == "copy"), None)
    rows = []
    if copy is not None:
        rows.append(("ops", "copy (baseline)", "cuda", f"{copy:.0f} GB/s device-to-device (64 MB)"))
    by_op = {}
    for r in ops:
        if r["op"] != "copy":
            by_op.setdefault(r["op"], {})[r["device"]] = r
    for op, d in by_op.items():
        parts = []
        for dev in ("cpu", "cuda"):
            if dev in d:
                r = d[dev]
                parts.append(f"{dev} {r['int_ms']:.3f} ms ({r['shape']}, {r['int_gbs']:.1f} GB/s)")
        if "cuda" in d and copy:
            parts.append(f"cuda at {100 * d['cuda']['int_gbs'] / copy:.0f}% of copy")
        if "cuda" in d and "qat_ms" in d["cuda"]:
            parts.append(f"cuda qat {d['cuda']['qat_ms']:.3f} ms")
        rows.append(("ops", op, "/".join(k for k in ("cpu", "cuda") if k in d), "; ".join(parts)))
    return rows


def read_rows(train, models):
    rows = []
    if train and train.get("rows"):
        for r in train["rows"]:
            if r.get("host_reads") is not None:
                rows.append(("host reads", f"bench_train {train['preset']} {r['name']}", str(r["host_reads"]),
                             f"per {'step' if r['kind'] == 'train' else 'eval forward'}, device {train['device']}"))
    else:
        rows.append(("host reads", "bench_train", "n/a", "no bench_train.json"))
    if models:
        for r in models:
            rows.append(("host reads", f"bench_models {r['model']} {r['variant']}", str(r["reads_step"]),
                         f"per fwd+bwd step ({r['reads_fwd']} per eval forward), step {r['step_ms']:.2f} ms"))
    else:
        rows.append(("host reads", "bench_models", "n/a", "no bench_models.json"))
    return rows


def deploy_rows(rows):
    if not rows:
        return [("deploy", "bench_deploy", "n/a", "no bench_deploy.json")]
    out = []
    for r in rows:
        same = r["equal_batches"] == r["checked_batches"]
        out.append(("deploy", f"{r['model']} b{r['batch']} {r['device']}",
                    "bit-exact" if same else f"DIFFERS ({r['equal_batches']}/{r['checked_batches']} batches equal)",
                    f"integer {r['integer_ms']:.2f} ms, FP32 {r['fp32_ms']:.2f} ms, FP16 {r['fp16_ms']:.2f} ms "
                    f"({r['integer_vs_fp32']:.2f}× FP32, {r['integer_vs_fp16']:.2f}× FP16); "
                    f"{r['syncs_per_forward']} device syncs per forward"))
    return out


def _section(name, make):
    try:
        return make()
    except (KeyError, TypeError, ValueError, AttributeError) as e:  # a file of another shape: say so, go on
        return [(name, "(unreadable)", "n/a", f"{type(e).__name__}: {e}")]


def table(folder: Path) -> str:
    rows = _section("stage", lambda: stage_rows(folder))
    rows += _section("ops", lambda: op_rows(_load(folder / "bench_ops.json")))
    rows += _section("host reads", lambda: read_rows(_load(folder / "bench_train.json"),
                                                     _load(folder / "bench_models.json")))
    rows += _section("deploy", lambda: deploy_rows(_load(folder / "bench_deploy.json")))
    out = ["| section | what | result | numbers |", "|---|---|---|---|"]
    out += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(out)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(table(Path(sys.argv[1])))
