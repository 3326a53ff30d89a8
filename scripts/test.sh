#!/usr/bin/env bash
# Command 2 of the README: rebuilds incrementally (a no-op after scripts/setup.sh), then runs the whole suite:
# Catch2 C++ tests and the CUDA simulator through CTest (built here: `pip install` alone builds no tests), then
# pytest. CUDA tests skip on machines without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
BUILD=${MNQ_BUILD_DIR:-build/cmake}
"$PY" -m pip install -q --no-build-isolation --no-deps -e .
cmake -S . -B "$BUILD" -DMNQ_BUILD_TESTS=ON >/dev/null
cmake --build "$BUILD"
ctest --test-dir "$BUILD" --output-on-failure
"$PY" -m pytest -q tests/python "$@"
