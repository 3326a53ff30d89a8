"""mnq: mixed non-linear quantization for Vision Transformers.

Importing mnq loads the C++/CUDA op library, which registers ``torch.ops.mnq.*``, then the extension module
``mnq._mnq`` (pybind11 bindings of the C++ models, see ``mnq.models.create``).
"""
from pathlib import Path as _Path

import torch as _torch


def _load_library() -> str:
    """Loads libmnq_ops.so from the package folder (setup.py places every library of the build there)."""
    path = _Path(__file__).resolve().parent / "libmnq_ops.so"
    if not path.exists():
        raise ImportError(
            f"mnq: the op library libmnq_ops.so is missing from {path.parent}; build it with "
            "`pip install --no-build-isolation -e .` from the repository root"
        )
    _torch.ops.load_library(str(path))
    return str(path)


library_path = _load_library()

try:  # the C++ library's bindings (models, analyzer, trainer); placed next to libmnq_ops.so by setup.py
    from . import _mnq  # noqa: E402
except ImportError as e:
    raise ImportError(f"mnq: the extension module _mnq*.so is missing or broken in {_Path(__file__).parent} ({e}); "
                      "build it with `pip install --no-build-isolation -e .` from the repository root") from e

from . import deploy, distributed, models, nn, ops, profiling, reference  # noqa: E402
from .plan import Plan  # noqa: E402
from .quantize import calibrate, quantize  # noqa: E402
from .analysis import AnalysisReport, SearchResult, analyze, cpu_buffer_cache, search_plan  # noqa: E402
from .models import frozen_weights  # noqa: E402
from .train import bench_train, train  # noqa: E402

__all__ = ["deploy", "distributed", "models", "nn", "ops", "profiling", "reference", "library_path", "Plan",
           "quantize", "calibrate", "analyze", "AnalysisReport", "search_plan", "SearchResult", "cpu_buffer_cache",
           "frozen_weights", "train", "bench_train"]
__version__ = "0.1.0"
