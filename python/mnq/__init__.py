"""mnq: mixed non-linear quantization for Vision Transformers.

Importing mnq loads the C++/CUDA op library, which registers ``torch.ops.mnq.*``, then the extension module
``mnq._mnq`` (pybind11 bindings of the C++ models, see ``mnq.models.create``).
"""
from importlib.machinery import EXTENSION_SUFFIXES as _EXTENSION_SUFFIXES
from pathlib import Path as _Path

import torch as _torch


def _load_library() -> str:
    here = _Path(__file__).resolve().parent
    found = [here / ("_mnq_ops" + suffix) for suffix in _EXTENSION_SUFFIXES]
    found = [p for p in found if p.exists()]
    if not found:
        raise ImportError(
            f"mnq: the op library _mnq_ops*.so is missing from {here}; build it with "
            "`pip install --no-build-isolation -e .` from the repository root"
        )
    _torch.ops.load_library(str(found[0]))
    return str(found[0])


library_path = _load_library()

try:  # the C++ library's bindings (models, analyzer, trainer); built and placed next to _mnq_ops by setup.py
    from . import _mnq  # noqa: E402
except ImportError as e:
    raise ImportError(f"mnq: the extension module _mnq*.so is missing or broken in {_Path(__file__).parent} ({e}); "
                      "build it with `pip install --no-build-isolation -e .` from the repository root") from e

from . import deploy, models, nn, ops, profiling, reference  # noqa: E402
from .plan import Plan  # noqa: E402
from .quantize import calibrate, quantize  # noqa: E402
from .analysis import AnalysisReport, analyze  # noqa: E402
from .train import bench_train, train  # noqa: E402

__all__ = ["deploy", "models", "nn", "ops", "profiling", "reference", "library_path", "Plan", "quantize", "calibrate", "analyze",
           "AnalysisReport", "train", "bench_train"]
__version__ = "0.1.0"
