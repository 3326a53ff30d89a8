"""The layers of csrc/ (docs/ARCHITECTURE.md): which folder may include which, read from the #include lines.

The libraries above the ops stack without cycles: analysis, train and deploy are plain libraries (train uses
deploy's integer engine for a finished run; none of the three includes analysis or the jobs), and jobs/ (job
configs, datasets from config, the command lines) sits above them. The pybind11 files (*/bindings.cpp) form the
top layer and may include anything; deploy/infer_cli.cpp is mnq-infer's command line (it reads a job's data
section).
"""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OPS = {"kernels", "csrc", "ops", "cpu", "cuda", "autograd"}  # the op library ("csrc": csrc/*.h, registry.cpp)
ALLOWED = {
    "kernels": set(),
    "csrc": OPS, "ops": OPS, "cpu": OPS, "cuda": OPS, "autograd": OPS,
    "dist": set(),
    "util": set(),
    "config": {"util"},
    "nn": OPS | {"dist", "util"},
    "models": OPS | {"nn", "dist", "util", "config"},
    "data": {"util", "config"},
    "analysis": OPS | {"nn", "models", "dist", "util", "config"},
    "deploy": OPS | {"nn", "models", "dist", "util", "config"},
    "train": OPS | {"nn", "models", "dist", "util", "config", "data", "deploy"},
    "jobs": OPS | {"nn", "models", "dist", "util", "config", "data", "analysis", "train", "deploy"},
}
TOP = {"bindings.cpp", "infer_cli.cpp"}  # the Python module's files and mnq-infer's command line


def layer(path):
    parts = Path(path).parts
    return parts[0] if parts[0] == "kernels" or len(parts) == 2 else parts[1]


def includes():
    """{folder: {included folder: [files]}} over csrc/ and kernels/, the top-layer files left out."""
    out = {}
    for path in sorted(list(ROOT.glob("csrc/**/*")) + list(ROOT.glob("kernels/**/*"))):
        if path.suffix not in (".h", ".cpp", ".cu", ".cuh") or path.name in TOP:
            continue
        rel = path.relative_to(ROOT)
        for inc in re.findall(r'#include "((?:csrc|kernels)/[^"]+)"', path.read_text()):
            out.setdefault(layer(rel), {}).setdefault(layer(inc), []).append(str(rel))
    return out


def test_every_folder_includes_only_the_layers_below_it():
    graph = includes()
    assert set(graph) <= set(ALLOWED), f"folders not in the layer table: {sorted(set(graph) - set(ALLOWED))}"
    wrong = [f"{src} includes {dst} ({', '.join(files)})" for src, deps in graph.items() for dst, files in deps.items()
             if dst != src and dst not in ALLOWED[src]]
    assert not wrong, "\n".join(wrong)


def test_the_folders_above_the_ops_form_no_cycle():
    graph = {src: {d for d in deps if d != src} - OPS for src, deps in includes().items() if src not in OPS}
    state = {}

    def visit(node, path):
        if state.get(node) == "done":
            return
        assert state.get(node) != "open", "include cycle: " + " -> ".join(path + [node])
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            visit(nxt, path + [node])
        state[node] = "done"

    for node in sorted(graph):
        visit(node, [])


def test_the_raw_op_backends_are_internal_to_csrc_ops():
    """One public C++ op API (STYLE rule 17): code outside csrc/ops/ calls the ops through csrc/ops.h's dispatcher
    handles (autograd, Meta kernels, the device's backend), never csrc/ops/backend.h's raw functions."""
    sources = [p for top in ("csrc", "kernels", "tests") for p in sorted((ROOT / top).glob("**/*"))
               if p.suffix in (".h", ".cpp", ".cu", ".cuh")]
    users = [str(p.relative_to(ROOT)) for p in sources if p.parent != ROOT / "csrc" / "ops"
             and '#include "csrc/ops/backend.h"' in p.read_text(errors="replace")]
    assert not users, f"the raw op backends included outside csrc/ops/: {users}"
    lookups = [str(p.relative_to(ROOT)) for p in sorted(ROOT.glob("csrc/**/*"))
               if p.suffix in (".h", ".cpp") and p.parent.name not in ("ops", "autograd") and p.name != "ops.h"
               and "op_handle<" in p.read_text(errors="replace")]
    assert not lookups, f"dispatcher lookups of mnq ops outside csrc/ops.h (call its handles instead): {lookups}"
