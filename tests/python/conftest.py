"""Fixtures of the Python tests. Shared helpers (requires_cuda, INT_DTYPES, sqnr_db, ...) are in helpers.py."""
import pytest
import torch

import mnq  # noqa: F401  (registers torch.ops.mnq)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
