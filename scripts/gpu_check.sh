#!/usr/bin/env bash
# One prepared GPU check for a lent GPU machine (torch + nvcc + cmake + ninja + pytest there; no Catch2). Stages:
#   build            mnq with CUDA for the local GPU (Catch2 tests included), modules copied into python/mnq
#   ctest            the C++ suite (CUDA trainer test included)
#   pytest-cuda      the Python CUDA tests (CUDA == CPU bit-exactness of every op; `-k cuda`)
#   launch-blocking  the Python CUDA tests and the C++ [cuda] tests again with CUDA_LAUNCH_BLOCKING=1 (an error
#                    surfaces at the launch that caused it)
#   dist-nccl        a world-size-1 data-parallel job under torchrun (process group cpu:gloo,cuda:nccl, the GPU
#                    from LOCAL_RANK): a tiny Fashion-MNIST job (pretrain, calibrate, QAT, results) on the GPU
#   deploy           the integer engine (mnq.deploy) on CUDA: vit_mnist_tiny and swin_mnist_tiny converted on the CPU,
#                    moved to the GPU, integer logits equal to the CPU engine's bit for bit (else the stage fails),
#                    timed against FP32 and FP16 eval, device syncs per forward (scripts/bench_deploy.py --device cuda)
#   memcheck, racecheck, synccheck
#                    a short CUDA pytest subset under compute-sanitizer (skipped when it is not installed)
#   bench-ops, bench-train, bench-models
#                    CPU vs CUDA op timings and GB/s against a device-to-device copy, host reads per step
# then prints ONE markdown table (scripts/gpu_table.py): each stage's pass/fail/timeout/skip and time, the op
# timings, and the host reads per training step. Every stage runs under `timeout` within a budget for the whole
# script (GPU_CHECK_BUDGET seconds, default 560: a device command may run 600 s; the caps below add up to more,
# so on a slow machine the last stages get what is left or nothing), and the script goes on after a failing stage;
# it exits non-zero when any stage failed, timed out or had no time left. A second run on the same machine reuses
# build/gpu (the build stage then takes seconds). Run from the repository root:
#   bash scripts/gpu_check.sh 2>&1 | tee $OUT/gpu_check.log
# The C++ libraries the model/analyzer/trainer code needs (yaml-cpp, CLI11, fmt, ...) are not on the GPU machine:
# run scripts/gpu_deps.sh here first and carry `.gpu_deps` with the run.
# Environment: PYTHON (python3), THREADS (16, CPU op benchmarks), GPU_CHECK_BUDGET (560), GPU_CHECK_LOGS
# (build/gpu_check: one log per stage, stages.tsv, the benchmarks' JSON, table.md), GPU_CHECK_SANITIZE_TESTS (the
# pytest files run under compute-sanitizer), GPU_CHECK_SANITIZER (its path; default: found on PATH or in
# $CUDA_HOME/bin, empty: skip those stages), GPU_CHECK_MODELS (bench_models' presets), GPU_CHECK_FULL=1 (also the
# analyzer benchmark and a DeiT-Tiny trainer benchmark), GPU_CHECK_DRY_RUN=1 (print each stage's command instead
# of running it: checks this script's bookkeeping and table on a machine without a GPU).
set -u
cd "$(dirname "$0")/.."
export PY=${PYTHON:-python3}
BUDGET=${GPU_CHECK_BUDGET:-560}
LOGS=${GPU_CHECK_LOGS:-build/gpu_check}
DRY=${GPU_CHECK_DRY_RUN:-0}
# one test file per kernel family: softmax (warp reductions), LayerNorm (per-channel constants), quantizers
SAN_TESTS=${GPU_CHECK_SANITIZE_TESTS:-tests/python/test_shiftmax.py tests/python/test_ilayernorm.py \
tests/python/test_quant.py}
MODELS=${GPU_CHECK_MODELS:-vit_mnist_tiny,swin_mnist_tiny,deit_tiny_patch16_224}
TABLE_RESERVE=20  # seconds kept for the table at the end
START=$SECONDS
FAILED=0
rm -rf "$LOGS" && mkdir -p "$LOGS"
: >"$LOGS/stages.tsv"

source scripts/gpu_stages.sh  # record, stage

if [[ $DRY != 1 ]]; then
  echo "== GPU: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>&1 | head -1)," \
    "torch $("$PY" -c 'import torch; print(torch.__version__)' 2>&1 | tail -1)"
fi

# The build's environment, exported for the stages.
PREFIX="$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null)"
DEPS="$PWD/.gpu_deps/root"
if [ -d "$DEPS" ]; then
  PREFIX="$PREFIX;$DEPS/usr"
  LD_LIBRARY_PATH="$DEPS/usr/lib/x86_64-linux-gnu:$DEPS/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export LD_LIBRARY_PATH
