#!/usr/bin/env bash
# test_crash.sh: SIGKILL at random moments. A sweep of real experiment points
# (tests/cli/sweep_small.lua: tiny-xs, LoRA training checkpointed every 2
# steps, adapters saved, STS scores logged) and a `lacos train` run are
# killed with SIGKILL again and again and restarted until they finish. After
# every kill the database passes PRAGMA integrity_check and every point that
# was done is still done; at the end each point has exactly one done run
# whose numbers (the whole step log, STS scores, params) and adapter bytes
# equal those of an uninterrupted run, and nothing is duplicated.
# `make test` kills a few times; LACOS_TEST_LONG=1 (make check-long) runs
# many cycles with many kills.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/crash_lib.sh"

if ! have_data; then
  skip "SIGKILL during a sweep" "the shared datasets (LACOS_TEST_DATA) are not there"
  finish
fi
export LACOS_THREADS=1        # two shared cores: no oversubscription; results do not depend on it
C="$TMP/crash"
rm -rf "$C" && mkdir -p "$C"

# ------------------------------------------------------------------ the reference
t0=$(now)
run_cmd "$LACOS" run "$SWEEP" --db "$C/ref.db" --out "$C/ref"
T=$(echo "$(now) - $t0" | bc)
expect "the uninterrupted sweep runs its 3 points" 0 "done 3 skipped 0 failed 0"
echo "# uninterrupted sweep: ${T}s"
run_cmd "$LACOS" run "$SWEEP" --db "$C/ref.db" --out "$C/ref"
expect "rerunning a finished sweep skips every point" 0 "done 0 skipped 3"
check_db "reference" "$C/ref.db" 3

# ------------------------------------------------------------------ kill loops
# kill_until_done NAME MAX_DELAY CMD...: starts CMD, SIGKILLs it after a
# random delay, checks the database, and starts it again, until it exits 0
# (after 40 kills it is left to finish). Sets KILLS; DB must be set.
kill_until_done() {
  local name=$1 maxd=$2; shift 2
  local attempt=0 pid rc d done_before="" done_now lost="" integrity="" log="$C/$name.log"
  KILLS=0
  while :; do
    attempt=$((attempt + 1))
    "$@" >"$log" 2>&1 &
    pid=$!
    if [ "$attempt" -le 40 ]; then
      d=$(rand_delay "$maxd")
      sleep "$d"
      kill -KILL "$pid" 2>/dev/null
    fi
    { wait "$pid"; } 2>/dev/null
    rc=$?
    if [ "$rc" = 0 ]; then break; fi
    if [ "$rc" != 137 ]; then
      not_ok "$name: a restarted run exits 0 or dies by the kill" "exit $rc after ${d}s" "$(tail -5 "$log")"
      return 1
    fi
    KILLS=$((KILLS + 1))
    [ -f "$DB" ] || continue
    local v
    v=$(sqlite3 "$DB" "PRAGMA integrity_check" 2>&1)
    [ "$v" = ok ] || integrity="$integrity [kill $KILLS after ${d}s: $v]"
    # (a kill during the very first open leaves a file without tables yet)
    done_now=$(sqlite3 "$DB" "SELECT experiment_id || '/' || config_sha256 || '/' || seed FROM runs WHERE status = 'done' ORDER BY 1" 2>/dev/null)
    for p in $done_before; do grep -qxF "$p" <<<"$done_now" || lost="$lost [kill $KILLS: $p]"; done
    done_before=$done_now
  done
  [ -z "$integrity" ] && ok "$name: PRAGMA integrity_check ok after each of $KILLS kills" \
    || not_ok "$name: PRAGMA integrity_check ok after every kill" "$integrity"
  [ -z "$lost" ] && ok "$name: no completed run lost across $KILLS kills" || not_ok "$name: no completed run lost" "$lost"
}

