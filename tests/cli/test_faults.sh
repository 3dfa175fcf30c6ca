#!/usr/bin/env bash
# test_faults.sh: writes that fail and limits that bind, as lacos meets them.
#   - standard output that cannot be written (/dev/full, closed) is an error
#     at exit with the cause, never exit 0 with the output cut short;
#   - a full disk (a tmpfs of a few KiB, mounted in a private mount namespace
#     with unshare -m, as root) and a full file (tests/cli/full_shim.c, an
#     LD_PRELOAD library that turns one chosen file into /dev/full) fail
#     every writer with a message naming the file and the cause, leaving the
#     previous file or nothing, never an empty or cut one; a results
#     database that cannot be created leaves no file behind;
#   - a WAL results database on a read-only mount can still be read;
#   - temporaries that killed processes left ("<out>.tmp.<pid>") are removed
#     by the next run, those of live processes are not;
#   - an address-space limit (ulimit -v) never hangs or crashes lacos: too
#     small to start is a clear error, otherwise the threads and the memory
#     planner fit under it; a cgroup's memory limit bounds the planner too.
source "$(dirname "$0")/lib.sh"
ROOT=${LACOS_ROOT:-.}
W="$TMP/faults"
rm -rf "$W" && mkdir -p "$W" && cd "$W" || exit 1
export LACOS_DB="$W/default.db"
TOK="$ROOT/datasets/tokenizers/bloomlike-32k.json"
"$LACOS" model random tiny-xs --out m --seed 1 --tokenizer "$TOK" >/dev/null 2>&1
awk 'BEGIN { for (i = 1; i <= 8; i++) printf "sentence %d about a cat on a mat\tline %d, the cat again\n", i, i }' > pairs.tsv
printf 'A cat sits.\tA cat is sitting.\t4.5\nA dog runs.\tA plane flies.\t0.5\nA man cooks.\tSomeone cooks.\t3.9\n' > g.tsv
"$LACOS" sts --model m --file g.tsv --db runs.db >/dev/null 2>&1
# a run with scores on MTEB's tasks, for results mteb
"$LACOS" -e "
local db = require('lacos').results.open('runs.db')
local run = db:start_run { name = 'mteb run', config = { x = 1 }, seed = 1 }
for _, t in ipairs { 'STS12', 'STSBenchmark' } do
  run:sts { dataset = t, language = 'en', split = 'test', n = 300, spearman = 0.5, pearson = 0.5, similarity = 'cosine',
            pooling = 'mean', text_variant = 'raw', aggregation = 'all', model = 'm', dataset_sha256 = ('ab'):rep(32) }
end
run:finish('done'); db:close()" >/dev/null 2>&1
RUN=$(sqlite3 runs.db "SELECT max(id) FROM runs")
# no crash, no hang: a signal or timeout's 124 is never an acceptable ending
sane() { [ "$RC" -lt 124 ] || [ "$RC" -gt 137 ]; }
# AddressSanitizer (make SAN=1) reserves terabytes of address space, and
# valgrind runs its own loader: ulimit -v means nothing under either
ASAN=
ldd "$(readlink -f "$LACOS")" 2>/dev/null | grep -q libasan && ASAN=1
[ -n "${LACOS_UNDER_VALGRIND:-}" ] && ASAN=1
# an LD_PRELOAD library before the ASan runtime is allowed when asked
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"

# ---------------------------------------------------------------- standard output
ENOSPC_OUT="lacos: write error on standard output: No space left on device"
full_out() {  # full_out NAME INPUT cmd...: the command's stdout is /dev/full
  local name=$1 input=$2; shift 2
  OUT=$(printf '%s' "$input" | "$@" 2>&1 >/dev/full); RC=$?; ERR=$OUT; OUT=
  expect "$name > /dev/full fails with the cause" 1 "$ENOSPC_OUT"
}
full_out "embed --out - --tsv" $'a cat\nun chat\n' "$LACOS" embed --model m --out - --tsv
full_out "tokenize" $'a cat\n' "$LACOS" tokenize --tokenizer "$TOK"
full_out "results list" "" "$LACOS" results list --db runs.db
full_out "results sql" "" "$LACOS" results sql "SELECT * FROM runs" --db runs.db
full_out "results mteb (JSON on stdout)" "" "$LACOS" results mteb "$RUN" --db runs.db
full_out "-e print" "" "$LACOS" -e 'print("hello")'
full_out "-e print, 1 MB (past the buffer)" "" "$LACOS" -e 'for i = 1, 20000 do print(("x"):rep(50)) end'
OUT=$("$LACOS" -e 'print("hello")' 2>&1 >&-); RC=$?; ERR=$OUT; OUT=
expect "a closed stdout is an error too" 1 "lacos: write error on standard output: Bad file descriptor"
run_cmd "$LACOS" -e 'print("hello")'
expect "a writable stdout: exit 0, no message" 0 "^hello$"

