#!/usr/bin/env bash
# Builds the Catch2 suites and mnq-train with AddressSanitizer + UndefinedBehaviorSanitizer (GCC, CPU only) in
# build/asan, runs every suite, then a short mnq-train job (FP pretraining, calibration, QAT of a W8 I-ViT run,
# --resume of the finished job) on a small synthetic Fashion-MNIST. Any sanitizer report fails the run (UBSan
# reports are fatal; ASan aborts on the first error).
#
#   scripts/sanitize.sh [CATCH2 FILTER]      e.g. scripts/sanitize.sh "[safetensors]"
#   SANITIZE_SUITES="mnq_kernel_tests" SANITIZE_JOB=0 scripts/sanitize.sh    a subset, without the mnq-train job
#
# torch's CMake config probes the installed GPUs with nvcc even without mnq's CUDA kernels (a probe CMake 3.25 cannot
# configure for C++20); a fixed TORCH_CUDA_ARCH_LIST skips it.
# The build is heavy (every source once more, instrumented): it runs niced on SANITIZE_JOBS cores (default 1).
# Leak checking is off: LibTorch keeps process-lifetime allocations (thread pools, dispatcher tables) that
# LeakSanitizer reports at exit, which are not leaks of mnq.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=build/asan
JOBS=${SANITIZE_JOBS:-1}
FILTER=${1:-}
SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_PREFIX_PATH="$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')" \
  -DMNQ_WITH_CUDA=OFF -DMNQ_BUILD_TESTS=ON \
  -DTORCH_CUDA_ARCH_LIST=8.0 \
  -DCMAKE_CXX_FLAGS="$SAN" -DCMAKE_EXE_LINKER_FLAGS="$SAN" -DCMAKE_SHARED_LINKER_FLAGS="$SAN" >/dev/null
read -r -a SUITES <<<"${SANITIZE_SUITES:-mnq_kernel_tests mnq_simd_tests mnq_op_tests mnq_model_tests mnq_deploy_tests mnq_analysis_tests mnq_train_tests mnq_analyze_job_tests}"
RUN_JOB=${SANITIZE_JOB:-1}
TARGETS=("${SUITES[@]}")
[ "$RUN_JOB" = 1 ] && TARGETS+=(mnq-train)
nice -n 10 cmake --build "$BUILD" -j"$JOBS" --target "${TARGETS[@]}"

export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:check_initialization_order=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
status=0
for s in "${SUITES[@]}"; do
  echo "== $s"
  # shellcheck disable=SC2086
  if ! "$BUILD/tests/cpp/$s" ${FILTER:+"$FILTER"}; then status=1; fi
done

if [ "$RUN_JOB" != 1 ]; then
  [ $status = 0 ] && echo "sanitize.sh: clean (suites only)" || echo "sanitize.sh: FAILED"
  exit $status
fi
echo "== mnq-train (short job)"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
python3 - "$WORK/data" <<'EOF'
# A synthetic Fashion-MNIST (the layout of tests/cpp/train/train_test_util.cpp): class c is a bright 7x7 square.
import gzip, os, struct, sys
import numpy as np
out = sys.argv[1]
os.makedirs(out)
rng = np.random.default_rng(0)
for split, n in (("train", 512), ("t10k", 128)):
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
    for i, c in enumerate(labels):
        y, x = 2 + 12 * (c // 5), 2 + 4 * (c % 5)
        images[i, y:y + 7, x:x + 7] = 220
    hdr = lambda dims: bytes([0, 0, 8, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims)
    with gzip.open(f"{out}/{split}-images-idx3-ubyte.gz", "wb") as f:
        f.write(hdr([n, 28, 28]) + images.tobytes())
    with gzip.open(f"{out}/{split}-labels-idx1-ubyte.gz", "wb") as f:
        f.write(hdr([n]) + labels.tobytes())
EOF
cat >"$WORK/job.yaml" <<EOF
data: {root: $WORK/data, batch_size: 32, eval_batch_size: 64, workers: 2, train_subset: 256, val_subset: 128,
       train_augment: false}
model: {preset: vit_mnist_tiny, drop_path: 0, pretrain: {epochs: 1, lr: 2e-3, mixup: 0, cutmix: 0}}
quant: {bits: 8, plan: ivit, calib_batches: 2}
train: {epochs: 1, lr: 1e-4, mixup: 0, cutmix: 0}
output: {dir: $WORK/run}
threads: 2
device: cpu
EOF
if ! "$BUILD/mnq-train" --config "$WORK/job.yaml" --quiet; then status=1; fi
if ! "$BUILD/mnq-train" --config "$WORK/job.yaml" --quiet --resume; then status=1; fi
[ -f "$WORK/run/results.json" ] || { echo "sanitize.sh: the job wrote no results.json"; status=1; }
[ $status = 0 ] && echo "sanitize.sh: clean" || echo "sanitize.sh: FAILED"
exit $status