fi
export PREFIX
export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
CUDA_TESTS="$PY -m pytest -q tests/python -k cuda -p no:cacheprovider"
SANITIZER=${GPU_CHECK_SANITIZER-$(command -v compute-sanitizer ||
  ls "${CUDA_HOME:-/usr/local/cuda}/bin/compute-sanitizer" 2>/dev/null)}

stage build 300 '
  set -e
  ARCH=$("$PY" -c "import torch; p = torch.cuda.get_device_capability(); print(f\"{p[0]}.{p[1]}\")")
  echo "arch $ARCH"
  cmake -S . -B build/gpu -G Ninja -DCMAKE_PREFIX_PATH="$PREFIX" -DMNQ_WITH_CUDA=ON -DMNQ_BUILD_TESTS=ON \
    -DTORCH_CUDA_ARCH_LIST="$ARCH" >/dev/null
  ninja -C build/gpu
  SUFFIX=$("$PY" -c "import sysconfig; print(sysconfig.get_config_var(\"EXT_SUFFIX\"))")
  cp build/gpu/libmnq_*.so python/mnq/
  cp "build/gpu/_mnq$SUFFIX" "python/mnq/_mnq$SUFFIX"'
stage ctest 120 'ctest --test-dir build/gpu --output-on-failure -j 4'
stage pytest-cuda 90 "$CUDA_TESTS"
stage launch-blocking 90 "export CUDA_LAUNCH_BLOCKING=1; $CUDA_TESTS && build/gpu/tests/cpp/mnq_model_tests '[cuda]' \
  && build/gpu/tests/cpp/mnq_train_tests '[cuda]'"
# A tiny job, written where the logs go: 512 training images, 1 FP epoch, one W8 I-ViT run.
DIST_JOB="$LOGS/dist_nccl.yaml"
cat >"$DIST_JOB" <<YAML
data: {batch_size: 64, eval_batch_size: 256, train_subset: 512, val_subset: 512, randaugment: "", random_erasing: 0}
model: {preset: vit_mnist_tiny, drop_path: 0.0, pretrain: {epochs: 1, lr: 1.0e-3, mixup: 0, cutmix: 0}}
quant: {calib_batches: 2}
train: {epochs: 1, lr: 1.0e-4, mixup: 0, cutmix: 0}
compare: [{name: w8_ivit, bits: 8, plan: ivit}]
output: {dir: $LOGS/dist_nccl}
device: cuda
dist: {timeout_s: 60}
YAML
stage dist-nccl 60 "$PY -m torch.distributed.run --standalone --nproc-per-node=1 -m mnq train --config $DIST_JOB \
  --quiet && test -s $LOGS/dist_nccl/results.json"
stage deploy 60 "$PY scripts/bench_deploy.py --device cuda --repeat 10 --json $LOGS/bench_deploy.json"
if [[ -n $SANITIZER ]]; then
  SAN_PYTEST="$PY -m pytest -q -x $SAN_TESTS -k cuda -p no:cacheprovider"
  # memcheck without torch's caching allocator, so an access past a tensor's end is past an allocation's end
  stage memcheck 75 "PYTORCH_NO_CUDA_MEMORY_CACHING=1 $SANITIZER --tool memcheck --error-exitcode 1 $SAN_PYTEST"
  stage racecheck 60 "$SANITIZER --tool racecheck --error-exitcode 1 $SAN_PYTEST"
  stage synccheck 60 "$SANITIZER --tool synccheck --error-exitcode 1 $SAN_PYTEST"
else
  for tool in memcheck racecheck synccheck; do record "$tool" skip 0 "compute-sanitizer is not installed"; done
fi
stage bench-ops 60 "$PY scripts/bench_ops.py --device all --quick --threads ${THREADS:-16} --json $LOGS/bench_ops.json"
stage bench-train 45 "$PY scripts/bench_train.py --device cuda --batch 256 --steps 5 --data synthetic --workers 4 \
  --loader-images 4000 --json $LOGS/bench_train.json"
stage bench-models 75 "$PY scripts/bench_models.py --device cuda --models $MODELS --reps 3 \
  --json $LOGS/bench_models.json"
if [[ ${GPU_CHECK_FULL:-0} == 1 ]]; then
  stage bench-analyzer 90 "$PY scripts/bench_analyzer.py --device cuda --preset deit_tiny_patch16_224 --batches 4 \
    --batch-size 32"
  stage bench-train-deit 90 "$PY scripts/bench_train.py --device cuda --preset deit_tiny_patch16_224 --batch 64 \
    --data synthetic --workers 8 --loader-images 4000"
fi

echo "== table (after $((SECONDS - START)) s; logs in $LOGS)"
if ! "$PY" scripts/gpu_table.py "$LOGS" >"$LOGS/table.md"; then
  {  # without Python: the stages alone
    echo "| stage | result | seconds | note |" && echo "|---|---|---|---|"
    sed 's/\t/ | /g; s/^/| /; s/$/ |/' "$LOGS/stages.tsv"
  } >"$LOGS/table.md"
fi
cat "$LOGS/table.md"
exit "$FAILED"