# Kills land anywhere in [0.03 s, SPAN x the uninterrupted time) after a
# start: before the first point, in training, in a checkpoint write, in the
# evaluation, in a database commit. A short span in the quick version makes
# a few kills certain; the long version also lets some runs finish.
cycles=1 SPAN=0.7
[ -n "$LONG" ] && cycles=30 SPAN=0.9
# The span is a fraction of one timed run: when the machine's load drops
# after that run, every later run can finish inside its delay, so a cycle
# without a kill is followed by another with half the span (three at most).
total_kills=0 c=0 span=$SPAN
while [ "$c" -lt "$cycles" ] || { [ "$total_kills" = 0 ] && [ "$c" -lt $((cycles + 3)) ]; }; do
  c=$((c + 1))
  [ "$c" -gt "$cycles" ] && span=$(echo "$span / 2" | bc -l)
  DB="$C/sweep$c.db"
  kill_until_done "sweep cycle $c" "$(echo "$T * $span" | bc)" \
    "$LACOS" run "$SWEEP" --db "$DB" --out "$C/sweep$c" || continue
  total_kills=$((total_kills + KILLS))
  check_db "sweep cycle $c" "$DB" 3
  same_results "sweep cycle $c" "$C/ref.db" "$DB"
  same_adapters "sweep cycle $c" "$C/ref" "$C/sweep$c"
done
echo "# sweep: $total_kills SIGKILLs in $c cycle(s)"
if [ "$total_kills" -gt 0 ]; then ok "the sweep was killed $total_kills times"
else not_ok "the sweep was killed at least once" "every run finished before its kill: the delays are too long"; fi

# ------------------------------------------------------------------ lacos train
M="$C/model"
"$LACOS" model random tiny-xs --out "$M" --seed 2 --tokenizer "${LACOS_ROOT:-.}/datasets/tokenizers/bloomlike-32k.json" >/dev/null 2>&1
S=$LACOS_TEST_DATA/nli/snli-infersent
paste "$S/s1.dev" "$S/s2.dev" 2>/dev/null | awk -F'\t' '$1 != "" && $2 != "" && !seen[$1]++ && n < 96 { print; n++ }' > "$C/pairs.tsv"
if [ "$(wc -l < "$C/pairs.tsv")" -lt 96 ]; then
  awk 'BEGIN { for (i = 1; i <= 96; i++) printf "sentence number %d about a cat\tline %d, a cat again\n", i, i }' > "$C/pairs.tsv"
fi
TRAIN=(train --model "$M" --pairs "$C/pairs.tsv" --batch-size 8 --max-length 24 --epochs 4 --checkpoint-every 2
       --dropout 0.1 --targets all --lr 5e-3 --seed 3 --log-every 3)
t0=$(now)
run_cmd "$LACOS" "${TRAIN[@]}" --out "$C/train-ref" --db "$C/train-ref.db"
TT=$(echo "$(now) - $t0" | bc)
expect "lacos train, uninterrupted" 0 "done after 48 of 48 steps"
echo "# uninterrupted lacos train: ${TT}s"

tcycles=1
[ -n "$LONG" ] && tcycles=20
tkills=0 c=0 span=$SPAN
while [ "$c" -lt "$tcycles" ] || { [ "$tkills" = 0 ] && [ "$c" -lt $((tcycles + 3)) ]; }; do
  c=$((c + 1))
  [ "$c" -gt "$tcycles" ] && span=$(echo "$span / 2" | bc -l)
  DB="$C/train$c.db"
  kill_until_done "train cycle $c" "$(echo "$TT * $span" | bc)" "$LACOS" "${TRAIN[@]}" --out "$C/train$c" --db "$DB" || continue
  tkills=$((tkills + KILLS))
  if cmp -s "$C/train-ref/adapter_model.safetensors" "$C/train$c/adapter_model.safetensors"; then
    ok "train cycle $c: the adapter is byte-identical to the uninterrupted run's"
  else not_ok "train cycle $c: the adapter is byte-identical to the uninterrupted run's"; fi
  a=$(sqlite3 "$C/train-ref.db" "SELECT m.key, m.step, quote(m.value) FROM metrics m JOIN runs r ON r.id = m.run_id WHERE r.status = 'done' AND m.key != 'tokens_per_s' ORDER BY 1, 2")
  b=$(sqlite3 "$DB" "SELECT m.key, m.step, quote(m.value) FROM metrics m JOIN runs r ON r.id = m.run_id WHERE r.status = 'done' AND m.key != 'tokens_per_s' ORDER BY 1, 2")
  if [ "$(sqlite3 "$DB" "SELECT count(*) FROM runs WHERE status = 'done'")" = 1 ] && [ -n "$a" ] && [ "$a" = "$b" ]; then
    ok "train cycle $c: one done run holding the whole step log of the uninterrupted run ($(wc -l <<<"$a") values)"
  else
    not_ok "train cycle $c: one done run holding the whole step log of the uninterrupted run" "$(diff <(echo "$a") <(echo "$b") | head)"
  fi
  # the same but for the run each names (another run's uuid)
  if cmp -s <(grep -v -e created_by -e '"run":' "$C/train-ref/lacos.json") <(grep -v -e created_by -e '"run":' "$C/train$c/lacos.json"); then
    ok "train cycle $c: lacos.json records the same final loss and steps"
  else not_ok "train cycle $c: lacos.json records the same final loss and steps" "$(diff "$C/train-ref/lacos.json" "$C/train$c/lacos.json")"; fi
  done_uuid=$(sqlite3 "$DB" "SELECT uuid FROM runs WHERE status = 'done'")
  if [ -n "$done_uuid" ] && grep -q "\"run\": \"$done_uuid\"" "$C/train$c/lacos.json"; then
    ok "train cycle $c: lacos.json names the done run"
  else not_ok "train cycle $c: lacos.json names the done run" "done run: $done_uuid" "$(grep '"run":' "$C/train$c/lacos.json")"; fi
  v=$(find "$C/train$c/checkpoints" -name '*.tmp.*' -o -name '*.old.*' | head -3)
  [ -z "$v" ] && ok "train cycle $c: no temporary checkpoint left behind" || not_ok "train cycle $c: no temporary checkpoint left behind" "$v"
