"""``mnq.train``: a whole ``mnq-train`` job (the C++ trainer) from Python.

    results = mnq.train("configs/fashion_mnist.yaml", overrides=["train.epochs=2"])
    results = mnq.train({"model": {"preset": "vit_mnist_tiny"}, "compare": [{"name": "w8", "bits": 8, "plan": "ivit"}]})

The config is the same YAML job (a path, YAML text, or a dict); ``overrides`` are ``--set`` assignments. Returns
the results table (results.json's ``runs`` as ``rows``, its paired ``comparisons`` and per-bit-width ``summary``)
with the run folder; ``resume=True`` continues an interrupted job from its
checkpoints. Config errors raise ValueError naming the key path.
"""
from __future__ import annotations

import json
import os
from typing import Mapping, Sequence, Union

import yaml

from . import _mnq


def train(config: Union[str, os.PathLike, Mapping], *, overrides: Sequence[str] = (), resume: bool = False,
          quiet: bool = False) -> dict:
    if isinstance(config, Mapping):
        text, origin = yaml.safe_dump(dict(config), sort_keys=False), "<dict>"
    elif isinstance(config, (str, os.PathLike)) and os.path.isfile(config):
        with open(config, encoding="utf-8") as f:
            text, origin = f.read(), os.fspath(config)
    elif isinstance(config, str) and ("\n" in config or ":" in config):
        text, origin = config, "<yaml>"
    else:
        raise ValueError(f"mnq.train: config must be a dict, YAML text or an existing file, got {config!r}")
    if isinstance(overrides, str):
        overrides = [overrides]
    out = _mnq.train(text, origin, list(overrides), bool(resume), bool(quiet))
    results = json.loads(out["results_json"])
    return {"dir": out["dir"], "finished": out["finished"], "rows": results["runs"],
            "comparisons": results["comparisons"], "summary": results["summary"]}
