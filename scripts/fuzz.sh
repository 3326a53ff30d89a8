#!/usr/bin/env bash
# Fuzzes the readers of hostile input with libFuzzer (Debian's clang), each harness built with ASan + UBSan
# (every UB report is fatal):
#   safetensors  csrc/models/safetensors.cpp   weights and checkpoints
#   idx          csrc/data/idx.cpp             Fashion-MNIST's gzip IDX files
#   jpeg         csrc/data/image.cpp           image-folder JPEGs: header check, decode, eval crop + resample
#   config       csrc/config, jobs/job_config, models/plan.cpp   YAML jobs (+ one --set) and plan files
#
#   scripts/fuzz.sh [RUNS] [TARGET ...]     RUNS executions per harness (default 100000), all targets by default
#   FUZZ_SECONDS=600 scripts/fuzz.sh 1000000  also stop each harness after 600 s (libFuzzer's -max_total_time)
#
# Harnesses and seeds live in tests/fuzz/ (corpus/<target>/); the growing corpus, crash artifacts and binaries go
# to build/fuzz/. A crash stops that harness, prints the reproducer path and makes the script exit 1: turn it into
# a unit test (tests/cpp) with the input inline. Builds run niced on one core (FUZZ_JOBS to change).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-100000}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(safetensors idx jpeg config)
OUT=build/fuzz
mkdir -p "$OUT"
CXX=${FUZZ_CXX:-clang++}
command -v "$CXX" >/dev/null || { echo "fuzz.sh: $CXX not found (apt-get install clang)" >&2; exit 2; }

TORCH=$(python3 -c 'import os, torch; print(os.path.dirname(torch.__file__))')
SAN="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"
# vptr checks need the RTTI of every class in the process, and LibTorch's come from GCC-built libraries.
SAN+=" -fno-sanitize=vptr"
FLAGS="-std=c++20 -g -O1 -fno-omit-frame-pointer -I. -DFMT_HEADER_ONLY"
TORCH_INC="-isystem $TORCH/include -isystem $TORCH/include/torch/csrc/api/include"
TORCH_LIB="-L$TORCH/lib -Wl,-rpath,$TORCH/lib -lc10 -ltorch_cpu"

sources() {
  case $1 in
    safetensors) echo "tests/fuzz/fuzz_safetensors.cpp csrc/models/safetensors.cpp" ;;
    idx) echo "tests/fuzz/fuzz_idx.cpp csrc/data/idx.cpp" ;;
    jpeg) echo "tests/fuzz/fuzz_jpeg.cpp csrc/data/image.cpp" ;;
    config) echo "tests/fuzz/fuzz_config.cpp csrc/config/config.cpp csrc/jobs/job_config.cpp csrc/train/train_config.cpp csrc/analysis/config.cpp
                  csrc/models/plan.cpp csrc/data/rand_augment.cpp csrc/data/augment_ops.cpp csrc/data/image.cpp
                  csrc/util/atomic_file.cpp csrc/util/fault.cpp" ;;
    *) echo "fuzz.sh: unknown target '$1' (safetensors, idx, jpeg, config)" >&2; exit 2 ;;
  esac
}
libs() {
  case $1 in
    safetensors) echo "$TORCH_LIB" ;;
    idx) echo "$TORCH_LIB -lz" ;;
    jpeg) echo "-lturbojpeg" ;;
    config) echo "-lyaml-cpp -lturbojpeg" ;;
  esac
}

# Object files are rebuilt only when their source or a header it includes changed (clang's depfiles).
build() {
  local t=$1 objs=() inc=""
  [[ $t == safetensors || $t == idx ]] && inc=$TORCH_INC
  [[ $t == config ]] && inc="-isystem $TORCH/include"  # fmt (LibTorch's copy, as the main build uses)
  mkdir -p "$OUT/obj/$t"
  for src in $(sources "$t"); do
    local base; base=$(echo "${src%.cpp}" | tr / _)  # csrc/config/config.cpp and csrc/analysis/config.cpp
    local obj="$OUT/obj/$t/$base.o" dep="$OUT/obj/$t/$base.d" stale=0
    if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ]; then
      stale=1
    elif [ -f "$dep" ]; then
      for h in $(sed -e 's/\\$//' -e 's/^[^:]*://' "$dep"); do [ "$h" -nt "$obj" ] && { stale=1; break; }; done
    fi
    if [ $stale = 1 ]; then
      echo "fuzz.sh: compiling $src"
      nice -n 10 "$CXX" $FLAGS $SAN $inc -MMD -MF "$dep" -c "$src" -o "$obj"
    fi
    objs+=("$obj")
  done
  nice -n 10 "$CXX" $SAN "${objs[@]}" $(libs "$t") -o "$OUT/fuzz_$t"
}

status=0
summary=()
for t in "${TARGETS[@]}"; do
  build "$t"
  mkdir -p "$OUT/corpus/$t" "$OUT/artifacts/$t"
  cp -n tests/fuzz/corpus/"$t"/* "$OUT/corpus/$t"/ 2>/dev/null || true
  log="$OUT/fuzz_$t.log"
  start=$(date +%s)
  # Leak checks stay on; LibTorch's process-lifetime caches are not leaks of a run (libFuzzer reports only leaks
  # that grow per input). max_len: large enough for headers and small payloads, small enough to stay fast.
  if ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0} UBSAN_OPTIONS=print_stacktrace=1 \
      nice -n 10 "$OUT/fuzz_$t" -runs="$RUNS" -max_total_time="${FUZZ_SECONDS:-0}" -max_len=4096 -timeout=20 -rss_limit_mb=4096 -print_final_stats=1 \
      -artifact_prefix="$OUT/artifacts/$t/" "$OUT/corpus/$t" >"$log" 2>&1; then
    result=ok
  else
    result="FAILED (see $log)"
    status=1
  fi
  secs=$(( $(date +%s) - start ))
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*')
  summary+=("$(printf '%-12s %10s runs %6ss %8s edges  %s' "$t" "${runs:-?}" "$secs" "${cov:-?}" "$result")")
  grep -E 'ERROR|runtime error|Test unit written' "$log" | head -5 || true
done
printf '%s\n' "${summary[@]}"
exit $status