done
echo "# lacos train: $tkills SIGKILLs in $c cycle(s)"
if [ "$tkills" -gt 0 ]; then ok "lacos train was killed $tkills times"
else not_ok "lacos train was killed at least once" "every run finished before its kill"; fi

# ------------------------------------------------------------------ Ctrl-C and SIGTERM
# The first SIGINT or SIGTERM lets the current step finish, checkpoints it,
# records the run as interrupted and exits 130; the same command resumes and
# ends exactly where an uninterrupted run ends. A second SIGINT while the
# first is being handled exits at once (for a run, that is like a kill).
wait_for() {  # wait_for PATH_GLOB PID: until a file matching the glob exists (or the process ended)
  local i
  for i in $(seq 1 400); do
    compgen -G "$1" >/dev/null && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}
SIG=(train --model "$M" --pairs "$C/pairs.tsv" --batch-size 8 --max-length 24 --epochs 8 --checkpoint-every 10
     --dropout 0.1 --targets all --lr 5e-3 --seed 5 --log-every 5)
run_cmd "$LACOS" "${SIG[@]}" --out "$C/sig-ref" --db "$C/sig-ref.db"
expect "lacos train for the signal cases, uninterrupted" 0 "done after 96 of 96 steps"
for how in INT TERM; do
  out="$C/sig-$how" db="$C/sig-$how.db"
  "$LACOS" "${SIG[@]}" --out "$out" --db "$db" >"$C/sig-$how.log" 2>&1 &
  pid=$!
  if ! wait_for "$out/checkpoints/ckpt-*" "$pid"; then
    wait "$pid"; not_ok "SIG$how: the run reached its first checkpoint before the signal" "$(tail -3 "$C/sig-$how.log")"; continue
  fi
  case $how in
    INT) kill -INT "$pid" ;;
    TERM) kill -TERM "$pid" ;;
  esac
  { wait "$pid"; } 2>/dev/null
  rc=$?
  log=$(cat "$C/sig-$how.log")
  if :; then
    n=$(sed -n 's/.*lacos train: interrupted after \([0-9]*\) of 96 steps.*/\1/p' <<<"$log")
    if [ "$rc" = 130 ] && [ -n "$n" ] && grep -q "the same command resumes it" <<<"$log"; then
      ok "SIG$how: exit 130 after finishing step $n"
    else not_ok "SIG$how: exit 130 after finishing the current step" "exit $rc" "$(tail -3 <<<"$log")"; n=0; fi
    [ -d "$out/checkpoints/$(printf 'ckpt-%08d' "$n")" ] && ok "SIG$how: a checkpoint of step $n" \
      || not_ok "SIG$how: a checkpoint of the interrupted step $n" "$(ls "$out/checkpoints")"
    v=$(sqlite3 "$db" "SELECT status || '/' || exit_reason || '/' || (SELECT max(step) FROM metrics WHERE run_id = runs.id AND key = 'loss') FROM runs")
    [ "$v" = "interrupted/signal/$n" ] && ok "SIG$how: the run is recorded as interrupted with its $n steps" \
      || not_ok "SIG$how: the run is recorded as interrupted with its steps" "status/reason/last step: $v, expected interrupted/signal/$n"
  fi
  run_cmd "$LACOS" "${SIG[@]}" --out "$out" --db "$db"
  expect "SIG$how: the same command resumes and finishes" 0 "resumed from step [0-9]+"
  cmp -s "$C/sig-ref/adapter_model.safetensors" "$out/adapter_model.safetensors" && ok "SIG$how: the adapter equals the uninterrupted one" \
    || not_ok "SIG$how: the adapter equals the uninterrupted one"
  a=$(sqlite3 "$C/sig-ref.db" "SELECT m.key, m.step, quote(m.value) FROM metrics m JOIN runs r ON r.id = m.run_id WHERE r.status = 'done' AND m.key != 'tokens_per_s' ORDER BY 1, 2")
  b=$(sqlite3 "$db" "SELECT m.key, m.step, quote(m.value) FROM metrics m JOIN runs r ON r.id = m.run_id WHERE r.status = 'done' AND m.key != 'tokens_per_s' ORDER BY 1, 2")
  [ -n "$a" ] && [ "$a" = "$b" ] && ok "SIG$how: the resumed run's step log equals the uninterrupted one" \
    || not_ok "SIG$how: the resumed run's step log equals the uninterrupted one" "$(diff <(echo "$a") <(echo "$b") | head)"
