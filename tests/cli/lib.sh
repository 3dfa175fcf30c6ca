# lib.sh: helpers for command-line tests. Each check prints one TAP-style
# line; `finish` exits non-zero if any failed.
LACOS=${LACOS:-build/lacos}
TMP=${LACOS_TEST_TMP:-$(mktemp -d)}
FAILS=0

ok() { echo "ok - $1"; }
not_ok() { echo "not ok - $1"; shift; for l in "$@"; do printf '%s\n' "$l" | sed 's/^/#   /'; done; FAILS=$((FAILS + 1)); }
skip() { echo "ok - $1 # SKIP $2"; }

# run_cmd: runs "$@", leaving $RC, $OUT, $ERR.
run_cmd() {
  OUT=$("$@" 2>"$TMP/.stderr" </dev/null); RC=$?; ERR=$(cat "$TMP/.stderr")
}
run_in() {  # run_in INPUT cmd... : the same with stdin
  local input=$1; shift
  OUT=$(printf '%s' "$input" | "$@" 2>"$TMP/.stderr"); RC=$?; ERR=$(cat "$TMP/.stderr")
}

# expect NAME RC_EXPECTED PATTERN_IN_OUTPUT_OR_ERR
expect() {
  local name=$1 rc=$2 pat=$3
  if [ "$RC" != "$rc" ]; then not_ok "$name" "exit $RC, expected $rc" "stdout: ${OUT:0:600}" "stderr: ${ERR:0:600}"; return; fi
  if [ -n "$pat" ] && ! grep -qE -- "$pat" <<<"$OUT$ERR"; then
    not_ok "$name" "output lacks /$pat/" "stdout: ${OUT:0:600}" "stderr: ${ERR:0:600}"; return
  fi
  # No crash: a sanitizer report or a signal would show here.
  if grep -qE 'AddressSanitizer|runtime error:|Segmentation fault|core dumped' <<<"$ERR"; then
    not_ok "$name" "crash or sanitizer report" "stderr: ${ERR:0:1200}"; return
  fi
  ok "$name"
}

finish() { [ "$FAILS" -eq 0 ]; exit $?; }
