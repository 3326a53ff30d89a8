#!/usr/bin/env bash
# Command 1 of the README: installs everything mnq needs on a fresh Debian 12 machine and builds it.
#   apt: compilers, CMake + Ninja, ccache, Catch2 (C++ tests), yaml-cpp (configs, plans), nlohmann-json (safetensors,
#        reports), CLI11 (command lines), libjpeg-turbo + zlib (data), Fashion-MNIST. (fmt and pybind11 come with
#        LibTorch's headers, which shadow Debian's: see CMakeLists.txt.)
#   pip: torch (LibTorch comes from its wheel), numpy, pytest, timm, pyyaml, safetensors, matplotlib (sensitivity
#        plots); then mnq itself (editable, built by CMake)
# CUDA kernels are built when nvcc is on PATH and torch has CUDA (MNQ_WITH_CUDA=OFF forces a CPU-only build).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends g++ cmake ninja-build ccache catch2 \
  libyaml-cpp-dev nlohmann-json3-dev libcli11-dev \
  libturbojpeg0-dev zlib1g-dev dataset-fashion-mnist >/dev/null

PY=${PYTHON:-python3}
"$PY" -m pip install -q "torch>=2.11" numpy pytest timm pyyaml safetensors matplotlib
"$PY" -m pip install -q --no-build-isolation -e .
"$PY" -c "import mnq, torch; print('mnq', mnq.__version__, 'built; torch', torch.__version__)"
