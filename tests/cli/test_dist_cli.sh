#!/usr/bin/env bash
# test_dist_cli.sh: `mpirun -np 2 lacos train` as a user runs it, on the CPU.
#   - the banner says "2 ranks", the run's params hold world_size (a number),
#     rank_layout and backend, and one process gives the same losses;
#   - usage errors (a batch that does not split among the ranks, more ranks
#     than pairs, --device cuda without a GPU per rank) stop every rank with
#     exit status 2 before anything is written;
#   - ranks started with other options, other data or another model stop
#     before the first step naming the difference;
#   - SIGKILL of rank 1 (or rank 0) mid-run: the other rank exits naming the
#     dead one, the run is recorded failed, and the same command resumes and
#     ends with the adapter of an uninterrupted run, byte for byte;
#   - a stopped rank (SIGSTOP: alive but silent) is declared dead after
#     --comm-timeout;
#   - SIGTERM to the ranks: every rank finishes the step, rank 0 checkpoints,
#     all exit 130; resuming with ONE process ends with the numbers of the
#     uninterrupted two-rank run (up to float summation order);
#   - a sweep script under mpirun (lacos.sweep, lacos.experiment): one record
#     per point, written by rank 0, with the scores of the one-process sweep.
# Skipped (not passed) without mpirun or the MPI backend.
source "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
NAMES=("2 ranks: banner, params, same losses as one process" "usage errors" "mismatched ranks" "SIGKILL of rank 1"
       "SIGKILL of rank 0" "a silent rank" "SIGTERM and resume with another number of ranks"
       "a sweep under mpirun")
skip_all() { for n in "${NAMES[@]}"; do skip "$n" "$1"; done; finish; }

LIBDIR=$(dirname "$("$LACOS" -e 'io.write(LACOS_LIB)' 2>/dev/null)")
[ -f "$LIBDIR/liblacos_mpi.so" ] || skip_all "this lacos was built without MPI (no liblacos_mpi.so)"
command -v mpirun >/dev/null || skip_all "no mpirun (apt-get install openmpi-bin)"
[ -n "${LACOS_UNDER_VALGRIND:-}" ] && skip_all "MPI jobs are not run under valgrind"

export LACOS_THREADS=1   # two ranks on two shared cores
export LUA_PATH="$ROOT/tests/lua/?.lua;;"
MPI=(timeout 300 mpirun --allow-run-as-root --oversubscribe --mca btl_tcp_if_include lo)
D="$TMP/dist-cli"
rm -rf "$D" && mkdir -p "$D" && cd "$D" || exit 1

"$LACOS" model random tiny-xs --out m --seed 1 --tokenizer "$ROOT/datasets/tokenizers/bloomlike-32k.json" >/dev/null 2>&1
awk 'BEGIN { for (i = 1; i <= 64; i++) printf "sentence %d about a cat on a mat\tline %d, the cat again\n", i, i }' > pairs.tsv
TRAIN=(train --model m --pairs pairs.tsv --batch-size 8 --steps 40 --epochs 10 --checkpoint-every 2 --optimizer adamw
       --quant f32 --dropout 0.1 --warmup 0 --max-length 32 --comm-timeout 20)