# ---------------------------------------------------------------- one file full (LD_PRELOAD)
SHIM="$W/full_shim.so"
if cc -shared -fPIC -O2 -o "$SHIM" "$ROOT/tests/cli/full_shim.c" -ldl 2>"$W/cc.log"; then
  # the shim itself: only the chosen file is full
  OUT=$(LD_PRELOAD="$SHIM" LACOS_TEST_FULL=chosen "$LACOS" -e "
    local u = require 'lacos.util'
    u.write_file('other.txt', 'fine')
    print(pcall(u.write_file, 'chosen.txt', 'lost'))" 2>&1); RC=$?; ERR=
  expect "the shim fills the chosen file only" 0 "^false	chosen.txt: write failed: No space left on device$"
  [ "$(cat other.txt 2>/dev/null)" = fine ] && [ ! -e chosen.txt ] && ! ls chosen.txt.tmp.* >/dev/null 2>&1 &&
    ok "util.write_file: no file and no temporary left when the write fails" || not_ok "util.write_file leaves nothing" "$(ls)"
  printf 'old\n' > kept.json
  OUT=$(LD_PRELOAD="$SHIM" LACOS_TEST_FULL=kept.json "$LACOS" -e "require('lacos.json').write('kept.json', { new = true })" 2>&1); RC=$?; ERR=
  expect "json.write on a full disk: an error naming the file" 1 "kept.json: write failed: No space left on device"
  [ "$(cat kept.json)" = old ] && ok "json.write: the previous file is left whole" || not_ok "json.write: the previous file is left whole" "$(cat kept.json)"

  # lacos pull and lacos data pull through a loopback server, their last small file on a full disk
  HUB="$W/hub"
  mkdir -p "$HUB/api/models/t/tiny/tree" "$HUB/t/tiny/resolve/main" "$HUB/sbert.net/datasets"
  cp m/config.json m/tokenizer.json m/model.safetensors "$HUB/t/tiny/resolve/main/"
  "$LACOS" -e "
    local E = require 'lacos.engine'; local ffi, C = E.ffi, E.C
    local dir, tree = '$HUB/t/tiny/resolve/main/', {}
    for _, f in ipairs { 'config.json', 'tokenizer.json', 'model.safetensors' } do
      local h, b = ffi.new('char[65]'), ffi.new('char[41]')
      E.check(C.lacos_sha256_file(dir .. f, h)); E.check(C.lacos_git_blob_sha1_file(dir .. f, b))
      local e = { type = 'file', path = f, size = require('lacos').data.file_size(dir .. f), oid = ffi.string(b) }
      if f:match('safetensors') then e.lfs = { oid = ffi.string(h), size = e.size } end
      tree[#tree + 1] = e
    end
    require('lacos.util').write_file('$HUB/api/models/t/tiny/tree/main', require('lacos.json').encode(tree))"
  printf 'split\tdataset\tfilename\tsentence1\tsentence2\tlabel\ntrain\tSNLI\tf\tA man.\tA person.\tentailment\n' |
    gzip -c > "$HUB/sbert.net/datasets/AllNLI.tsv.gz"
  "$LACOS" run "$ROOT/tests/lua/httpd.lua" "$HUB" "$W/hub.port" "$W/hub.log" 60 >/dev/null 2>&1 &
  HTTPD=$!
  trap 'kill $HTTPD 2>/dev/null' EXIT
  for _ in $(seq 100); do [ -s "$W/hub.port" ] && break; sleep 0.05; done
  PORT=$(cat "$W/hub.port" 2>/dev/null)
  run_cmd env LD_PRELOAD="$SHIM" LACOS_TEST_FULL=pulled/lacos.json "$LACOS" pull t/tiny --endpoint "http://127.0.0.1:$PORT" --out pulled
  expect "pull onto a disk that fills at its last file: an error, not 'done'" 1 "pulled/lacos.json: write failed: No space left on device"
  grep -q "lacos pull: done" <<<"$ERR" && not_ok "pull does not say done" || ok "pull does not say done"
  [ ! -e pulled/lacos.json ] && ok "no empty lacos.json is left to fail later" || not_ok "no empty lacos.json is left" "$(ls -la pulled)"
  run_cmd "$LACOS" pull t/tiny --endpoint "http://127.0.0.1:$PORT" --out pulled
  expect "... and the same pull with room finishes it, keeping the verified files" 0 "present, verified"
  [ -s pulled/lacos.json ] && ok "lacos.json written on the second pull" || not_ok "lacos.json written on the second pull"
  # (--url: the set's own .gz download from the loopback server; LACOS_DATA_MIRROR now serves a data root's layout)
  run_cmd env LD_PRELOAD="$SHIM" LACOS_TEST_FULL=.lacos/pulled/allnli \
    "$LACOS" data pull allnli --data droot --no-verify --url "http://127.0.0.1:$PORT/sbert.net/datasets/AllNLI.tsv.gz"
  expect "data pull: its state file on a full disk is an error" 1 "droot/.lacos/pulled/allnli.json: write failed: No space left on device"
  [ ! -e droot/.lacos/pulled/allnli.json ] && ok "no empty state file is left" || not_ok "no empty state file is left" "$(ls -la droot/.lacos/pulled)"
  run_cmd env LD_PRELOAD="$SHIM" LACOS_TEST_FULL=out-full/STS "$LACOS" results mteb "$RUN" --out out-full --db runs.db
  expect "results mteb --out: a task file on a full disk is an error" 1 "out-full/STS[^:]*.json: write failed: No space left on device"
  [ -z "$(find out-full -name '*.json' -size 0 2>/dev/null)" ] && ok "results mteb leaves no empty JSON file" ||
    not_ok "results mteb leaves no empty JSON file" "$(ls -la out-full)"
else
  skip "one file full (LD_PRELOAD)" "no C compiler to build the shim: $(head -1 "$W/cc.log")"
fi

# ---------------------------------------------------------------- a full disk, a read-only mount (as root)
in_ns() { unshare -m bash -c "$1" 2>&1; }
if [ "$(id -u)" = 0 ] && unshare -m true 2>/dev/null && in_ns "mount -t tmpfs -o size=64k tmpfs '$W' && umount '$W'" >/dev/null; then
  mkdir -p "$W/disk"
  FILL="mount -t tmpfs -o size=64k tmpfs '$W/disk' && dd if=/dev/zero of='$W/disk/filler' bs=4k count=16 2>/dev/null;"
  OUT=$(in_ns "$FILL cd '$W/disk' && '$LACOS' results mteb $RUN --out mteb --db '$W/runs.db'; echo \"rc=\$?\"; ls -A mteb | tr '\n' ' '")
  grep -q "rc=1" <<<"$OUT" && grep -q "No space left on device" <<<"$OUT" && ok "results mteb on a full disk: exit 1 with the cause" ||
    not_ok "results mteb on a full disk: exit 1 with the cause" "$OUT"
  grep -q "json" <<<"$(tail -1 <<<"$OUT")" && not_ok "results mteb on a full disk leaves no JSON file" "$OUT" ||
    ok "results mteb on a full disk leaves no JSON file"
  OUT=$(in_ns "$FILL cd '$W/disk' && printf 'a cat\n' | '$LACOS' embed --model '$W/m' --out e.npy; echo \"rc=\$?\"; ls -A | tr '\n' ' '")
  grep -q "rc=1" <<<"$OUT" && grep -q "e.npy.*No space left on device" <<<"$OUT" && ! grep -q "e.npy" <<<"$(tail -1 <<<"$OUT")" &&
    ok "embed --out on a full disk: the cause, no file, no temporary" || not_ok "embed --out on a full disk" "$OUT"
  for free in 0 2 8; do
    OUT=$(in_ns "mount -t tmpfs -o size=128k tmpfs '$W/disk' && dd if=/dev/zero of='$W/disk/filler' bs=4k count=$((32 - free)) 2>/dev/null
      '$LACOS' sts --model '$W/m' --file '$W/g.tsv' --db '$W/disk/new.db'; echo \"rc=\$?\"; ls -A '$W/disk' | tr '\n' ' '")
    if grep -q "rc=1" <<<"$OUT" && grep -qE "new.db: .*(the disk is full|No space left on device)" <<<"$OUT" && ! grep -q "not an error" <<<"$OUT"; then
      ok "a results database created on a full disk ($free blocks free): the cause in the message"
    else not_ok "a results database created on a full disk ($free blocks free): the cause in the message" "$OUT"; fi
    grep -q "new.db" <<<"$(tail -1 <<<"$OUT")" && not_ok "... and no database file left behind ($free blocks free)" "$OUT" ||
      ok "... and no database file left behind ($free blocks free)"
  done
  OUT=$(in_ns "mount -t tmpfs -o size=4m tmpfs '$W/disk' && '$LACOS' sts --model '$W/m' --file '$W/g.tsv' --db '$W/disk/wal.db' >/dev/null 2>&1
    sqlite3 '$W/disk/wal.db' 'PRAGMA journal_mode' && mount -o remount,ro '$W/disk' && touch '$W/disk/x' 2>/dev/null || echo read-only
    '$LACOS' results list --db '$W/disk/wal.db'; echo \"rc=\$?\"
    '$LACOS' results sql 'SELECT count(*) AS n FROM runs' --db '$W/disk/wal.db' --csv; echo \"rc=\$?\"
    '$LACOS' sts --model '$W/m' --file '$W/g.tsv' --db '$W/disk/wal.db'; echo \"rc=\$?\"")
  grep -q "^wal$" <<<"$OUT" && grep -q "^read-only$" <<<"$OUT" && ok "a WAL database on a mount made read-only" || not_ok "a WAL database on a read-only mount" "$OUT"
  grep -qE "^ *1 +sts " <<<"$OUT" && grep -q "^n$" <<<"$OUT" && [ "$(grep -c '^rc=0$' <<<"$OUT")" = 2 ] &&
    ok "... can still be read (results list, results sql)" || not_ok "... can still be read (results list, results sql)" "$OUT"
  grep -q "wal.db: the database is on a read-only file system; lacos needs to write to it" <<<"$OUT" && grep -q "^rc=1$" <<<"$OUT" &&
    ok "... and writing to it says the file system is read-only" || not_ok "... and writing to it says the file system is read-only" "$OUT"
else
  skip "a full disk and a read-only mount" "needs root and unshare -m with tmpfs mounts"
fi

# ---------------------------------------------------------------- temporaries of dead processes
sleep 0 & dead=$!; wait "$dead"
sleep 60 & alive=$!
"$LACOS" train --model m --pairs pairs.tsv --out ad --steps 2 --batch-size 4 --no-db >/dev/null 2>&1
mkdir -p "merged.tmp.$dead" "merged.tmp.$alive" && head -c 100000 /dev/zero > "merged.tmp.$dead/model.safetensors"
run_cmd "$LACOS" model merge --model m --adapter ad --out merged
expect "model merge" 0 ""
[ ! -e "merged.tmp.$dead" ] && ok "model merge removes the OUT.tmp.PID of a killed merge" || not_ok "model merge removes the OUT.tmp.PID of a killed merge" "$(ls)"
[ -d "merged.tmp.$alive" ] && ok "... but not one whose process is alive" || not_ok "... but not one whose process is alive"
printf 'junk' > "e.npy.tmp.$dead"; printf 'junk' > "e.npy.tmp.$alive"; printf 'junk' > "other.npy.tmp.$dead"
run_in $'a cat\n' "$LACOS" embed --model m --out e.npy
expect "embed" 0 "wrote 1 x 64"
[ ! -e "e.npy.tmp.$dead" ] && [ -e "e.npy.tmp.$alive" ] && [ -e "other.npy.tmp.$dead" ] &&
  ok "embed removes e.npy.tmp.PID of a dead process (only its own output's, only dead ones)" || not_ok "embed's stale temporary" "$(ls)"
kill "$alive" 2>/dev/null

# ---------------------------------------------------------------- ulimit -v
if [ -n "$ASAN" ]; then
  skip "ulimit -v and a cgroup limit" "a sanitizer or valgrind build (its address-space reservations and shadow memory are not lacos')"
  finish
fi
limited() { local v=$1; shift; OUT=$( (ulimit -v "$v"; exec timeout -s KILL 120 "$@") 2>&1); RC=$?; ERR=$OUT; OUT=; }
for v in 200000 300000; do
  limited "$v" "$LACOS" --version
  expect "ulimit -v $v: lacos --version stops at once with the limit and what it needs (no spinning)" 1 \
    "the address-space limit \(ulimit -v\) of [0-9]+ MiB is too small to start: .*raise it to at least [0-9]+ MiB"
done
limited 600000 "$LACOS" --version
expect "ulimit -v 600000: lacos --version" 0 "^lacos "
limited 600000 "$LACOS" -e 'print(os.getenv("OMP_NUM_THREADS"), require("lacos").threads())'
expect "ulimit -v 600000: the OpenMP threads are lowered to what fits" 0 "^1	1$"
limited 420000 "$LACOS" train --model m --pairs pairs.tsv --out lim420 --steps 2 --batch-size 4 --no-db
sane && ok "ulimit -v 420000: a tiny training neither crashes nor hangs (exit $RC)" || not_ok "ulimit -v 420000: a tiny training" "exit $RC" "$ERR"
grep -qE "done after 2 of 2 steps|needs about .* but only .* is available" <<<"$ERR" &&
  ok "... it trains or says how much memory it lacks" || not_ok "... it trains or says how much memory it lacks" "$ERR"
limited 700000 "$LACOS" train --model m --pairs pairs.tsv --out lim700 --steps 2 --batch-size 4 --no-db
expect "ulimit -v 700000: the tiny training runs" 0 "done after 2 of 2 steps"
avail=$(grep -oE '; [0-9.]+ (MiB|GiB) available' <<<"$ERR" | head -1)
grep -q MiB <<<"$avail" && [ "$(awk '{print int($2)}' <<<"$avail")" -lt 684 ] && ok "... and its plan counts what the limit leaves ($avail)" ||
  not_ok "... and its plan counts what the limit leaves" "$avail"
limited 700000 "$LACOS" train --model m --pairs pairs.tsv --out lim-big --steps 2 --batch-size 64 --max-length 2048 --no-db --checkpointing off
expect "ulimit -v 700000: a training that cannot fit is refused before it starts" 1 "this run needs about .* but only .* MiB is available"
limited 700000 env LACOS_THREADS=64 "$LACOS" -e 'print(require("lacos").threads())'
sane && ok "ulimit -v 700000: LACOS_THREADS=64 neither crashes nor hangs" || not_ok "ulimit -v 700000: LACOS_THREADS=64" "exit $RC"
limited 700000 "$LACOS" -e 'require("lacos").threads(64)'
expect "ulimit -v 700000: lacos.threads(64) is an error naming the limit" 1 "64 threads do not fit under the address-space limit"

# ---------------------------------------------------------------- a cgroup's memory limit
CG=
if [ "$(id -u)" = 0 ]; then
  own=$(sed -n 's/^[0-9]*:[^:]*memory[^:]*:\(.*\)$/\1/p' /proc/self/cgroup | head -1)
  if [ -n "$own" ] && [ -w "/sys/fs/cgroup/memory$own" ]; then
    CG="/sys/fs/cgroup/memory$own/lacos-test-$$"; mkdir -p "$CG" 2>/dev/null && echo 200M > "$CG/memory.limit_in_bytes" 2>/dev/null || CG=
  elif [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    own=$(sed -n 's/^0::\(.*\)$/\1/p' /proc/self/cgroup)
    CG="/sys/fs/cgroup${own%/}/lacos-test-$$"; mkdir -p "$CG" 2>/dev/null && echo 200M > "$CG/memory.max" 2>/dev/null || CG=
  fi
fi
if [ -n "$CG" ] && mkdir -p "$CG/task"; then
  # the process in a group below the limited one, as a Slurm task is below its job
  in_cg() { OUT=$(bash -c "echo \$\$ > '$CG/task/cgroup.procs' && exec \"\$@\"" _ "$@" 2>&1); RC=$?; ERR=$OUT; OUT=; }
  in_cg "$LACOS" -e 'local C = require("lacos").engine.C; print(C.lacos_memory_cgroup_limit() / 2^20, C.lacos_memory_available(0) <= 200 * 2^20)'
  expect "a cgroup limit of 200 MiB (of a group above the process's own too) bounds the planner" 0 "^200	true$"
  in_cg "$LACOS" train --model m --pairs pairs.tsv --out cg-big --steps 2 --batch-size 64 --max-length 2048 --no-db --checkpointing off
  expect "... a training that does not fit in it is refused before the OOM killer would end it" 1 "this run needs about .* but only .* MiB is available"
  rmdir "$CG/task" "$CG" 2>/dev/null
else
  skip "a cgroup's memory limit" "no writable memory cgroup here (needs root)"
fi
finish
