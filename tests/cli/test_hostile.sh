#!/usr/bin/env bash
# test_hostile.sh: hostile names at every place where lacos makes a
# directory, writes a file, starts a program (gnuplot, tar, gzip) or prints
# a name. One name holds all the tricks: a leading '-' (read as an option by
# a program), $(...) and backquotes (run by a shell, and backquotes by
# gnuplot inside double-quoted strings), both quotes, a newline and a
# trailing space. Each command must treat it as the bytes it is: the output
# lands at exactly that path, and nothing named PWNED appears anywhere. A run
# or experiment name with an ANSI escape sequence is printed escaped.
source "$(dirname "$0")/lib.sh"
ROOT=${LACOS_ROOT:-.}
DATA=${LACOS_TEST_DATA:-}
W="$TMP/hostile"
rm -rf "$W" && mkdir -p "$W" && cd "$W" || exit 1
export LACOS_DB="$W/default.db"
TOK="$ROOT/datasets/tokenizers/bloomlike-32k.json"
EVIL=$'-x$(touch PWNED-dollar)`touch PWNED-tick`\'q"\nz '
ESC=$'\033[31mred\033[0m'
pwned() { find "$W" /tmp -maxdepth 3 -name 'PWNED*' 2>/dev/null | head -3; }
# clean: no PWNED file anywhere (a shell or gnuplot ran a piece of the name)
clean() { local p; p=$(pwned); [ -z "$p" ] && ok "$1: nothing ran (no PWNED file)" || not_ok "$1: nothing ran (no PWNED file)" "$p"; }
there() { [ -e "$2" ] && ok "$1" || not_ok "$1" "missing: $(printf '%q' "$2")" "$(ls -la "$(dirname "$2")" 2>&1 | head -20)"; }

"$LACOS" model random tiny-xs --out m --seed 1 --tokenizer "$TOK" >/dev/null 2>&1
awk 'BEGIN { for (i = 1; i <= 8; i++) printf "sentence %d about a cat on a mat\tline %d, the cat again\n", i, i }' > pairs.tsv

# ---------------------------------------------------------------- commands that write
mkdir -p w && cd w
run_in $'a cat\n' "$LACOS" embed --model ../m --out "$EVIL.npy"
expect "embed --out NAME.npy" 0 "wrote 1 x 64 embeddings"
there "embed wrote exactly NAME.npy" "$EVIL.npy"
run_cmd "$LACOS" train --model ../m --pairs ../pairs.tsv --out "$EVIL" --steps 2 --batch-size 4 --db "$EVIL.db"
expect "train --out NAME --db NAME.db" 0 "done after 2 of 2 steps"
there "train saved the adapter under NAME" "$EVIL/adapter_model.safetensors"
there "train made the database NAME.db" "$EVIL.db"
run_cmd "$LACOS" model random tiny-xs --out "$EVIL-model" --seed 2 --tokenizer "$TOK"
expect "model random --out NAME" 0 ""
there "model random wrote NAME/config.json" "$EVIL-model/config.json"
run_cmd "$LACOS" model merge --model ../m --adapter "$EVIL" --out "$EVIL-merged"
expect "model merge --adapter NAME --out NAME" 0 ""
there "model merge wrote NAME/model.safetensors" "$EVIL-merged/model.safetensors"
clean "embed, train, model random, model merge"
cd "$W"

# ---------------------------------------------------------------- a results database with hostile names
# (a shared database: the names are whatever another user recorded)
ESCNAME="$ESC" EVIL="$EVIL" "$LACOS" -e "
local lacos = require 'lacos'
local db = lacos.results.open('names.db')
for _, a in ipairs { 0, 100, 1000 } do
  for _, m in ipairs { 'tiny-xs', 'tiny-s' } do
    local run = db:start_run { experiment = os.getenv('EVIL'), name = m .. ' ' .. os.getenv('ESCNAME'),
                               config = { model = m, pairs = a }, seed = 1 }
    run:params { model = m, pairs = a, n_pairs = a, model_params = lacos.bloom.param_count(m) }
    for _, s in ipairs { { 'STS12', 0.2 + a / 1e4 }, { 'STSBenchmark', 0.3 + a / 1e4 } } do
      run:sts { dataset = s[1], language = 'en', split = 'test', n = 300, spearman = s[2], pearson = s[2],
                similarity = 'cosine', pooling = 'mean', text_variant = 'raw', aggregation = 'all', model = m,
                dataset_sha256 = ('ab'):rep(32) }
    end
    run:finish('done')
  end
