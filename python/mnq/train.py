"""``mnq.train``: a whole ``mnq-train`` job (the C++ trainer) from Python.

    results = mnq.train("configs/fashion_mnist.yaml", overrides=["train.epochs=2"])
    results = mnq.train({"model": {"preset": "vit_mnist_tiny"}, "compare": [{"name": "w8", "bits": 8, "plan": "ivit"}]})

The config is the same YAML job (a path, YAML text, or a dict); ``overrides`` are ``--set`` assignments. Returns
the results table (results.json's ``runs`` as ``rows``, its paired ``comparisons`` and per-bit-width ``summary``)
with the run folder; a job with ``seeds`` returns the pooled results (``rows``: each run per seed with mean and
spread, ``comparisons``: the stratified tests over seeds, ``seeds``); ``resume=True`` continues an interrupted (even killed) job from its checkpoints to the same
results.json and weights as an uninterrupted run, and raises RuntimeError naming the checkpoint and field when the
job changed what a stage was trained for (model, bits, plan) or a checkpoint's progress is inconsistent. A
diverging stage (a non-finite loss, or one above 10·ln(classes)) raises RuntimeError saying so, with its last good
checkpoint kept. A file that cannot be written is an OSError. Config errors raise ValueError naming the key path. A job pins full FP32 for the whole process (TF32 off in cuBLAS and cuDNN, float32
matmul precision "highest"), so its runs do not depend on the GPU, and says so in train.log.

Under torchrun (``WORLD_SIZE`` set) the job runs data-parallel on torchrun's processes, as ``mnq-train`` does
(mnq.distributed.init_from_env; every rank returns the same results, rank 0 alone writes the run folder).

``bench_train`` runs the trainer's benchmark (``mnq-bench-train``, csrc/jobs/bench.h): images/s of the FP and QAT
training steps and evaluation on one random batch, and of the data loader (see scripts/bench_train.py).
"""
from __future__ import annotations

import json
import os
from typing import Mapping, Sequence, Union

import yaml

from . import _mnq, distributed


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
    # Under torchrun: join its process group (data-parallel job); a restart by its agent resumes by itself.
    distributed.init_from_env()
    resume = resume or distributed.restarted()
    out = _mnq.train(text, origin, list(overrides), bool(resume), bool(quiet))
    results = json.loads(out["results_json"])
    return {"dir": out["dir"], "finished": out["finished"], "rows": results["runs"],
            "comparisons": results["comparisons"], "summary": results["summary"], "seeds": results.get("seeds")}


def bench_train(*, preset: str = "vit_mnist_tiny", batch: int = 128, steps: int = 10, warmup: int = 2, bits: int = 8,
                methods: Sequence[str] = ("ivit", "ibert", "fqvit"), device: str = "cpu", data: str = "fashion_mnist",
                fashion_root: str = "", image_folder: str = "", img_size: int = 224, workers: int = 1,
                loader_images: int = 20000) -> dict:
    """The trainer's benchmark in this process (torch's thread setting applies). Returns ``preset``, ``batch``,
    ``steps``, ``bits``, ``device``, ``threads``, ``rows`` (``name``, ``kind`` train|eval|loader, ``method``,
    ``img_s``, ``img_cpu_s``, ``vs_fp``: img/s over the FP row of the same kind, ``host_reads``: tensor values read
    back to the host in one more step or eval forward; both None for loader rows) and
    ``table`` (mnq-bench-train's text). Bad options raise ValueError."""
    o = _mnq.BenchOptions()
    o.preset, o.batch, o.steps, o.warmup, o.bits = preset, int(batch), int(steps), int(warmup), int(bits)
    o.methods = [methods] if isinstance(methods, str) else list(methods)
    o.device, o.data, o.fashion_root, o.image_folder = device, data, fashion_root, image_folder
    o.img_size, o.workers, o.loader_images = int(img_size), int(workers), int(loader_images)
    return _mnq.bench_train(o)
