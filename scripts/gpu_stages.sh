# The stage bookkeeping of scripts/gpu_check.sh (sourced; tests/python/test_gpu_check.py runs it with fake
# stages). The caller sets LOGS (a folder with an empty stages.tsv), BUDGET (seconds for the whole script), START
# (its $SECONDS at the start), TABLE_RESERVE (seconds kept for the end), DRY (1: print commands, run nothing) and
# FAILED=0; FAILED becomes 1 when a stage fails, times out or gets no time.

# record NAME STATUS SECONDS NOTE: one line of stages.tsv; anything but pass or skip fails the script.
record() {
  printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$LOGS/stages.tsv"
  case $2 in pass | skip) ;; *) FAILED=1 ;; esac
}

# stage NAME CAP COMMAND: runs COMMAND (bash) under timeout for min(CAP, the budget left), its output on stdout
# and in $LOGS/NAME.log, and records the outcome.
stage() {
  local name=$1 cap=$2 cmd=$3
  local left=$((BUDGET - (SECONDS - START) - TABLE_RESERVE))
  if ((left < 10)); then
    record "$name" fail 0 "not run: the ${BUDGET} s budget is spent"
    return
  fi
  ((cap > left)) && cap=$left
  echo "== $name (at most ${cap} s)"
  [[ $DRY == 1 ]] && cmd="echo dry run: $(printf '%q' "$cmd")"
  local t0=$SECONDS rc
  timeout --kill-after=10 "$cap" bash -c "$cmd" 2>&1 | tee "$LOGS/$name.log"
  rc=${PIPESTATUS[0]}
  local dt=$((SECONDS - t0))
  case $rc in
    0) record "$name" pass "$dt" "" ;;
    124 | 137) record "$name" timeout "$dt" "stopped at the ${cap} s limit" ;;
    *) record "$name" fail "$dt" "exit status $rc; see $LOGS/$name.log" ;;
  esac
}