end
db:close()"
[ "$(sqlite3 names.db "SELECT count(*) FROM runs WHERE status = 'done'")" = 6 ] && ok "a database whose experiment is NAME" ||
  not_ok "a database whose experiment is NAME"

run_cmd "$LACOS" results plot "$EVIL" --out "$EVIL-plots" --db names.db
expect "results plot EXPERIMENT --out NAME (gnuplot: the experiment name in its title and file names)" 0 "vs_params.png"
safe=${EVIL//\//_}; safe=${safe//$'\n'/_}
for f in vs_params.png vs_params.svg vs_data.png vs_data.svg; do
  there "plot wrote NAME/<experiment>_$f" "$EVIL-plots/${safe}_$f"
  [ -s "$EVIL-plots/${safe}_$f" ] || not_ok "plot: $f is not empty"
done
grep -q "touch PWNED-tick" -- "$EVIL-plots/${safe}_vs_params.svg" && ok "the title shows the backquoted text as text" ||
  not_ok "the title shows the backquoted text as text"
run_cmd "$LACOS" results plot "$EVIL" --out "plots" --db names.db
expect "results plot EXPERIMENT (into a plain directory)" 0 ""
[ -z "$(find plots -mindepth 2)" ] && [ "$(find plots -type f -name '*_vs_params.png' -printf x | wc -c)" = 1 ] &&
  ok "the experiment name never leaves --out (its '/' and newline become '_')" ||
  not_ok "the experiment name never leaves --out" "$(ls -R plots)"
clean "results plot"

id=$(sqlite3 names.db "SELECT min(id) FROM runs")
run_cmd "$LACOS" results mteb "$id" --out "$EVIL-mteb" --db names.db
expect "results mteb RUN --out NAME" 0 "STS12.json"
there "mteb wrote NAME/STS12.json" "$EVIL-mteb/STS12.json"
clean "results mteb"

# names printed to a terminal: an ANSI escape in a run name is shown escaped
run_cmd "$LACOS" results list --db names.db
expect "results list" 0 "tiny-xs \\\\x1b\[31mred\\\\x1b\[0m"
grep -q $'\033' <<<"$OUT" && not_ok "results list sends no raw escape character" "$(cat -v <<<"$OUT" | head -5)" ||
  ok "results list sends no raw escape character"
grep -q '\\n' <<<"$OUT" && ok "results list shows the newline in the experiment name as \\n" || not_ok "results list shows the newline as \\n" "$OUT"
run_cmd "$LACOS" results show "$id" --db names.db
grep -q $'\033' <<<"$OUT$ERR" && not_ok "results show sends no raw escape character" "$(cat -v <<<"$OUT")" ||
  ok "results show sends no raw escape character"
run_cmd "$LACOS" results scale "$EVIL" --db names.db
expect "results scale EXPERIMENT" 0 ""
grep -q $'\033' <<<"$OUT$ERR" && not_ok "results scale sends no raw escape character" || ok "results scale sends no raw escape character"
run_cmd "$LACOS" results scale nosuch --db names.db
expect "results scale: an unknown name lists the names, escaped" 1 "no experiment 'nosuch'"
grep -q $'\033' <<<"$ERR" && not_ok "... without raw control characters" || ok "... without raw control characters"

# ---------------------------------------------------------------- lacos pull --out NAME (a loopback hub)
HUB="$W/hub"
mkdir -p "$HUB/api/models/t/tiny/tree" "$HUB/t/tiny/resolve/main"
cp m/config.json m/tokenizer.json m/model.safetensors "$HUB/t/tiny/resolve/main/"
"$LACOS" -e "
local E = require 'lacos.engine'; local ffi, C = E.ffi, E.C
local dir = '$HUB/t/tiny/resolve/main/'
local tree = {}
for _, f in ipairs { 'config.json', 'tokenizer.json', 'model.safetensors' } do
  local p = dir .. f
  local h, b = ffi.new('char[65]'), ffi.new('char[41]')
  E.check(C.lacos_sha256_file(p, h)); E.check(C.lacos_git_blob_sha1_file(p, b))
  local e = { type = 'file', path = f, size = require('lacos').data.file_size(p), oid = ffi.string(b) }
  if f:match('safetensors') then e.lfs = { oid = ffi.string(h), size = e.size } end
  tree[#tree + 1] = e
end
require('lacos.util').write_file('$HUB/api/models/t/tiny/tree/main', require('lacos.json').encode(tree))"
"$LACOS" run "$ROOT/tests/lua/httpd.lua" "$HUB" "$W/hub.port" "$W/hub.log" 60 >/dev/null 2>&1 &
HTTPD=$!
trap 'kill $HTTPD 2>/dev/null' EXIT
for _ in $(seq 100); do [ -s "$W/hub.port" ] && break; sleep 0.05; done
PORT=$(cat "$W/hub.port" 2>/dev/null)
run_cmd "$LACOS" pull t/tiny --endpoint "http://127.0.0.1:$PORT" --out "$EVIL-pulled"
expect "pull --out NAME" 0 "lacos pull: done"
there "pull wrote NAME/model.safetensors" "$EVIL-pulled/model.safetensors"
there "pull wrote NAME/lacos.json" "$EVIL-pulled/lacos.json"
clean "pull"

# ---------------------------------------------------------------- data pull --data NAME (gzip runs on a file there)
mkdir -p "$HUB/sbert.net/datasets"
printf 'split\tdataset\tfilename\tsentence1\tsentence2\tlabel\ntrain\tSNLI\tf\tA man.\tA person.\tentailment\n' | gzip -c > "$HUB/sbert.net/datasets/AllNLI.tsv.gz"
# (--url: the set's own .gz download from the loopback server; LACOS_DATA_MIRROR now serves a data root's layout)
run_cmd "$LACOS" data pull allnli --data "$EVIL-data" --no-verify --url "http://127.0.0.1:$PORT/sbert.net/datasets/AllNLI.tsv.gz"
expect "data pull --data NAME (gzip on NAME/...)" 0 "allnli: present under"
there "data pull installed NAME/nli/allnli/AllNLI.tsv" "$EVIL-data/nli/allnli/AllNLI.tsv"
there "data pull recorded NAME/.lacos/pulled/allnli.json" "$EVIL-data/.lacos/pulled/allnli.json"
clean "data pull"

# ---------------------------------------------------------------- a sweep's --out and --name
if [ -n "$DATA" ] && [ -d "$DATA/sts" ]; then
  run_cmd "$LACOS" run "$ROOT/tests/cli/sweep_small.lua" --db sweep.db --out "$EVIL-runs" --name "$EVIL" --pairs 0,16 --data "$DATA"
  expect "a sweep with --out NAME and --name NAME" 0 "done 2 skipped 0 failed 0"
  n=$(find "./$EVIL-runs" -name adapter_model.safetensors -printf x | wc -c)
  [ "$n" = 1 ] && ok "the sweep's point wrote its adapter under NAME/<sweep name>/" || not_ok "the sweep's adapter under NAME" "$(find "./$EVIL-runs" | head)"
  [ "$(sqlite3 sweep.db "SELECT count(*) FROM experiments WHERE name = '$(sed "s/'/''/g" <<<"$EVIL")'")" = 1 ] &&
    ok "the experiment is recorded under NAME" || not_ok "the experiment is recorded under NAME" "$(sqlite3 sweep.db 'SELECT name FROM experiments')"
  run_cmd "$LACOS" results plot "$EVIL" --out "$EVIL-sweep-plots" --db sweep.db
  expect "the sweep's experiment NAME plotted" 0 "vs_params.png"
  clean "sweep and its plot"
else
  skip "a sweep with --out NAME and --name NAME" "LACOS_TEST_DATA is not there"
fi

# ---------------------------------------------------------------- the gnuplot literal, alone
run_cmd "$LACOS" -e "print(require('lacos.util').gnuplot_string([[a\`touch x\`'b]] .. '\n' .. [[@m\$(y)]]))"
expect "util.gnuplot_string: single quotes, a doubled quote, control characters outside" 0 "^'a\`touch x\`''b'\.\"\\\\012\"\.'@m\\\$\(y\)'$"
clean "everything"
finish
