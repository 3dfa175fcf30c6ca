#!/usr/bin/env bash
# run.sh SECONDS JOBS NAME...: runs the libFuzzer targets $FUZZ_DIR/fuzz_NAME
# (built by `make fuzz-build`) for SECONDS each, JOBS at a time: seeds the
# corpus $FUZZ_DIR/corpus/NAME (seed.sh), adds tests/fuzz/NAME.dict and the
# flags of tests/fuzz/NAME.options, logs to $FUZZ_DIR/logs/NAME.log and prints
# one line per target (executions, exec/s, coverage). A finding leaves its
# reproducer in $FUZZ_DIR/crashes/ and makes the script exit non-zero.
set -u
secs=$1 jobs=$2
shift 2
FUZZ_DIR=${FUZZ_DIR:-build/fuzz}
export LACOS_ROOT=${LACOS_ROOT:-$(pwd)}
mkdir -p "$FUZZ_DIR/crashes" "$FUZZ_DIR/logs"

one() {
  local name=$1 b=$FUZZ_DIR/fuzz_$1 corpus=$FUZZ_DIR/corpus/$1 log=$FUZZ_DIR/logs/$1.log
  bash tests/fuzz/seed.sh "$name" "$corpus" || return 1
  local flags=()
  [ -f "tests/fuzz/$name.dict" ] && flags+=("-dict=tests/fuzz/$name.dict")
  [ -f "tests/fuzz/$name.options" ] && flags+=($(grep -v '^#' "tests/fuzz/$name.options"))
  # shellcheck disable=SC2086
  "$b" "$corpus" "${flags[@]}" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$FUZZ_DIR/crashes/$name-" ${FUZZ_OPTS:-} > "$log" 2>&1
  local rc=$?
  local execs speed cov
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  cov=$(grep -E '^#[0-9]+' "$log" | tail -1 | grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+/[0-9]+[a-zA-Z]*')
  printf 'fuzz_%-12s %10s runs %7s exec/s  %s\n' "$name" "${execs:-?}" "${speed:-?}" "$cov"
  if [ "$rc" -ne 0 ]; then
    grep -E 'ERROR|runtime error|fuzz invariant|FINDING|Test unit written|SUMMARY' "$log" | head -8 | sed 's/^/    /'
    echo "lacos: fuzz_$name found a problem (exit $rc); reproducer in $FUZZ_DIR/crashes/, log $log"
    echo "       replay: $b <file>; keep it: cp <file> tests/fuzz/regressions/$name/"
    return 1
  fi
}
export -f one
export FUZZ_DIR secs
printf '%s\n' "$@" | xargs -P "$jobs" -I{} bash -c 'one {}'