# the pids of the lacos ranks training into $1 (rank $2)
rank_pid() {
  local p
  for p in $(pgrep -f "lacos train .*--out $1( |$)"); do
    tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2" && { echo "$p"; return; }
  done
}
# waits (up to 60 s) for a checkpoint at step $2 or later under $1: only the
# two newest are kept, so on a loaded machine checkpoint $2 itself can come
# and go between two looks
wait_ckpt() {
  local i d
  for i in $(seq 1 3000); do
    for d in "$1"/checkpoints/ckpt-*; do   # ckpt-N only, not ckpt-N.tmp.PID
      [[ -d $d && ${d##*ckpt-} =~ ^[0-9]+$ ]] && [ "$((10#${d##*ckpt-}))" -ge "$2" ] && return 0
    done
    sleep 0.02
  done
  return 1
}
# "step loss" lines of the newest run (or run $2) in database $1
losses() { sqlite3 "$1" "SELECT step, printf('%.10g', value) FROM metrics WHERE key = 'loss' AND run_id = ${2:-(SELECT max(id) FROM runs)} ORDER BY step"; }
# the largest relative difference between two such listings
loss_diff() {
  paste -d' ' <(echo "$1") <(echo "$2") | awk -F'[ |]' '{ d = $2 - $4; if (d < 0) d = -d; a = $2 < 0 ? -$2 : $2; r = d / (a > 1e-12 ? a : 1e-12); if (r > m) m = r; n++ } END { printf "%d %.3g\n", n, m }'
}
# the largest absolute difference between two adapters
adapter_diff() {
  "$LACOS" -e "local st = require 'lacos.safetensors'; local a, b = st.open('$1'), st.open('$2'); local m = 0
    for _, n in ipairs(a:names()) do m = math.max(m, a:get(n):float():maxdiff(b:get(n):float())) end; io.write(m)"
}

# ------------------------------------------------------------------ 1
run_cmd "${MPI[@]}" -np 2 "$LACOS" "${TRAIN[@]}" --out ref2 --db ref2.db
why=()
[ "$RC" = 0 ] || why+=("exit $RC")
grep -q "^lacos train: 2 ranks (1 host × 2 ranks), backend mpi$" <<<"$ERR" || why+=("no '2 ranks' banner")
grep -qE "communication: .* per step over mpi, .*% of the time in collectives" <<<"$ERR" || why+=("no communication line")
[ "$(grep -c '^  world_size' <<<"$ERR")" = 1 ] || why+=("the settings were not printed once (rank 0 alone)")
p=$(sqlite3 ref2.db "SELECT typeof(value_num) || ' ' || value_num FROM params WHERE key = 'world_size'")
[ "$p" = "real 2.0" ] || why+=("world_size param: '$p'")
p=$(sqlite3 ref2.db "SELECT value_text FROM params WHERE key = 'rank_layout'")
[ "$p" = "1 host × 2 ranks" ] || why+=("rank_layout param: '$p'")
p=$(sqlite3 ref2.db "SELECT value_text FROM params WHERE key = 'backend'")
[ "$p" = "mpi" ] || why+=("backend param: '$p'")
[ "$(sqlite3 ref2.db "SELECT count(*) FROM runs")" = 1 ] || why+=("not exactly one run recorded")
run_cmd timeout 300 "$LACOS" "${TRAIN[@]}" --out ref1 --db ref1.db
[ "$RC" = 0 ] || why+=("one process: exit $RC: ${ERR:0:300}")
read -r n worst <<<"$(loss_diff "$(losses ref1.db)" "$(losses ref2.db)")"
[ "$n" = 40 ] || why+=("$n steps compared")
awk -v w="$worst" 'BEGIN { exit !(w <= 1e-5) }' || why+=("one process vs two ranks: loss differs by $worst (relative)")
echo "# one process vs two ranks over 40 steps: worst relative loss difference $worst; adapter $(adapter_diff ref1/adapter_model.safetensors ref2/adapter_model.safetensors)"
[ ${#why[@]} = 0 ] && ok "${NAMES[0]}" || not_ok "${NAMES[0]}" "${why[@]}" "stderr: ${ERR:0:800}"

# ------------------------------------------------------------------ 2
why=()
run_cmd "${MPI[@]}" -np 3 "$LACOS" "${TRAIN[@]}" --out u --no-db
[ "$RC" = 2 ] || why+=("-np 3 --batch-size 8: exit $RC")
grep -q "the global batch of 8 pairs does not split evenly among 3 ranks" <<<"$ERR" || why+=("-np 3: no message naming 8 and 3")
[ "$(grep -c 'does not split evenly' <<<"$ERR")" = 1 ] || why+=("-np 3: the message was not printed once")
run_cmd "${MPI[@]}" -np 4 "$LACOS" "${TRAIN[@]}" --batch-size 2 --out u --no-db
[ "$RC" = 2 ] || why+=("-np 4 --batch-size 2: exit $RC")
grep -q "4 ranks but a global batch of 2 pairs" <<<"$ERR" || why+=("-np 4 --batch-size 2: no message")
gpus=$("$LACOS" -e 'io.write(require("lacos.engine").C.lacos_cuda_device_count())' 2>/dev/null)
if [ "${gpus:-0}" -lt 2 ]; then
  run_cmd "${MPI[@]}" -np 2 "$LACOS" "${TRAIN[@]}" --device cuda --out u --no-db
  [ "$RC" = 2 ] || why+=("--device cuda with $gpus GPUs for 2 ranks: exit $RC")
  grep -qE "has no usable GPU|2 ranks run on host .* but it shows 1 GPU" <<<"$ERR" || why+=("--device cuda: no message about GPUs")
fi
[ -e u ] && why+=("an output directory was made")
[ ${#why[@]} = 0 ] && ok "${NAMES[1]}" || not_ok "${NAMES[1]}" "${why[@]}" "stderr: ${ERR:0:800}"

# ------------------------------------------------------------------ 3
why=()
run_cmd "${MPI[@]}" -np 1 "$LACOS" "${TRAIN[@]}" --out mm --no-db --lr 1e-4 : -np 1 "$LACOS" "${TRAIN[@]}" --out mm --no-db --lr 2e-4
[ "$RC" = 1 ] || why+=("--lr 1e-4 : --lr 2e-4: exit $RC")
grep -q "rank 1 (host [^,]*, pid [0-9]*) has --lr = 0.0002, rank 0 (host .*) has 0.0001" <<<"$ERR" || why+=("--lr: the difference is not named")
[ -e mm/checkpoints ] && why+=("--lr: checkpoints were written")
for w in data model; do
  run_cmd "${MPI[@]}" -np 2 "$LACOS" run "$ROOT/tests/lua/dist_mismatch.lua" "$w" mm-$w
  [ "$RC" = 1 ] || why+=("$w: exit $RC")
  pat=$([ $w = data ] && echo 'has data = .*23 pairs.*, rank 0 .* has .*24 pairs' || echo 'has weights = .*seed 2.*, rank 0 .* has .*seed 1')
  grep -qE "not started alike.*$pat" <<<"$ERR" || why+=("$w: the difference is not named")
  ls mm-$w/ckpt-* >/dev/null 2>&1 && why+=("$w: a step was taken")
done
run_cmd "${MPI[@]}" -np 2 "$LACOS" run "$ROOT/tests/lua/dist_mismatch.lua" none mm-none
[ "$RC" = 0 ] || why+=("ranks started alike: exit $RC: ${ERR:0:300}")
[ ${#why[@]} = 0 ] && ok "${NAMES[2]}" || not_ok "${NAMES[2]}" "${why[@]}" "stderr: ${ERR:0:800}"

# ------------------------------------------------------------------ 4, 5
# kill_rank R: rank R dies by SIGKILL once checkpoint 4 exists; the job must
# end on its own (timeout 300 never fires), the other rank naming the dead
# one; then the same command resumes to the end.
kill_rank() {
  local r=$1 out=k$1 other=$((1 - $1)) pid
  why=()
  rm -rf "$out" "$out.db"
  "${MPI[@]}" -np 2 "$LACOS" "${TRAIN[@]}" --out "$out" --db "$out.db" >"$out.log" 2>&1 &
  local job=$!
  wait_ckpt "$out" 4 || why+=("checkpoint 4 never came")
  pid=$(rank_pid "$out" "$r")
  [ -n "$pid" ] && kill -KILL "$pid"
  wait "$job"
  local rc=$? log
  log=$(cat "$out.log")
  [ -n "$pid" ] || why+=("rank $r was already gone")
  [ "$rc" != 124 ] || why+=("the job had to be killed by timeout")
  [ "$rc" != 0 ] || why+=("the job exited 0")
  grep -qE "rank $r \(host [^,]*, pid $pid\) died: its process is gone" <<<"$log" || why+=("the dead rank is not named")
  [ -d "$out/checkpoints/ckpt-$(printf %08d 40)" ] && why+=("the run reached its end before the kill")
  local st
  st=$(sqlite3 "$out.db" "SELECT status FROM runs ORDER BY id" | tr '\n' ' ')
  if [ "$r" = 1 ]; then [ "$st" = "failed " ] || why+=("run recorded as '$st', not failed"); fi
  run_cmd "${MPI[@]}" -np 2 "$LACOS" "${TRAIN[@]}" --out "$out" --db "$out.db"
  [ "$RC" = 0 ] || why+=("the rerun: exit $RC: ${ERR:0:400}")
  grep -q "resumed from step" <<<"$ERR" || why+=("the rerun did not resume")
  cmp -s "$out/adapter_model.safetensors" ref2/adapter_model.safetensors || why+=("the adapter differs from the uninterrupted run's")
  st=$(sqlite3 "$out.db" "SELECT status FROM runs ORDER BY id" | tr '\n' ' ')
  case "$st" in "failed done "|"dead done ") ;; *) why+=("runs recorded: '$st'") ;; esac
  read -r n worst <<<"$(loss_diff "$(losses ref2.db)" "$(losses "$out.db")")"
  [ "$n" = 40 ] && [ "$worst" = 0 ] || why+=("the resumed run's 40 losses differ from the uninterrupted run's (worst $worst over $n)")
  [ ${#why[@]} = 0 ] && ok "${NAMES[$((3 + r))]}" || not_ok "${NAMES[$((3 + r))]}" "${why[@]}" "log: ${log:0:1500}"
}
kill_rank 1
kill_rank 0

# ------------------------------------------------------------------ 6
why=()
rm -rf s s.db
"${MPI[@]}" -np 2 "$LACOS" "${TRAIN[@]}" --out s --db s.db --comm-timeout 2 >s.log 2>&1 &
job=$!
wait_ckpt s 4 || why+=("checkpoint 4 never came")
pid=$(rank_pid s 1)
[ -n "$pid" ] && kill -STOP "$pid"
wait "$job"
rc=$?
[ -n "$pid" ] && kill -CONT "$pid" 2>/dev/null
log=$(cat s.log)
[ "$rc" != 124 ] || why+=("the job had to be killed by timeout")
grep -qE "rank 1 \(host [^,]*, pid $pid\) stopped answering: nothing heard from it for [0-9]+ s \(timeout 2 s\)" <<<"$log" ||
  why+=("the silent rank is not named")
[ "$(sqlite3 s.db "SELECT status FROM runs")" = failed ] || why+=("the run is not recorded failed")
[ ${#why[@]} = 0 ] && ok "${NAMES[5]}" || not_ok "${NAMES[5]}" "${why[@]}" "log: ${log:0:1500}"

# ------------------------------------------------------------------ 7
why=()
rm -rf t t.db
"${MPI[@]}" -np 2 "$LACOS" "${TRAIN[@]}" --out t --db t.db >t.log 2>&1 &
job=$!
wait_ckpt t 4 || why+=("checkpoint 4 never came")
p0=$(rank_pid t 0) p1=$(rank_pid t 1)
kill -TERM $p0 $p1
wait "$job"
rc=$?
log=$(cat t.log)
[ "$rc" = 130 ] || why+=("exit $rc, not 130")
step=$(sed -n 's/.*interrupted after \([0-9]*\) of 40 steps.*/\1/p' <<<"$log")
[ -n "$step" ] && [ -d "t/checkpoints/ckpt-$(printf %08d "$step")" ] || why+=("no checkpoint at the step it stopped ($step)")
[ "$(sqlite3 t.db "SELECT status FROM runs")" = interrupted ] || why+=("the run is not recorded interrupted")
run_cmd timeout 300 "$LACOS" "${TRAIN[@]}" --out t --db t.db
[ "$RC" = 0 ] || why+=("resuming with one process: exit $RC: ${ERR:0:400}")
grep -q "resumed from step $step" <<<"$ERR" || why+=("one process did not resume from step $step")
read -r n worst <<<"$(loss_diff "$(losses ref2.db)" "$(losses t.db)")"
[ "$n" = 40 ] && awk -v w="$worst" 'BEGIN { exit !(w <= 1e-5) }' || why+=("losses differ from the uninterrupted run's by $worst over $n steps")
a=$(adapter_diff t/adapter_model.safetensors ref2/adapter_model.safetensors)
awk -v a="$a" 'BEGIN { exit !(a <= 1e-4) }' || why+=("the adapter differs by $a")
echo "# stopped by SIGTERM at step $step of 40 with 2 ranks, resumed with 1 process: losses within $worst (relative), adapter within $a"
[ ${#why[@]} = 0 ] && ok "${NAMES[6]}" || not_ok "${NAMES[6]}" "${why[@]}" "log: ${log:0:1500}"

# ------------------------------------------------------------------ 8
if [ -n "${LACOS_TEST_DATA:-}" ] && [ -f "$LACOS_TEST_DATA/sts/stsb/sts-test.csv" ]; then
  why=()
  SW=(run "$ROOT/tests/cli/sweep_small.lua" --pairs 0,96 --data "$LACOS_TEST_DATA")
  run_cmd timeout 300 "$LACOS" "${SW[@]}" --db sw1.db --out sw1
  [ "$RC" = 0 ] || why+=("one process: exit $RC: ${ERR:0:300}")
  run_cmd "${MPI[@]}" -np 2 "$LACOS" "${SW[@]}" --db sw2.db --out sw2
  [ "$RC" = 0 ] || why+=("two ranks: exit $RC: ${ERR:0:300}")
  [ "$(sqlite3 sw2.db "SELECT count(*) || ' ' || sum(status = 'done') FROM runs")" = "2 2" ] || why+=("runs: $(sqlite3 sw2.db "SELECT id, status FROM runs")")
  q="SELECT r.id || ' ' || s.dataset || ' ' || printf('%.6f', s.spearman) FROM runs r JOIN sts_results s ON s.run_id = r.id ORDER BY 1"
  a=$(sqlite3 sw1.db "$q") b=$(sqlite3 sw2.db "$q")
  [ -n "$a" ] && [ "$a" = "$b" ] || why+=("the scores differ" "one process: $(echo $a | head -c 300)" "two ranks: $(echo $b | head -c 300)")
  ls sw2/small/*/adapter/adapter_model.safetensors >/dev/null 2>&1 || why+=("no adapter saved")
  [ ${#why[@]} = 0 ] && ok "${NAMES[7]}" || not_ok "${NAMES[7]}" "${why[@]}" "stderr: ${ERR:0:800}"
else
  skip "${NAMES[7]}" "the shared datasets (LACOS_TEST_DATA) are not there"
fi

finish
