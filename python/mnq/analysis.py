"""``mnq.analyze``: the C++ sensitivity analyzer (SPEC §7) on a full-precision C++ model and calibration batches.

    fp = mnq.models.create("vit_mnist_tiny")                 # or any preset; load trained weights into it:
    fp.load_state_dict(timm_model.state_dict(), strict=False)
    report = mnq.analyze(fp, loader, bits=8)                  # loader: a DataLoader, a list of batches, ...
    plan = mnq.Plan(report.plan)                               # -> mnq.quantize(timm_model, plan, 8)
    print(report.summary()); report.write_csv("report.csv")

For each candidate method the analyzer builds the uniformly quantized model, calibrates it on the batches, runs it
beside the full-precision model and scores every mixable layer: ΔSQNR = SQNR_out − SQNR_in (paper mode) and, fed
the full-precision input, its output SQNR (isolated mode). The plan gives each layer its best method (``mode``
picks the ranking). Memory does not grow with the number of batches; batches are read once per pass
(methods calibration passes + methods + 1 measurement passes), so they must give the same images every time.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Optional

import torch
import yaml

from . import _mnq

AnalysisReport = _mnq.AnalysisReport
SearchResult = _mnq.SearchResult


class _Batches:
    """batch(i) over a sequence (random access) or a re-iterable (restarted when i does not follow the last)."""

    def __init__(self, batches, limit: int):
        self.batches = batches
        self.random_access = isinstance(batches, Sequence) or isinstance(batches, torch.Tensor)
        if hasattr(batches, "__len__"):
            self.count = min(limit, len(batches))
        else:  # count what the first pass gives, up to the limit
            self.count = sum(1 for _, _b in zip(range(limit), iter(batches)))
        self._it = None
        self._next = 0

    @staticmethod
    def _images(item) -> torch.Tensor:
        x = item[0] if isinstance(item, (tuple, list)) else item
        if not isinstance(x, torch.Tensor):
            raise ValueError(f"mnq.analyze: a batch must be a tensor of images or an (images, labels) pair, got "
                             f"{type(x).__name__}")
        return x.float()

    def __call__(self, i: int) -> torch.Tensor:
        if self.random_access:
            return self._images(self.batches[i])
        if self._it is None or i != self._next:
            self._it, self._next = iter(self.batches), 0
            if self._it is self.batches:
                raise ValueError("mnq.analyze: batches must be re-iterable (a list, a DataLoader, ...), not a "
                                 "one-shot iterator: the analyzer reads them once per pass")
        while self._next <= i:
            try:
                item = next(self._it)
            except StopIteration:
                raise ValueError(f"mnq.analyze: the batches ended at {self._next} on a later pass (they gave "
                                 f"{self.count} on the first): they must give the same batches every time") from None
            self._next += 1
        return self._images(item)


def analyze(model, batches: Iterable, bits: int = 8, *, softmax: Optional[Sequence[str]] = None,
            gelu: Optional[Sequence[str]] = None, layernorm: Optional[Sequence[str]] = None,
            calib_batches: int = 30, mode: str = "paper", progress: bool = True,
            isolated: Optional[bool] = None) -> AnalysisReport:
    """Analyze full-precision ``model`` (from :func:`mnq.models.create` with ``bits=None``) at W/A ``bits`` on the
    first ``calib_batches`` of ``batches`` (images, or (images, labels) pairs, on the model's device).

    ``softmax`` / ``gelu`` / ``layernorm``: the candidate methods per op type (default: SPEC §7's: ivit, ibert,
    fqvit; GELU ivit, ibert). ``mode``: ``paper`` (argmax ΔSQNR) or ``isolated`` picks ``report.plan`` (the plan
    search: :func:`search_plan`). ``isolated``: also score the isolated mode (each candidate re-run on the
    full-precision input; ~15-20% of the analysis) — ``None`` (default): when ``mode`` is ``isolated``; ``True``:
    always (``report.plan_isolated``, ``disagreements()``, the isolated columns; :func:`search_plan` needs such a
    report); ``False``: never (mode ``paper`` only). Without it the report holds SPEC §7's paper-mode scores: every
    isolated value is NaN, ``plan_isolated`` is empty, ``report.isolated`` is False. Raises ValueError naming the
    setting on bad arguments.

    Pins full FP32 for the whole process first (TF32 off in cuBLAS and cuDNN, float32 matmul precision
    "highest"), so the plan does not depend on the GPU it was measured on; it is not restored afterwards.
    """
    if isinstance(bits, bool) or not isinstance(bits, int):
        raise ValueError(f"mnq.analyze: bits must be an int in [2, 16], got {bits!r}")
    if isinstance(calib_batches, bool) or not isinstance(calib_batches, int) or calib_batches < 1:
        raise ValueError(f"mnq.analyze: calib_batches must be a positive int, got {calib_batches!r}")
    if mode == "searched":
        raise ValueError("mnq.analyze: mode 'searched' needs held-out batches: call mnq.search_plan(model, batches, "
                         "holdout, bits) (its .plan is the searched plan)")
    if isolated is not None and not isinstance(isolated, bool):
        raise ValueError(f"mnq.analyze: isolated must be None, True or False, got {isolated!r}")
    cfg = _config(calib_batches, mode, progress, softmax, gelu, layernorm)
    cfg["isolated"] = "auto" if isolated is None else str(isolated).lower()
    source = _Batches(batches, calib_batches)
    if source.count == 0:
        raise ValueError("mnq.analyze: no calibration batches given")
    return _mnq.analyze(model, source, source.count, bits, yaml.safe_dump(cfg))


def cpu_buffer_cache():
    """Context manager: while it is open, freed CPU tensors of 256 KiB and more are kept and handed out again for a
    request of the same size (csrc/analysis/buffer_cache.h; the allocator :func:`analyze` and :func:`search_plan`
    run under). A loop of forwards over same-shaped batches then touches no fresh memory pages: glibc otherwise
    returns such blocks to the kernel on free, and each later batch pays a page fault per 4 KiB, by heap state
    from process to process (vit_mnist_tiny, 8 batches of 64, 1 thread: a float pass of 0.17-0.18 s or
    0.32-0.42 s CPU time). Values do not depend on it. The cache holds at most 1 GiB of free blocks and is emptied
    when the last open scope ends. ::

        with mnq.cpu_buffer_cache():
            for x in batches:
                model(x)
    """
    return _mnq.CpuBufferCache()


def search_plan(model, batches: Iterable, holdout: Iterable, bits: int = 8, *,
                report: Optional[AnalysisReport] = None, calib_batches: int = 30, holdout_batches: int = 8,
                evaluations: int = 40, softmax: Optional[Sequence[str]] = None,
                gelu: Optional[Sequence[str]] = None, layernorm: Optional[Sequence[str]] = None,
                progress: bool = True) -> SearchResult:
    """The plan search (``analyze.mode: searched`` of the command line; csrc/analysis/search.h) on full-precision
    ``model``: starting from every uniform plan and the analyzer's ΔSQNR and isolated plans, it changes one layer's
    method at a time and keeps a change when the post-training-quantized model's KL to the FP outputs on the
    ``holdout`` images falls. Each candidate plan is calibrated on the first ``calib_batches`` of ``batches`` and
    scored on the first ``holdout_batches`` of ``holdout`` (images the calibration did not see); at most
    ``evaluations`` plans are scored, start plans included. The result is never worse on that objective than a start
    plan. ``report``: the analyzer's report of the same model, bits and batches (from :func:`analyze`), else the
    analyzer runs first. Returns a SearchResult (``plan``, ``score``, ``starts``, ``trajectory``, ``summary()``,
    ``write_json(path)``)."""
    if isinstance(bits, bool) or not isinstance(bits, int):
        raise ValueError(f"mnq.search_plan: bits must be an int in [2, 16], got {bits!r}")
    for name, value in (("calib_batches", calib_batches), ("holdout_batches", holdout_batches),
                        ("evaluations", evaluations)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"mnq.search_plan: {name} must be a positive int, got {value!r}")
    if report is not None and not isinstance(report, AnalysisReport):
        raise ValueError(f"mnq.search_plan: report must be an AnalysisReport from mnq.analyze, got "
                         f"{type(report).__name__}")
    cfg = _config(calib_batches, "searched", progress, softmax, gelu, layernorm)
    cfg.update(search_evaluations=evaluations, search_holdout_batches=holdout_batches)
    source = _Batches(batches, calib_batches)
    if source.count == 0:
        raise ValueError("mnq.search_plan: no calibration batches given")
    held = _Batches(holdout, holdout_batches)
    if held.count == 0:
        raise ValueError("mnq.search_plan: no held-out batches given")
    return _mnq.search_plan(model, source, source.count, held, held.count, bits, yaml.safe_dump(cfg), report)


def _config(calib_batches, mode, progress, softmax, gelu, layernorm) -> dict:
    cfg = {"calib_batches": calib_batches, "mode": mode, "progress": bool(progress)}
    for key, value in (("softmax", softmax), ("gelu", gelu), ("layernorm", layernorm)):
        if value is not None:
            cfg[key] = [value] if isinstance(value, str) else list(value)
    return cfg
