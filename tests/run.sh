#!/usr/bin/env bash
# The lacos test runner: runs every C test binary, Lua test file,
# command-line test script and structure check (tests/structure), reads
# their TAP-style lines ("ok - name", "not ok - name", "ok - name # SKIP
# reason") and ends with the line
#   N passed, N failed, N skipped
# A program that exits non-zero without reporting a failure counts as one
# failure (a crash is never silent). T=pattern runs only matching files.
set -u
BUILD=${BUILD:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export LACOS="$ROOT/$BUILD/lacos"
export LACOS_ROOT="$ROOT"
export LUA_PATH="$ROOT/tests/lua/?.lua;;"
export LACOS_TEST_DATA="${LACOS_TEST_DATA:-$(cd "$ROOT/.." && pwd)/shared/datasets}"
export LACOS_TEST_TMP=$(mktemp -d "${TMPDIR:-/tmp}/lacos-test.XXXXXX")
# Tests never touch the user's results database unless they ask for one.
export LACOS_DB="$LACOS_TEST_TMP/default.db"
trap 'rm -rf "$LACOS_TEST_TMP"' EXIT
LOG="$ROOT/$BUILD/test.log"
: > "$LOG"

pass=0 fail=0 skip=0
failed_names=()

# VALGRIND="valgrind --tool=memcheck ..." (make check-valgrind) runs every
# program under it: the C tests directly, and the lacos executable, for the
# Lua and command-line tests and for every lacos a test starts, through a
# wrapper that $LACOS points at. Valgrind writes to one log per process
# (never into the output the tests check); a log with errors counts as a
# failure at the end.
VG_LOGS=
if [ -n "${VALGRIND:-}" ]; then
  # tests whose measurements mean nothing under valgrind (time, resident
  # memory: valgrind's own) or whose delays assume native speed read this
  export LACOS_UNDER_VALGRIND=1
  VG_LOGS="$LACOS_TEST_TMP/valgrind"
  mkdir -p "$VG_LOGS"
  VALGRIND="$VALGRIND --log-file=$VG_LOGS/%p.log"
  printf '#!/bin/sh\nexec %s "%s" "$@"\n' "$VALGRIND" "$ROOT/$BUILD/lacos" > "$LACOS_TEST_TMP/lacos"
  chmod +x "$LACOS_TEST_TMP/lacos"
  export LACOS="$LACOS_TEST_TMP/lacos"
fi

run_one() {
  local label=$1; shift
  local out rc start end
  start=$(date +%s.%N)
  out=$("$@" 2>&1)
  rc=$?
  end=$(date +%s.%N)
  printf '=== %s (exit %d)\n%s\n' "$label" "$rc" "$out" >> "$LOG"
  local p f s
  p=$(grep -cE '^ok( |$)' <<<"$out" | tr -d ' ')
  s=$(grep -cE '^ok .*# SKIP' <<<"$out" | tr -d ' ')
  f=$(grep -cE '^not ok( |$)' <<<"$out" | tr -d ' ')
  p=$((p - s))
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    f=1
    failed_names+=("$label: exited with status $rc without reporting a failure")
    printf '%s\n' "$out" | tail -20 | sed 's/^/    /'
  fi
  while IFS= read -r line; do
    [ -n "$line" ] && failed_names+=("$label: ${line#not ok - }")
  done < <(grep -E '^not ok' <<<"$out")
  if [ "$f" -gt 0 ]; then
    # Show the diagnostics of failing tests right away.
    awk '/^not ok/{show=1; print "    " $0; next} /^ok/{show=0} show && /^#/{print "    " $0}' <<<"$out" | head -60
  fi
  pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s))
  printf '%-44s %4d passed %3d failed %3d skipped  %6.1fs\n' "$label" "$p" "$f" "$s" "$(awk -v a="$end" -v b="$start" 'BEGIN { print a - b }')"
}

match() { [ -z "${T:-}" ] || [[ "$1" == *"$T"* ]]; }

for t in "$BUILD"/tests/test_*; do
  [ -x "$t" ] || continue
  match "$t" || continue
  run_one "c/$(basename "$t")" ${VALGRIND:-} "$t"
done
for t in tests/lua/test_*.lua; do
  [ -f "$t" ] || continue
  match "$t" || continue
  run_one "lua/$(basename "$t")" "$LACOS" run "$t"
done
for t in tests/cli/test_*.sh; do
  [ -f "$t" ] || continue
  match "$t" || continue
  run_one "cli/$(basename "$t")" bash "$t"
done
# the engine's structure, read from the built objects
for t in tests/structure/test_*.sh; do
  [ -f "$t" ] || continue
  match "$t" || continue
  run_one "structure/$(basename "$t")" env BUILD="$BUILD" bash "$t"
done

if [ -n "$VG_LOGS" ]; then
  # Every process valgrind watched: errors (or definite leaks) are failures.
  keep="$ROOT/$BUILD/valgrind"
  rm -rf "$keep"
  n_logs=0
  for log in "$VG_LOGS"/*.log; do
    [ -f "$log" ] || continue
    n_logs=$((n_logs + 1))
    errs=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$log" | tail -1)
    if [ -z "$errs" ]; then
      # killed before it could summarise (a test's timeout): nothing to judge
      continue
    fi
    if [ "$errs" -gt 0 ]; then
      mkdir -p "$keep"
      cp "$log" "$keep/"
      cmd=$(sed -n 's/^==[0-9]*== Command: //p' "$log" | head -1)
      fail=$((fail + 1))
      failed_names+=("valgrind: $errs errors in: $cmd (log $BUILD/valgrind/$(basename "$log"))")
    fi
  done
  printf '%-44s %4d processes checked\n' "valgrind" "$n_logs"
fi

if [ ${#failed_names[@]} -gt 0 ]; then
  echo
  echo "failures (full output in $LOG):"
  printf '  %s\n' "${failed_names[@]}"
fi
echo
echo "$pass passed, $fail failed, $skip skipped"
# the log keeps the verdict too, with what ran and when
printf '=== summary (%s, %s)\n%s passed, %s failed, %s skipped\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  "${T:-all tests}" "$pass" "$fail" "$skip" >> "$LOG"
[ "$fail" -eq 0 ]