done

# Two Ctrl-C: a chunk that ignores the first one (as a run finishing its
# step does for a moment) is ended by the second, at once, with 130.
"$LACOS" -e 'LACOS_ON_INTERRUPT = function() end; io.stderr:write("ready\n"); local t = os.time(); while os.time() - t < 20 do end' >"$C/int2.log" 2>&1 &
pid=$!
# (wait for the handler: under valgrind lacos takes seconds to start)
for k in $(seq 1 300); do grep -q ready "$C/int2.log" 2>/dev/null && break; sleep 0.1; done
sleep 0.2; kill -INT "$pid"; sleep 0.3
kill -0 "$pid" 2>/dev/null && ok "the first Ctrl-C is left to the Lua side" || not_ok "the first Ctrl-C is left to the Lua side" "the process ended"
kill -INT "$pid"
t0=$(now)
{ wait "$pid"; } 2>/dev/null
rc=$?
took=$(echo "$(now) - $t0" | bc)
[ "$rc" = 130 ] && grep -q "second interrupt, exiting now" "$C/int2.log" && (( $(echo "$took < 2" | bc) )) \
  && ok "the second Ctrl-C exits at once with 130" || not_ok "the second Ctrl-C exits at once with 130" "exit $rc after ${took}s" "$(cat "$C/int2.log")"

# A sweep stopped by Ctrl-C: the point is recorded as interrupted, the rerun
# resumes it and the sweep ends with the uninterrupted numbers.
DB="$C/sweep-int.db"
"$LACOS" run "$SWEEP" --db "$DB" --out "$C/sweep-int" >"$C/sweep-int.log" 2>&1 &
pid=$!
if wait_for "$C/sweep-int/small/*/checkpoints/ckpt-*" "$pid"; then
  kill -INT "$pid"
  { wait "$pid"; } 2>/dev/null
  rc=$?
  v=$(sqlite3 "$DB" "SELECT count(*) FROM runs WHERE status = 'interrupted' AND exit_reason = 'signal'")
  [ "$rc" = 130 ] && [ "$v" = 1 ] && ok "Ctrl-C stops a sweep with exit 130, the point recorded as interrupted" \
    || not_ok "Ctrl-C stops a sweep with exit 130, the point recorded as interrupted" "exit $rc, interrupted runs $v" "$(tail -3 "$C/sweep-int.log")"
  run_cmd "$LACOS" run "$SWEEP" --db "$DB" --out "$C/sweep-int"
  expect "the interrupted sweep, rerun, finishes" 0 "failed 0 interrupted 0"
  check_db "interrupted sweep" "$DB" 3 interrupted
  same_results "interrupted sweep" "$C/ref.db" "$DB"
else
  wait "$pid"; not_ok "the sweep reached a checkpoint before Ctrl-C" "$(tail -3 "$C/sweep-int.log")"
fi

finish
