#!/usr/bin/env bash
# One prepared GPU check for a lent GPU machine (torch + nvcc + cmake + ninja + pytest there; no Catch2):
# builds mnq with CUDA for the local GPU, runs the whole Python suite (CUDA == CPU bit-exactness tests included),
# then the op benchmarks on CPU and CUDA, and prints the table. Run from the repository root:
#   bash scripts/gpu_check.sh 2>&1 | tee $OUT/gpu_check.log
# The C++ libraries the model/analyzer/trainer code needs (yaml-cpp, CLI11, fmt, ...) are not on the GPU machine:
# run scripts/gpu_deps.sh here first and carry `.gpu_deps` with the run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
ARCH=$("$PY" -c 'import torch; p = torch.cuda.get_device_capability(); print(f"{p[0]}.{p[1]}")')
echo "== GPU: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader), arch $ARCH, torch $("$PY" -c 'import torch; print(torch.__version__)')"
PREFIX="$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)')"
DEPS="$PWD/.gpu_deps/root"
if [ -d "$DEPS" ]; then
  PREFIX="$PREFIX;$DEPS/usr"
  export LD_LIBRARY_PATH="$DEPS/usr/lib/x86_64-linux-gnu:$DEPS/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
cmake -S . -B build/gpu -G Ninja -DCMAKE_PREFIX_PATH="$PREFIX" \
  -DMNQ_WITH_CUDA=ON -DMNQ_BUILD_TESTS=ON -DTORCH_CUDA_ARCH_LIST="$ARCH" >/dev/null
time ninja -C build/gpu
SUFFIX=$("$PY" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')
cp build/gpu/libmnq_ops.so "python/mnq/_mnq_ops$SUFFIX"
cp "build/gpu/_mnq$SUFFIX" "python/mnq/_mnq$SUFFIX"
export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
echo "== tests"
ctest --test-dir build/gpu --output-on-failure
"$PY" -m pytest -q -x tests/python -p no:cacheprovider
echo "== benchmarks"
"$PY" scripts/bench_ops.py --device all --threads "${THREADS:-16}"
"$PY" scripts/bench_models.py --device cuda --models vit_mnist_tiny,deit_tiny_patch16_224,swin_tiny_patch4_window7_224
"$PY" scripts/bench_analyzer.py --device cuda --preset deit_tiny_patch16_224 --batches 4 --batch-size 32
"$PY" scripts/bench_train.py --device cuda --batch 256 --data synthetic --workers 4  # no Fashion-MNIST there
"$PY" scripts/bench_train.py --device cuda --preset deit_tiny_patch16_224 --batch 64 --data synthetic --workers 8 \
  --loader-images 4000
