#!/usr/bin/env bash
# test_concurrent.sh: four `lacos run` processes on the same sweep and the
# same results database at once. They split the points between them through
# the database's atomic claim of an (experiment, config, seed) point: every
# point is done exactly once, no row is lost or duplicated, nobody fails with
# "database is locked", and the numbers equal those of one process alone.
# LACOS_TEST_LONG=1 (make check-long) adds rounds where the four processes
# are also SIGKILLed at random and restarted.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/crash_lib.sh"

if ! have_data; then
  skip "four processes on one sweep" "the shared datasets (LACOS_TEST_DATA) are not there"
  finish
fi
export LACOS_THREADS=1
C="$TMP/concurrent"
rm -rf "$C" && mkdir -p "$C"
POINTS=6
SW=("$SWEEP" --seeds 2)       # 3 amounts x 2 seeds

t0=$(now)
run_cmd "$LACOS" run "${SW[@]}" --db "$C/ref.db" --out "$C/ref"
T=$(echo "$(now) - $t0" | bc)
expect "one process alone runs the $POINTS points" 0 "done $POINTS skipped 0 failed 0"
echo "# one process: ${T}s"

# ------------------------------------------------------------------ four at once
DB="$C/four.db"
pids=()
for i in 1 2 3 4; do
  "$LACOS" run "${SW[@]}" --db "$DB" --out "$C/four" >"$C/four.$i.log" 2>&1 &
  pids+=($!)
done
rcs="" did=0 skipped=0 workers=0
for i in 1 2 3 4; do
  wait "${pids[$((i - 1))]}"
  rcs="$rcs $?"
  line=$(grep -E '^done [0-9]+ skipped' "$C/four.$i.log")
  d=$(awk '{print $2}' <<<"$line"); s=$(awk '{print $4}' <<<"$line")
  did=$((did + ${d:-0})); skipped=$((skipped + ${s:-0}))
  [ "${d:-0}" -gt 0 ] && workers=$((workers + 1))
done
echo "# four processes: exit statuses$rcs; points done per process: $(grep -hE '^done' "$C"/four.*.log | awk '{printf "%s ", $2}')"
[ "$rcs" = " 0 0 0 0" ] && ok "the four processes exit 0" || not_ok "the four processes exit 0" "exit statuses:$rcs" "$(tail -3 "$C"/four.*.log)"
v=$(grep -il "locked" "$C"/four.*.log)
[ -z "$v" ] && ok "no 'database is locked' failure" || not_ok "no 'database is locked' failure" "$(grep -ih locked "$C"/four.*.log | head -3)"
[ "$did" = "$POINTS" ] && ok "together they did each of the $POINTS points once" || not_ok "together they did each of the $POINTS points once" "done $did"
[ "$((did + skipped))" = "$((4 * POINTS))" ] && ok "each process saw every point (done or skipped as taken)" \
  || not_ok "each process saw every point" "done $did + skipped $skipped != $((4 * POINTS))"
[ "$workers" -ge 2 ] && ok "the work was split ($workers processes ran points)" || not_ok "the work was split" "$workers process(es) ran points"
check_db "four at once" "$DB" "$POINTS"
v=$(sqlite3 "$DB" "SELECT count(*) FROM runs")
[ "$v" = "$POINTS" ] && ok "four at once: exactly $POINTS runs, no extra or dead one" || not_ok "four at once: exactly $POINTS runs" "$v runs"
same_results "four at once" "$C/ref.db" "$DB"
same_adapters "four at once" "$C/ref" "$C/four"

# ------------------------------------------------------------------ with kills (long)
if [ -n "$LONG" ]; then
  rounds=6 kills=0
  for r in $(seq 1 "$rounds"); do
    DB="$C/killed$r.db"
    # each worker: start, maybe SIGKILL after a random delay, restart, until it exits 0
    worker() {
      local i=$1 n=0 pid rc
      while :; do
        n=$((n + 1))
        "$LACOS" run "${SW[@]}" --db "$DB" --out "$C/killed$r" >>"$C/killed$r.$i.log" 2>&1 &
        pid=$!
        if [ "$n" -le 6 ] && [ $((RANDOM % 3)) -ne 0 ]; then
          sleep "$(rand_delay "$(echo "$T * 0.6" | bc)")"
          kill -KILL "$pid" 2>/dev/null && echo kill >>"$C/killed$r.kills"
        fi
        { wait "$pid"; } 2>/dev/null
        rc=$?
        [ "$rc" = 0 ] && return 0
        [ "$rc" = 137 ] || { echo "worker $i: exit $rc" >>"$C/killed$r.errors"; return 1; }
      done
    }
    wpids=()
    for i in 1 2 3 4; do RANDOM=$((CRASH_SEED + 97 * r + i)); worker "$i" & wpids+=($!); done
    for p in "${wpids[@]}"; do wait "$p"; done
    # points claimed by a process that was then killed are left to a last pass
    run_cmd "$LACOS" run "${SW[@]}" --db "$DB" --out "$C/killed$r"
    expect "round $r: a last pass after the killed workers" 0 "failed 0 interrupted 0"
    [ -f "$C/killed$r.errors" ] && not_ok "round $r: workers exit 0 or by the kill" "$(cat "$C/killed$r.errors")"
    k=$(cat "$C/killed$r.kills" 2>/dev/null | wc -l); kills=$((kills + k))
    v=$(grep -il "locked" "$C"/killed$r.*.log)
    [ -z "$v" ] && ok "round $r: no 'database is locked' failure" || not_ok "round $r: no 'database is locked' failure"
    check_db "round $r ($k kills)" "$DB" "$POINTS"
    same_results "round $r" "$C/ref.db" "$DB"
    same_adapters "round $r" "$C/ref" "$C/killed$r"
  done
  echo "# four workers with kills: $kills SIGKILLs in $rounds rounds"
  [ "$kills" -gt 0 ] && ok "the workers were killed $kills times" || not_ok "the workers were killed at least once"
fi

finish
