#!/usr/bin/env bash
# test_badinput.sh: the catalogue of bad input, exercised as a user meets it
# (through the lacos commands, scripts, -e, -l and the REPL on a pipe). One
# line per case below: what is broken, the command, the exit status it must
# end with, a pattern its message must match (naming the file, and the line
# where there is one, and the cause), and what must not be left behind.
# Every case also requires: no crash (signal, sanitizer report), no Lua
# traceback for a mistake in the user's input (a file, an option, data), and
# nothing on stdout (a partial result) unless the case says so. A bug in a
# user's Lua code (--traceback) is the other way round: file:line and a
# traceback of the user's own frames, none of lacos' or C's. Other test files test some of these in more
# depth; this is the one place that lists them all.
source "$(dirname "$0")/lib.sh"
ROOT=${LACOS_ROOT:-.}
B="$TMP/badinput"
rm -rf "$B" && mkdir -p "$B"
cd "$B" || exit 1
export LACOS_DB="$B/default.db"

# ------------------------------------------------------------------ the runner
# bad CATEGORY NAME RC PATTERN [--also PATTERN]... [--in FILE] [--stdout] [--traceback FRAME]
#     [--absent PATH]... [--present PATH]... -- COMMAND...
# (patterns are extended regular expressions matched line by line)
declare -A COUNT
ORDER=() N=0
bad() {
  local cat=$1 name=$2 rc=$3 pat=$4; shift 4
  local input=/dev/null allow_out= absent=() present=() also=() frame=
  while [ "$1" != -- ]; do
    case $1 in
      --in) input=$2; shift 2 ;;
      --also) also+=("$2"); shift 2 ;;
      --stdout) allow_out=1; shift ;;
      --traceback) frame=$2; shift 2 ;;
      --absent) absent+=("$2"); shift 2 ;;
      --present) present+=("$2"); shift 2 ;;
      *) echo "bad: unknown option $1" >&2; exit 1 ;;
    esac
  done
  shift
  N=$((N + 1))
  [ -z "${COUNT[$cat]:-}" ] && ORDER+=("$cat")
  COUNT[$cat]=$((${COUNT[$cat]:-0} + 1))
  OUT=$("$@" 2>"$TMP/.stderr" <"$input"); RC=$?; ERR=$(cat "$TMP/.stderr")
  local why=()
  [ "$RC" != "$rc" ] && why+=("exit $RC, expected $rc")
  local p
  for p in "$pat" "${also[@]}"; do
    [ -n "$p" ] && ! grep -qE -- "$p" <<<"$OUT"$'\n'"$ERR" && why+=("the message lacks /$p/")
  done
  grep -qE 'AddressSanitizer|runtime error:|Segmentation fault|core dumped|Aborted' <<<"$ERR" && why+=("a crash")
  if [ -z "$frame" ]; then
    grep -q "stack traceback" <<<"$ERR" && why+=("a Lua traceback for a mistake in the input")
  else
    grep -q "^stack traceback:$" <<<"$ERR" || why+=("no traceback for a bug in the user's code")
    grep -qE -- "^	$frame" <<<"$ERR" || why+=("the traceback lacks the user's frame /$frame/")
    grep -qE "lua/lacos/|\[C\]|xpcall" <<<"$ERR" && why+=("lacos' or C's frames in the user's traceback")
  fi
  [ -z "$allow_out" ] && [ -n "$OUT" ] && why+=("output on stdout")
  for p in "${absent[@]}"; do [ -e "$p" ] && why+=("left behind: $p"); done
  for p in "${present[@]}"; do [ -e "$p" ] || why+=("deleted: $p"); done
  if [ ${#why[@]} -eq 0 ]; then ok "[$cat] $name"
  else not_ok "[$cat] $name" "${why[@]}" "stdout: ${OUT:0:400}" "stderr: ${ERR:0:600}"; fi
}

# ------------------------------------------------------------------ fixtures
TOK="$ROOT/datasets/tokenizers/bloomlike-32k.json"
"$LACOS" model random tiny-xs --out "$B/m" --seed 1 --tokenizer "$TOK" >/dev/null 2>&1
"$LACOS" model random tiny-s --out "$B/m-s" --seed 1 --tokenizer "$TOK" >/dev/null 2>&1
copy_model() { rm -rf "$1" && mkdir -p "$1" && cp "$B/m"/* "$1"/; }
awk 'BEGIN { for (i = 1; i <= 24; i++) printf "sentence %d about a cat on a mat\tline %d, the cat again\n", i, i }' > pairs.tsv
printf 'a cat\nun chat\n' > sentences.txt
printf 'A cat sits.\tA cat is sitting.\t4.5\nA dog runs.\tA plane flies.\t0.5\nA man cooks.\tSomeone cooks.\t3.9\n' > good-sts.tsv
"$LACOS" train --model m --pairs pairs.tsv --out adapter --steps 4 --batch-size 4 --checkpoint-every 2 --no-db >/dev/null 2>&1
[ -f adapter/adapter_model.safetensors ] || { not_ok "fixtures: a trained adapter" "lacos train failed"; finish; }
copy_adapter() { rm -rf "$1" && mkdir -p "$1" && cp adapter/*.json adapter/*.safetensors "$1"/; }
make_db() {  # make_db PATH: a results database with one done run
  "$LACOS" -e "local db = require('lacos.results').open('$1'); db:start_run{ heartbeat = -1 }:finish('done'); db:close()" >/dev/null 2>&1
}
EMB=(embed --model m --out out.npy)

# ------------------------------------------------------------------ model checkpoints
C="model checkpoint"
bad "$C" "no such model directory" 1 "nope/config.json: No such file or directory" --in sentences.txt --absent out.npy -- \
  "$LACOS" embed --model nope --out out.npy
copy_model m1; printf '{"hidden_size": 64,' > m1/config.json
bad "$C" "config.json cut short" 1 "m1/config.json:1: invalid JSON" --in sentences.txt --absent out.npy -- "$LACOS" embed --model m1 --out out.npy
copy_model m2; sed -i 's/"hidden_size": 64/"hidden_size": "x"/' m2/config.json
bad "$C" "config.json: a field of the wrong type" 1 'm2/config.json: "hidden_size" must be an integer' --in sentences.txt --absent out.npy -- \
  "$LACOS" embed --model m2 --out out.npy
copy_model m3; sed -i 's/"n_head": 4/"n_head": 5/' m3/config.json
bad "$C" "config.json: inconsistent shape" 1 "m3/config.json: hidden_size 64 is not a multiple of n_head 5" --in sentences.txt --absent out.npy -- \
  "$LACOS" embed --model m3 --out out.npy
copy_model m4; head -c 100000 m/model.safetensors > m4/model.safetensors
bad "$C" "weights truncated" 1 "m4/model.safetensors: .*past the .*data buffer \(truncated file\?\)" --in sentences.txt --absent out.npy -- \
  "$LACOS" embed --model m4 --out out.npy
copy_model m5; printf '\377\377\377\377\377\377\377\177garbage' > m5/model.safetensors
bad "$C" "weights file that is not safetensors" 1 "m5/model.safetensors: header length .* \(not a safetensors file\?\)" --in sentences.txt --absent out.npy -- \
  "$LACOS" embed --model m5 --out out.npy
copy_model m6; sed -i 's/"n_layer": 2/"n_layer": 3/' m6/config.json
bad "$C" "a tensor the config needs is missing" 1 'm6: the checkpoint has no tensor "h.2.input_layernorm.weight"' --in sentences.txt --absent out.npy -- \
  "$LACOS" embed --model m6 --out out.npy
copy_model m7; rm m7/model.safetensors
bad "$C" "no weights at all" 1 "m7: no model.safetensors or model.safetensors.index.json" --in sentences.txt --absent out.npy -- \
  "$LACOS" embed --model m7 --out out.npy
copy_model m8; rm m8/model.safetensors
echo '{"metadata": {}, "weight_map": {"word_embeddings.weight": "model-00001-of-00002.safetensors"}}' > m8/model.safetensors.index.json
bad "$C" "sharded index naming a missing shard" 1 "m8/model.safetensors.index.json: names shard model-00001-of-00002.safetensors .* is missing" \
  --in sentences.txt --absent out.npy -- "$LACOS" embed --model m8 --out out.npy
# a weight stored in a dtype BLOOM checkpoints never use: the file and the tensor are named
retype() {  # retype DIR TENSOR DTYPE: a copy of m with one tensor converted
  copy_model "$1"
  "$LACOS" -e "local S = require('lacos').safetensors; local ts = S.open('m/model.safetensors'):tensors()
    ts['$2'] = ts['$2']:to('$3'); S.save('$1/model.safetensors', ts)" >/dev/null 2>&1
}
retype m9 h.0.self_attention.dense.weight i32
bad "$C" "a weight stored as int32" 1 "m9/model.safetensors: tensor h.0.self_attention.dense.weight is i32; BLOOM weights must be f32, f16 or bf16" \
  --in sentences.txt --absent out.npy -- "$LACOS" embed --model m9 --out out.npy
retype m10 ln_f.weight f64
bad "$C" "a LayerNorm weight stored as float64" 1 "m10/model.safetensors: tensor ln_f.weight is f64; BLOOM weights must be f32, f16 or bf16" \
  --in sentences.txt --absent out.npy -- "$LACOS" embed --model m10 --out out.npy
bad "$C" "model random: a config.json that is not JSON" 1 "m1/config.json:1: invalid JSON" --absent m-new -- \
  "$LACOS" model random m1/config.json --out m-new

# ------------------------------------------------------------------ tokenizers
C="tokenizer"
copy_model t1; printf '{"model":' > t1/tokenizer.json
bad "$C" "tokenizer.json cut short (in a model)" 1 "t1/tokenizer.json:1:[0-9]+: malformed JSON" --in sentences.txt --absent out.npy -- \
  "$LACOS" embed --model t1 --out out.npy
copy_model t2; echo '{}' > t2/tokenizer.json
bad "$C" "a JSON file that is no tokenizer" 1 't2/tokenizer.json: no "model" section' --in sentences.txt --absent out.npy -- \
  "$LACOS" embed --model t2 --out out.npy
echo '{"model": {"type": "Unigram", "vocab": []}}' > unigram.json
bad "$C" "an unsupported tokenizer model" 1 'unigram.json: model.type is "Unigram"; lacos runs BPE and WordPiece models' -- \
  "$LACOS" tokenize --tokenizer unigram.json
echo '{"model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100, "vocab": {}}}' > wordpiece.json
bad "$C" "a WordPiece tokenizer with an empty vocabulary" 1 'wordpiece.json: model.vocab is empty' -- \
  "$LACOS" tokenize --tokenizer wordpiece.json
bad "$C" "no such tokenizer file" 1 "missing.json: No such file or directory" -- "$LACOS" tokenize --tokenizer missing.json
printf 'fine\nbad \377 byte\n' > notutf8.txt
bad "$C" "text that is not UTF-8 (stdin)" 1 "line 2: invalid UTF-8 at byte 4 \(0xff\)" --in notutf8.txt -- "$LACOS" tokenize --tokenizer "$TOK"
bad "$C" "text that is not UTF-8 (a TEXTFILE)" 1 "notutf8.txt: line 2: invalid UTF-8 at byte 4" -- "$LACOS" tokenize --tokenizer "$TOK" notutf8.txt
printf 'one\ntwo\n' > fine.txt
bad "$C" "text that is not UTF-8 (the second of two TEXTFILEs)" 1 "notutf8.txt: line 2: invalid UTF-8 at byte 4" -- \
  "$LACOS" tokenize --tokenizer "$TOK" fine.txt notutf8.txt
printf '1 999999\n' > ids.txt
bad "$C" "--decode: an id outside the vocabulary" 1 "line 1: id 999999 \(position 2\) is not a token" --in ids.txt -- \
  "$LACOS" tokenize --tokenizer "$TOK" --decode
bad "$C" "embed: sentences that are not UTF-8" 1 "line 2: invalid UTF-8 at byte 4 \(0xff\)" --in notutf8.txt --absent out.npy -- "$LACOS" "${EMB[@]}"

# ------------------------------------------------------------------ datasets
C="dataset"
printf 'A cat.\tA cat sits.\t4.5\nA dog.\tA plane.\tx\n' > score-nan.tsv
bad "$C" "sts --file: a score that is not a number" 1 "score-nan.tsv:2: field 3: 'x' is not a number" -- "$LACOS" sts --model m --file score-nan.tsv --no-db
# strtod takes more than numbers: hexadecimal (0x10 = 16, 0x1p3 = 8), inf, nan, and stops at junk
for case in "hex:0x10" "hexfloat:0x1p3" "inf:inf" "nan:nan" "junk:4.5abc" "overflow:1e999" "comma:4,5"; do
  printf 'A dog.\tA plane.\t3\nA cat.\tA cat sits.\t%s\nA man.\tA woman.\t1\n' "${case#*:}" > "score-${case%%:*}.tsv"
  bad "$C" "sts --file: '${case#*:}' is not a score" 1 "score-${case%%:*}.tsv:2: field 3: '${case#*:}' is not a number" -- \
    "$LACOS" sts --model m --file "score-${case%%:*}.tsv" --no-db
done
printf 'A cat.\tA cat sits.\t3\nA dog.\tA plane.\t3\nA man.\tA woman.\t3.0\n' > gold-constant.tsv
bad "$C" "sts --file: every gold score the same (no Spearman)" 1 \
  "gold-constant.tsv: every gold score is 3: Spearman's correlation is undefined for constant scores" -- \
  "$LACOS" sts --model m --file gold-constant.tsv --db const.db
[ "$(sqlite3 const.db "SELECT count(*) FROM sts_results" 2>/dev/null || echo 0)" = 0 ] &&
  ok "[$C] constant gold scores: no NULL Spearman recorded" || not_ok "[$C] constant gold scores: no NULL Spearman recorded"
printf 'A cat.\tA cat sits.\t0x10\nA dog.\tA plane.\t3\n' > cosent-hex.tsv
bad "$C" "train --loss cosent: a hexadecimal score" 1 "cosent-hex.tsv:1: field 3: '0x10' is not a number" --absent t-hex -- \
  "$LACOS" train --model m --loss cosent --pairs cosent-hex.tsv --out t-hex --steps 2 --batch-size 2 --no-db
printf '0x10\n2\n1\n' > gold-hex.txt
bad "$C" "gold: a hexadecimal score" 1 "gold-hex.txt:1: '0x10' is not a number" -- \
  "$LACOS" -e 'require("lacos.data").read_pairs("gold-in.txt", { format = "gold", gold = "gold-hex.txt" })'
printf 'A cat.\tA cat sits.\n' > two-fields.tsv
bad "$C" "sts --file: a layout it cannot tell" 1 "two-fields.tsv:1: cannot tell the format: 2 TAB-separated fields" -- \
  "$LACOS" sts --model m --file two-fields.tsv --no-db
printf 'A cat.\tA cat sits.\t4.5\nA dog.\tA plane.\n' > short-line.tsv
bad "$C" "sts --file: a short line" 1 "short-line.tsv:2: expected at least 3 TAB-separated fields, found 2" -- \
  "$LACOS" sts --model m --file short-line.tsv --no-db
bad "$C" "sts --file: no such file" 1 "nope.tsv: No such file or directory" -- "$LACOS" sts --model m --file nope.tsv --no-db
bad "$C" "sts --sets: an unknown set" 1 "unknown dataset 'nosuch'" -- "$LACOS" sts --model m --sets nosuch:test --no-db
bad "$C" "sts --sets: a set missing under the data root" 1 "stsb: 1 file\(s\) missing under empty-root, e.g. sts/stsb/sts-test.csv \(run .lacos data pull stsb.\)" -- \
  "$LACOS" sts --model m --sets stsb:test --data empty-root --no-db
bad "$C" "data show: an unknown set" 1 "unknown dataset 'no-such-set'" -- "$LACOS" data show no-such-set
mkdir -p reg && printf '{\n  "sets": [\n    {"id": 1,\n' > reg/registry.local.json
bad "$C" "registry.local.json cut short" 1 "reg/registry.local.json:4: invalid JSON" -- "$LACOS" data list --data reg
if [ -n "${LACOS_TEST_DATA:-}" ] && [ -f "$LACOS_TEST_DATA/sts/stsb/sts-test.csv" ]; then
  mkdir -p dr/sts/stsb && head -c 5000 "$LACOS_TEST_DATA/sts/stsb/sts-test.csv" > dr/sts/stsb/sts-test.csv
  bad "$C" "a registry set's file cut short" 1 "dr/sts/stsb/sts-test.csv:[0-9]+: expected at least 7 TAB-separated fields" -- \
    "$LACOS" sts --model m --sets stsb:test --data dr --no-db
  bad "$C" "data list --verify: a file whose sha256 differs" 1 "stsb +sts +corrupt" --stdout -- "$LACOS" data list --data dr --verify
else
  skip "[$C] a registry set's file cut short" "LACOS_TEST_DATA is not there"
fi

# every reader of lacos.data, on files of its own layout
printf 's1,s2,score\n"a cat, black",a dog,4\n"unterminated,x,3\n' > q.csv
bad "$C" "csv: a quoted field never closed" 1 "q.csv:3: quoted field never closed" -- \
  "$LACOS" -e 'require("lacos.data").read_pairs("q.csv", { format = "csv", header = true })'
printf '{"sentence1": "a", "sentence2": "b", "gold_label": "entailment"}\n{"sentence1": "a", "sentence2": \n' > s.jsonl
bad "$C" "jsonl: a record cut short" 1 "s.jsonl:2: invalid JSON" -- \
  "$LACOS" -e 'require("lacos.data").read_pairs("s.jsonl", { format = "jsonl" })'
printf 'a cat\ta dog\nthe sun\tthe moon\nrain\tsnow\n' > gold-in.txt
printf '4.5\n\n2.x\n' > gold.txt
bad "$C" "gold: a score that is not a number" 1 "gold.txt:3: '2.x' is not a number" -- \
  "$LACOS" -e 'require("lacos.data").read_pairs("gold-in.txt", { format = "gold", gold = "gold.txt" })'
printf 'one\ntwo\n' > lines1.txt
printf 'uno\n' > lines2.txt
bad "$C" "lines: two files that are not line-aligned" 1 "lines2.txt: ends after 1 lines, but .*lines1.txt.* longer" -- \
  "$LACOS" -e 'require("lacos.data").read_pairs("lines1.txt", { format = "lines", path2 = "lines2.txt" })'

# ------------------------------------------------------------------ training pairs
C="training pairs"
TRAIN=(train --model m --batch-size 4 --steps 2 --no-db)
printf 'an anchor\ta positive\nonly one field\n' > one-field.tsv
bad "$C" "a line with one field" 1 "one-field.tsv:2: expected 2 or 3 TAB-separated fields \(anchor, positive\[, negative\]\), found 1" \
  --absent t-out -- "$LACOS" "${TRAIN[@]}" --pairs one-field.tsv --out t-out
printf 'an anchor\ta positive\nanother\t\n' > empty-field.tsv
bad "$C" "an empty field" 1 "empty-field.tsv:2: field 2 is empty" --absent t-out -- "$LACOS" "${TRAIN[@]}" --pairs empty-field.tsv --out t-out
printf 'an anchor\ta positive\nanother\tbad \377 byte\n' > pairs-utf8.tsv
bad "$C" "a field that is not UTF-8" 1 "pairs-utf8.tsv:2: field 2: invalid UTF-8 at byte 4 \(0xff\)" --absent t-out -- \
  "$LACOS" "${TRAIN[@]}" --pairs pairs-utf8.tsv --out t-out
printf 'a\tb\tc\nd\te\n' > mixed.tsv
bad "$C" "hard negatives on some lines only" 1 "mixed.tsv: 1 of 2 examples have a hard negative" --absent t-out -- \
  "$LACOS" "${TRAIN[@]}" --pairs mixed.tsv --out t-out
printf 'an anchor\ta positive\n' > one-pair.tsv
bad "$C" "a single example" 1 "one-pair.tsv: 1 example; training needs at least 2" --absent t-out -- \
  "$LACOS" "${TRAIN[@]}" --pairs one-pair.tsv --out t-out
: > empty.tsv
bad "$C" "an empty file" 1 "empty.tsv: no examples" --absent t-out -- "$LACOS" "${TRAIN[@]}" --pairs empty.tsv --out t-out
bad "$C" "no such file" 1 "nope.tsv: No such file or directory" --absent t-out -- "$LACOS" "${TRAIN[@]}" --pairs nope.tsv --out t-out
bad "$C" "--loss cosent on (anchor, positive) pairs" 1 \
  "pairs.tsv:1: expected at least 3 TAB-separated fields, found 2 \(--loss cosent reads 'sentence1 TAB sentence2 TAB score' lines" \
  --absent t-out -- "$LACOS" "${TRAIN[@]}" --loss cosent --pairs pairs.tsv --out t-out
printf 'a cat sits\ta cat is sitting\t4.5\nthe sky\ta dog runs\tvery\n' > bad-score.tsv
bad "$C" "--loss cosent: a score that is not a number" 1 "bad-score.tsv:2: field 3: 'very' is not a number" --absent t-out -- \
  "$LACOS" "${TRAIN[@]}" --loss cosent --pairs bad-score.tsv --out t-out
printf 'a man sleeps\ta person rests\tentailment\na man sleeps\ta dog barks\tmaybe\n' > nli-bad.tsv
bad "$C" "--loss softmax: a label that is not an NLI class" 1 "nli-bad.tsv:2: label 'maybe' is not entailment, neutral or contradiction" \
  --absent t-out -- "$LACOS" "${TRAIN[@]}" --loss softmax --pairs nli-bad.tsv --out t-out
printf 'a man sleeps\ta person rests\t0\na man sleeps\ta dog barks\t2\n' > int-labels.tsv
bad "$C" "--loss softmax: a label past --num-labels" 1 \
  "int-labels.tsv: example 2 of .*int-labels.tsv has label 2 but the classifier has 2 labels \(0..1\); use --num-labels 3 or more" \
  --absent t-out -- "$LACOS" "${TRAIN[@]}" --loss softmax --labels int --num-labels 2 --pairs int-labels.tsv --out t-out

# ------------------------------------------------------------------ adapters
C="adapter"
bad "$C" "no such adapter directory" 1 "nope/adapter_config.json: No such file or directory" --in sentences.txt --absent out.npy -- \
  "$LACOS" "${EMB[@]}" --adapter nope
copy_adapter a1; printf '{' > a1/adapter_config.json
bad "$C" "adapter_config.json cut short" 1 "a1/adapter_config.json:1: invalid JSON" --in sentences.txt --absent out.npy -- \
  "$LACOS" "${EMB[@]}" --adapter a1
copy_adapter a2; head -c 1000 adapter/adapter_model.safetensors > a2/adapter_model.safetensors
bad "$C" "adapter weights truncated" 1 "a2/adapter_model.safetensors: tensor .* is past the .*-byte data buffer \(truncated file\?\)" \
  --in sentences.txt --absent out.npy -- "$LACOS" "${EMB[@]}" --adapter a2
copy_adapter a3; sed -i 's/"r": 8/"r": 4/' a3/adapter_config.json
bad "$C" "rank in the config differs from the weights" 1 "a3/adapter_model.safetensors: .*lora_A.weight has shape \(8, 64\), expected \(4, 64\)" \
  --in sentences.txt --absent out.npy -- "$LACOS" "${EMB[@]}" --adapter a3
copy_adapter a4; sed -i 's/"peft_type": "LORA"/"peft_type": "PREFIX_TUNING"/' a4/adapter_config.json
bad "$C" "not a LoRA adapter" 1 "a4/adapter_config.json: peft_type is not LORA" --in sentences.txt --absent out.npy -- \
  "$LACOS" "${EMB[@]}" --adapter a4
bad "$C" "an adapter trained for another model size" 1 "adapter/adapter_model.safetensors: .* has shape \(8, 64\), expected \(8, 128\)" \
  --in sentences.txt --absent out.npy -- "$LACOS" embed --model m-s --adapter adapter --out out.npy

copy_adapter a5
"$LACOS" -e "local S = require('lacos').safetensors; local ts = S.open('a5/adapter_model.safetensors'):tensors()
  for k, t in pairs(ts) do if k:match('h%.1%..*lora_B') then t[2][1] = 0/0 end end; S.save('a5/adapter_model.safetensors', ts)" >/dev/null 2>&1
bad "$C" "a NaN in the weights (every embedding would be NaN)" 1 \
  "a5/adapter_model.safetensors: base_model.model.h.1.self_attention.query_key_value.lora_B.weight has non-finite values \(NaN or infinity\)" \
  --in sentences.txt --absent out-nan.npy -- "$LACOS" embed --model m --out out-nan.npy --adapter a5
copy_adapter a6
"$LACOS" -e "local S = require('lacos').safetensors; local ts = S.open('a6/adapter_model.safetensors'):tensors()
  for k, t in pairs(ts) do if k:match('h%.0%..*lora_A') then t[1][3] = 1/0 end end; S.save('a6/adapter_model.safetensors', ts)" >/dev/null 2>&1
bad "$C" "an infinity in the weights (lacos sts: nothing recorded)" 1 \
  "a6/adapter_model.safetensors: base_model.model.h.0.self_attention.query_key_value.lora_A.weight has non-finite values" \
  -- "$LACOS" sts --model m --adapter a6 --file good-sts.tsv --db nan.db
[ "$(sqlite3 nan.db "SELECT count(*) FROM runs WHERE status = 'done'" 2>/dev/null || echo 0)" = 0 ] &&
  ok "[$C] a NaN adapter is never recorded as a done run" || not_ok "[$C] a NaN adapter is never recorded as a done run"

# ------------------------------------------------------------------ checkpoints of runs
C="run checkpoint"
CK=(train --model m --pairs pairs.tsv --batch-size 4 --checkpoint-every 2 --no-db)
"$LACOS" "${CK[@]}" --steps 4 --out r1 >/dev/null 2>&1
bad "$C" "made with another LoRA rank: refused naming the option, not pruned" 1 \
  "r1/checkpoints/ckpt-00000004 was made with other options: .*--r 8 there, 4 now.* Resume with the options it was made with" \
  --present r1/checkpoints/ckpt-00000002 --present r1/checkpoints/ckpt-00000004 -- "$LACOS" "${CK[@]}" --steps 6 --out r1 --r 4
mkdir -p r2/checkpoints/ckpt-00000002
echo '{"format": "lacos-checkpoint", "version": 7, "files": {}}' > r2/checkpoints/ckpt-00000002/manifest.json
bad "$C" "written by a newer lacos: refused, not pruned" 1 \
  "r2/checkpoints/ckpt-00000002/manifest.json: checkpoint format version 7 is not supported .*upgrade lacos" \
  --present r2/checkpoints/ckpt-00000002/manifest.json --absent r2/adapter_model.safetensors -- "$LACOS" "${CK[@]}" --steps 2 --out r2
bad "$C" "--out below a regular file" 1 "pairs.tsv/x: cannot create the directory: Not a directory" -- \
  "$LACOS" "${CK[@]}" --steps 2 --out pairs.tsv/x
# Broken checkpoints are not fatal: the newest one that verifies is used (exit 0), and the message says which was skipped and why.
rm -rf r3 && "$LACOS" "${CK[@]}" --steps 4 --out r3 >/dev/null 2>&1
printf 'x' >> r3/checkpoints/ckpt-00000004/tensors.safetensors.zst
bad "$C" "a torn newest checkpoint is skipped, the previous one resumes (exit 0)" 0 \
  "skipping checkpoint r3/checkpoints/ckpt-00000004: .*tensors.safetensors.zst has [0-9]+ bytes, the manifest says [0-9]+ \(truncated" \
  --also "resumed from step 2 \(r3/checkpoints/ckpt-00000002\)" -- \
  "$LACOS" "${CK[@]}" --steps 4 --out r3
rm -rf r4 && "$LACOS" "${CK[@]}" --steps 4 --out r4 >/dev/null 2>&1
sed -i 's/"step":4/"step":5/' r4/checkpoints/ckpt-00000004/state.json
mkdir -p r4/checkpoints/ckpt-00000006.tmp.99999 && echo junk > r4/checkpoints/ckpt-00000006.tmp.99999/manifest.json
bad "$C" "an edited state.json is skipped, a stale temporary ignored and cleaned (exit 0)" 0 \
  "skipping checkpoint r4/checkpoints/ckpt-00000004: .*state.json does not match its SHA-256 in the manifest \(corrupted\)" \
  --also "resumed from step 2" \
  --absent r4/checkpoints/ckpt-00000006.tmp.99999 -- "$LACOS" "${CK[@]}" --steps 4 --out r4

# a checkpoint that verifies (written through the checkpoint writer) but holds a NaN: skipped like a torn one
rm -rf r5 && "$LACOS" "${CK[@]}" --steps 4 --out r5 >/dev/null 2>&1
"$LACOS" -e "local E = require('lacos.engine'); local ffi, C, T = E.ffi, E.C, require('lacos.tensor')
  local out = ffi.new('lacos_checkpoint*[1]'); E.check(C.lacos_checkpoint_open(out, 'r5/checkpoints/ckpt-00000004'))
  local st = C.lacos_checkpoint_tensors(out[0]); local n = C.lacos_safetensors_count(st)
  local names, ts, keep, done = ffi.new('const char*[?]', n), ffi.new('lacos_tensor*[?]', n), {}, false
  for i = 0, n - 1 do
    local name = ffi.string(C.lacos_safetensors_name(st, i)); local t = T.make(C.lacos_safetensors_get, st, name):clone()
    if name:match('^lora%.') and not done then t[1][1] = 0/0; done = true end
    keep[#keep + 1] = { name, t }; names[i] = keep[#keep][1]; ts[i] = t.t
  end
  E.check(C.lacos_checkpoint_save('r5/checkpoints', 4, n, names, ts, ffi.string(C.lacos_checkpoint_state(out[0]))))" >/dev/null 2>&1
bad "$C" "a NaN in a checkpoint that verifies: skipped, the previous one resumes (exit 0)" 0 \
  "skipping checkpoint r5/checkpoints/ckpt-00000004: .*tensor lora\.[^ ]+ has 1 non-finite values \(NaN or infinity\)" \
  --also "resumed from step 2 \(r5/checkpoints/ckpt-00000002\)" -- "$LACOS" "${CK[@]}" --steps 4 --out r5

# ------------------------------------------------------------------ Lua scripts
C="Lua script"
printf 'local x = 1\nprint(x\n' > syntax.lua
bad "$C" "a syntax error" 1 "^syntax.lua:3: '\)' expected \(to close '\(' at line 2\) near '<eof>'" -- "$LACOS" run syntax.lua
printf 'local t = nil\nprint(t.x)\n' > runtime.lua
bad "$C" "a runtime error (a bug in the script: file:line and its traceback)" 1 "^runtime.lua:2: attempt to index local 't' \(a nil value\)$" \
  --traceback "runtime.lua:2: in main chunk" -- "$LACOS" runtime.lua
bad "$C" "no such script" 1 "lacos: cannot open missing.lua: no such file" -- "$LACOS" run missing.lua
mkdir -p adir.lua
bad "$C" "a directory given as the script" 1 "cannot read adir.lua: Is a directory" -- "$LACOS" run adir.lua
printf 'local lacos = require "lacos"\nlacos.pairs.read("nope.tsv")\n' > reads.lua
bad "$C" "an engine error about the user's file: the message and the script line" 1 "^nope.tsv: No such file or directory$" \
  --also "^  \(at reads.lua:2\)$" -- "$LACOS" run reads.lua
printf 'error({ code = 1 })\n' > table-error.lua
bad "$C" "an error object that is a table" 1 "\(error object is a table value" -- "$LACOS" run table-error.lua
printf 'local m = require("lacos").bloom.random("tiny-xs", { seed = "x" })\n' > bad-type.lua
bad "$C" "an option of the wrong type" 1 "bad-type.lua:1: lacos.bloom.random: option 'seed' must be a number, got string" \
  --traceback "bad-type.lua:1: in main chunk" -- "$LACOS" run bad-type.lua
bad "$C" "an option out of range (-e)" 1 "LoRA rank r must be between 1 and 4096, got -2" -- \
  "$LACOS" -e 'require("lacos").bloom.random("tiny-xs"):add_lora{ r = -2 }'
bad "$C" "a learning rate that is not a number" 1 "lacos.optim.adam8bit: option 'lr' must be a number, got string" \
  --traceback "\(command line\):1: in main chunk" -- \
  "$LACOS" -e 'require("lacos").optim.adam8bit({}, { lr = "fast" })'
printf 'require("lacos").train{ lrate = 1 }\n' > bad-option.lua
bad "$C" "an unknown option of a lacos function (a bug in the script)" 1 "bad-option.lua:1: lacos.train: unknown option 'lrate' \(valid: " \
  --traceback "bad-option.lua:1: in main chunk" -- "$LACOS" run bad-option.lua
bad "$C" "-e: a syntax error" 1 "^\(command line\):1: '\)' expected near '<eof>'" -- "$LACOS" -e 'print(1'
bad "$C" "-e: a runtime error (with its traceback)" 1 "^\(command line\):1: boom$" --traceback "\(command line\):1: in main chunk" -- \
  "$LACOS" -e 'error("boom")'
bad "$C" "-l: no such module" 1 "lacos: -l nosuchmodule: module 'nosuchmodule' not found" -- "$LACOS" -l nosuchmodule -e 'print(1)'
printf 'error("x")\nos.exit(3)\n' > /dev/null
printf 'os.exit(3)\n' > exit3.lua
bad "$C" "a script's own exit status comes through" 3 "" -- "$LACOS" run exit3.lua
printf 'x = 1\nlocal t = nil; print(t.x)\nprint(2)\n' > repl1.txt
bad "$C" "REPL on a pipe: the error names the input line, the rest runs" 1 "^stdin:2: attempt to index local 't'" --also "^2$" --stdout --in repl1.txt -- "$LACOS"
printf 'x = 1\ny = = 2\n' > repl2.txt
bad "$C" "REPL on a pipe: a syntax error" 1 "stdin:2: unexpected symbol near '='" --in repl2.txt -- "$LACOS" repl
printf 'for i = 1, 2 do\n  print(i)\n' > repl3.txt
bad "$C" "REPL on a pipe: input ends inside a statement" 1 "stdin:[0-9]+: 'end' expected .* \(at end of input\)" --stdout --in repl3.txt -- "$LACOS"
printf 'lacos.pairs.read("nope.tsv")\n' > repl4.txt
bad "$C" "REPL on a pipe: an engine error" 1 "nope.tsv: No such file or directory" --in repl4.txt -- "$LACOS"

# ------------------------------------------------------------------ command-line arguments
C="command line"
bad "$C" "an unknown global option" 2 "lacos: unknown option --frobnicate" -- "$LACOS" --frobnicate
bad "$C" "an unknown command" 2 "lacos: unknown command 'frobnicate'" -- "$LACOS" frobnicate
bad "$C" "lacos run without a script" 2 "lacos run: missing script" -- "$LACOS" run
bad "$C" "-e without code" 2 "lacos: -e needs a chunk of code" -- "$LACOS" -e
bad "$C" "a required option missing" 2 "lacos embed: missing required option --out" --in sentences.txt -- "$LACOS" embed --model m
bad "$C" "an unknown command option" 2 "lacos embed: unknown option --frob" --in sentences.txt -- "$LACOS" "${EMB[@]}" --frob
bad "$C" "a number out of range" 2 "lacos embed: --batch must be at least 1, got 0" --in sentences.txt --absent out.npy -- "$LACOS" "${EMB[@]}" --batch 0
bad "$C" "not a number" 2 "lacos embed: --batch expects a number, got 'abc'" --in sentences.txt --absent out.npy -- "$LACOS" "${EMB[@]}" --batch abc
bad "$C" "not one of the choices" 2 "--pooling must be one of mean, weightedmean, lasttoken, cls, max, mean_sqrt_len_tokens, got 'median'" \
  --in sentences.txt --absent out.npy -- "$LACOS" "${EMB[@]}" --pooling median
bad "$C" "options that contradict each other" 2 "lacos embed: --tsv writes to stdout: use --out -" --in sentences.txt --absent out.npy -- \
  "$LACOS" "${EMB[@]}" --tsv
bad "$C" "tokenize: --decode with --count" 2 "lacos tokenize: --decode reads ids" -- "$LACOS" tokenize --tokenizer "$TOK" --decode --count
bad "$C" "train: a negative learning rate" 2 "lacos train: --lr must be at least 0, got -1" --absent t-out -- \
  "$LACOS" train --model m --pairs pairs.tsv --out t-out --lr -1
bad "$C" "model random without --out" 2 "lacos model: random needs --out DIR" -- "$LACOS" model random tiny-xs
bad "$C" "model random: an unknown shape" 1 "unknown model name 'nosuch'" --absent m-new -- "$LACOS" model random nosuch --out m-new
bad "$C" "pull: not a repository name" 1 "'notarepo' is not a hub repository name \(owner/name\)" --absent models -- "$LACOS" pull notarepo
bad "$C" "pull: the hub cannot be reached" 1 "http://127.0.0.1:1/api/models/a/b/tree/main: cannot connect" --absent pulled -- \
  "$LACOS" pull a/b --endpoint http://127.0.0.1:1 --out pulled
# settings that are not what they seem are errors, not silently the default
bad "$C" "LACOS_MEMORY_LIMIT=0 (not 'no limit')" 2 "LACOS_MEMORY_LIMIT=0 would leave no memory at all; for no limit say off" -- \
  env LACOS_MEMORY_LIMIT=0 "$LACOS" --version
bad "$C" "--memory-limit 0M" 2 "--memory-limit 0M would leave no memory at all" -- "$LACOS" --memory-limit 0M -e 'print(1)'
bad "$C" "LACOS_DB_TIMEOUT=abc (not silently 30 s)" 1 "LACOS_DB_TIMEOUT=abc is not a number of seconds" -- \
  env LACOS_DB_TIMEOUT=abc "$LACOS" results list
bad "$C" "LACOS_DB_TIMEOUT=-1" 1 "LACOS_DB_TIMEOUT=-1 is not a number of seconds" --absent t-env -- \
  env LACOS_DB_TIMEOUT=-1 "$LACOS" train --model m --pairs pairs.tsv --out t-env --steps 2 --batch-size 4
bad "$C" "train --epochs 0 (not 'nothing to do')" 2 "lacos train: --epochs must be more than 0, got 0" --absent t-ep0 -- \
  "$LACOS" train --model m --pairs pairs.tsv --out t-ep0 --epochs 0 --no-db
bad "$C" "data: an unknown subcommand" 2 "lacos data: unknown subcommand 'frob' \(list, show, pull\)" -- "$LACOS" data frob
bad "$C" "results: an unknown subcommand" 2 "lacos results: unknown subcommand 'frob'" -- "$LACOS" results frob

# ------------------------------------------------------------------ the results database
C="database"
make_db corrupt.db
sqlite3 corrupt.db "PRAGMA journal_mode = DELETE;" >/dev/null
head -c 3000 /dev/urandom | dd of=corrupt.db bs=1 seek=100 conv=notrunc status=none
before=$(sha256sum corrupt.db)
bad "$C" "corrupted (lacos results)" 1 "corrupt.db: .*(corrupted|not an SQLite database)" -- "$LACOS" results --db corrupt.db
[ "$(sha256sum corrupt.db)" = "$before" ] && ok "[$C] the corrupted file is left as it was" || not_ok "[$C] the corrupted file is left as it was"
make_db newer.db
sqlite3 newer.db "INSERT INTO schema_version VALUES (99, '2099-01-01'); PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null
bad "$C" "from a newer lacos (lacos train: refused before training)" 1 \
  "newer.db: the database has schema version 99, newer than this lacos .* upgrade lacos" --absent t-out -- \
  "$LACOS" train --model m --pairs pairs.tsv --out t-out --steps 2 --batch-size 4 --db newer.db
[ "$(sqlite3 newer.db "SELECT max(version) FROM schema_version; SELECT count(*) FROM runs")" = $'99\n1' ] &&
  ok "[$C] the newer database is left as it was" || not_ok "[$C] the newer database is left as it was" "$(sqlite3 newer.db 'SELECT * FROM schema_version')"
printf 'id,name\n1,a CSV file and not a database, long enough to have a header\n' > text.db
bad "$C" "not a database (lacos sts: refused before evaluating)" 1 "text.db: .*not an SQLite database" -- \
  "$LACOS" sts --model m --file score-nan.tsv --db text.db
sqlite3 foreign.db "CREATE TABLE customers (id INTEGER PRIMARY KEY);"
mkdir -p qs-foreign
bad "$C" "somebody else's SQLite file (a sweep script)" 1 "foreign.db: not a lacos results database" --absent qs-foreign/results -- \
  bash -c "cd qs-foreign && LACOS_DATA='${LACOS_TEST_DATA:-}' '$LACOS' run '$ROOT/experiments/quickstart.lua' --db ../foreign.db --pairs 10"
[ "$(sqlite3 foreign.db "SELECT count(*) FROM sqlite_schema")" = 1 ] && ok "[$C] the foreign file is untouched" || not_ok "[$C] the foreign file is untouched"
mkdir -p adir.db
bad "$C" "a directory" 1 "adir.db: is a directory, expected a results database file" -- "$LACOS" results --db adir.db
bad "$C" "below a regular file" 1 "pairs.tsv: cannot create the results database there: not a directory" --absent t-out -- \
  "$LACOS" train --model m --pairs pairs.tsv --out t-out --steps 2 --batch-size 4 --db pairs.tsv/x.db
make_db ok.db
printf 'A cat sits.\tA cat is sitting.\t4.5\nA dog runs.\tA plane flies.\t0.5\nA man cooks.\tSomeone cooks.\t3.9\n' > good.tsv
bad "$C" "a query that would write" 1 "ok.db: query refused: it would change the database" -- "$LACOS" results --db ok.db sql "DELETE FROM runs"
( printf 'BEGIN IMMEDIATE;\nINSERT INTO tags SELECT 1, "k", "v" WHERE 0;\n.shell sleep 4\nCOMMIT;\n' | sqlite3 ok.db ) &
holder=$!
sleep 0.5
bad "$C" "locked past the timeout (lacos sts: before evaluating)" 1 \
  "ok.db: starting a run: the database is locked by another process \(waited 0.5 s\)" -- \
  env LACOS_DB_TIMEOUT=0.5 "$LACOS" sts --model m --file good.tsv --db ok.db
wait "$holder"
# Permissions: root ignores them, so as root these run as nobody (as test_results.sh does).
as_user=()
if [ "$(id -u)" = 0 ]; then
  if command -v setpriv >/dev/null && setpriv --reuid=65534 --regid=65534 --clear-groups "$LACOS" --version >/dev/null 2>&1; then
    as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups)
  else as_user=(none); fi
fi
if [ "${as_user[0]:-}" = none ]; then
  skip "[$C] a read-only database file" "running as root without setpriv to drop privileges"
else
  mkdir -p perm && chmod 0777 perm && chmod 0711 "$TMP" "$B" && chmod -R a+rX m pairs.tsv
  make_db perm/ro.db && chmod 0444 perm/ro.db
  bad "$C" "a read-only file (lacos train: refused before training)" 1 "ro.db: the database file is read-only \(permission denied\)" \
    --absent perm/t-out -- "${as_user[@]}" "$LACOS" train --model "$B/m" --pairs "$B/pairs.tsv" --out "$B/perm/t-out" --steps 2 --batch-size 4 --db "$B/perm/ro.db"
fi

# ------------------------------------------------------------------ the count
summary=""
for c in "${ORDER[@]}"; do summary="$summary, $c ${COUNT[$c]}"; done
echo "# catalogue: $N cases${summary}"
files=$(( ${COUNT["model checkpoint"]:-0} + ${COUNT["tokenizer"]:-0} + ${COUNT["dataset"]:-0} + ${COUNT["training pairs"]:-0} + ${COUNT["adapter"]:-0} + ${COUNT["run checkpoint"]:-0} ))
[ "$N" -ge 40 ] && ok "the catalogue holds $N cases ($files about files)" || not_ok "the catalogue holds at least 40 cases" "$N"
finish
