#!/usr/bin/env bash
# Command 2 of the README: rebuilds incrementally (a no-op after scripts/setup.sh), then runs the whole suite:
# Catch2 C++ tests through CTest, then pytest. CUDA tests skip on machines without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -m pip install -q --no-build-isolation --no-deps -e .
ctest --test-dir build/cmake --output-on-failure
"$PY" -m pytest -q tests/python "$@"
