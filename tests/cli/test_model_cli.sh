#!/usr/bin/env bash
# test_model_cli.sh: the model commands as a user runs them — lacos model
# random/info/list (a named shape and a config.json), lacos embed (.npy and
# --tsv, --quant f32|int8 and --threshold against f32, pooling recorded with
# an adapter, a too-long sentence), lacos train (defaults printed, adapter
# saved, a rerun resumes; --loss cosent and softmax), lacos sts (--sets, --file, --json).
source "$(dirname "$0")/lib.sh"
ROOT=${LACOS_ROOT:-.}
TOK="$ROOT/datasets/tokenizers/bloomlike-32k.json"
DATA=${LACOS_TEST_DATA:-../shared/datasets}
M="$TMP/model"

run_cmd "$LACOS" model list
expect "model list shows the released shapes, sizes in M and B as the README writes them" 0 "bloom-7b1 +4096 +30 +32 +250880 +7.1B"
for w in "bloom-560m .* 559M$" "bloom-1b7 .* 1.7B$" "tiny-xs .* 2.2M$"; do
  grep -qE -- "$w" <<<"$OUT" && ok "model list: /$w/" || not_ok "model list: /$w/" "$OUT"
done
run_cmd "$LACOS" model info bloom-3b
expect "model info counts parameters exactly" 0 "3.0B parameters \(3,002,557,440\)"
run_cmd "$LACOS" model random tiny-xs --out "$M" --seed 2 --tokenizer "$TOK"
expect "model random writes a checkpoint" 0 ""
for f in config.json model.safetensors tokenizer.json lacos.json; do
  [ -f "$M/$f" ] && ok "model random wrote $f" || not_ok "model random wrote $f"
done

# without --tokenizer: the bundled one, so the model is usable at once; parents created
M2="$TMP/new/parents/tiny-s"
run_cmd "$LACOS" model random tiny-s --out "$M2" --seed 2
expect "model random creates missing parent folders" 0 "tokenizer bloomlike-32k"
cmp -s "$M2/tokenizer.json" "$TOK" && ok "model random writes the bundled tokenizer" || not_ok "model random writes the bundled tokenizer"
run_in $'a cat\n' "$LACOS" embed --model "$M2" --out "$TMP/e2.npy"
expect "embed uses a model from model random without --tokenizer" 0 "wrote 1 x 128 embeddings"
printf 'A cat sits.\tA cat is sitting.\t4.5\nA man runs.\tA dog sleeps.\t0.5\nIt rains.\tRain falls.\t4\n' > "$TMP/sts3.tsv"
run_cmd "$LACOS" sts --model "$M2" --file "$TMP/sts3.tsv" --no-db
expect "so does sts" 0 "spearman"
before=$(sha256sum "$M2/model.safetensors")
run_cmd "$LACOS" model random tiny-xs --out "$M2" --seed 5
expect "model random refuses a non-empty --out" 1 "new/parents/tiny-s: exists and is not empty \(--force replaces it\)"
[ "$(sha256sum "$M2/model.safetensors")" = "$before" ] && ok "the refused --out is untouched" || not_ok "the refused --out is untouched"
run_cmd "$LACOS" model random tiny-xs --out "$M2" --seed 5 --force
expect "model random --force replaces it" 0 "hidden 64, 2 layers"
ls "$(dirname "$M2")" | grep -q tmp && not_ok "no temporary directory left" "$(ls "$(dirname "$M2")")" || ok "no temporary directory left"

run_in $'a cat\nun chat\n\n' "$LACOS" embed --model "$M" --out "$TMP/e.npy"
expect "embed writes a .npy" 0 "wrote 3 x 64 embeddings"
mkdir -p "$TMP/no-tok" && cp "$M/config.json" "$M/model.safetensors" "$TMP/no-tok/"
run_in $'a cat\n' "$LACOS" embed --model "$TMP/no-tok" --out "$TMP/nt.npy"
expect "a model directory without tokenizer.json is named as such" 1 "lacos embed: .*/no-tok: no tokenizer.json in the model directory"
grep -qE '\.lua:[0-9]' <<<"$ERR" && not_ok "no Lua file:line in the missing-tokenizer error" "$ERR" || ok "no Lua file:line in the missing-tokenizer error"
run_in '' "$LACOS" embed --model "$M" --out "$TMP/empty.npy"
expect "embed refuses empty input" 1 "stdin: no sentences to embed"
[ ! -e "$TMP/empty.npy" ] && ok "no .npy for empty input" || not_ok "no .npy for empty input"
run_cmd "$LACOS" -e "local t = require('lacos').tensor.load_npy('$TMP/e.npy'); print(t.dtype, t:size(1), t:size(2))"
expect "the .npy is float32 of shape [n, hidden]" 0 "f32	3	64"
run_in $'a cat\n' "$LACOS" embed --model "$M" --out - --tsv
expect "embed --tsv prints a row of 64 numbers" 0 ""
[ "$(awk -F'\t' '{print NF}' <<<"$OUT")" = 64 ] && ok "embed --tsv has 64 columns" || not_ok "embed --tsv has 64 columns" "$OUT"
run_in $'a cat\n' "$LACOS" embed --model "$M" --out "$TMP/mean.npy" --pooling mean
expect "embed --pooling on a model without a recorded pooling" 0 "mean pooling"

# a config.json of the user's own: its shape is what gets written. Parameters
# by hand: embeddings 32768 x 32, their LayerNorm 2 x 32, per layer
# 12 x 32^2 + 13 x 32 (qkv, dense, h_to_4h, 4h_to_h with biases, two
# LayerNorms) = 12704, times 3, and ln_f 2 x 32: 1,086,816.
printf '{"model_type": "bloom", "hidden_size": 32, "n_layer": 3, "n_head": 2, "vocab_size": 32768, "layer_norm_epsilon": 1e-5}\n' > "$TMP/own.json"
run_cmd "$LACOS" model random "$TMP/own.json" --out "$TMP/own" --seed 3 --tokenizer "$TOK"
expect "model random CONFIG.json writes a checkpoint" 0 "done in .*hidden 32, 3 layers"
run_cmd "$LACOS" model info "$TMP/own"
expect "model info reads the config it was made from" 0 "hidden 32, layers 3, heads 2, vocab 32768, max length 2048"
run_cmd "$LACOS" -e "local st = require('lacos').safetensors.open('$TMP/own')
local n, h3 = 0, false
for _, name in ipairs(st:names()) do n = n + st:get(name):numel(); h3 = h3 or name:match('^h%.3%.') ~= nil end
print(n, st:has('h.2.mlp.dense_4h_to_h.weight'), h3, st:get('h.0.self_attention.query_key_value.weight').shape[1])"
expect "the checkpoint holds exactly the config's parameters (1,086,816), layers h.0-h.2" 0 "^1086816	true	false	96$"
run_in $'a cat\nun chat\n' "$LACOS" embed --model "$TMP/own" --out "$TMP/own.npy"
expect "the new model embeds with its hidden size" 0 "wrote 2 x 32 embeddings"

# --quant and --threshold: int8 against f32, on a copy of the model with
# outlier features planted in layer 1 (tests/lua/outliers_fixture.lua), where
# threshold 6 has columns to take out of int8
run_cmd "$LACOS" -e "require('outliers_fixture').plant('$M', '$TMP/planted')"
expect "a checkpoint with planted outlier features" 0 ""
sents=$'A cat sits on the mat.\nUn chat est assis sur le tapis.\nThe weather is nice today.\nEin Hund läuft im Park.\n'
for q in "f32 0" "int8 0" "int8 6"; do
  set -- $q
  run_in "$sents" "$LACOS" embed --model "$TMP/planted" --quant "$1" --threshold "$2" --out "$TMP/q-$1-$2.npy"
  expect "embed --quant $1 --threshold $2" 0 "wrote 4 x 64 embeddings"
done
run_cmd "$LACOS" -e "local T = require('lacos').tensor
local f = T.load_npy('$TMP/q-f32-0.npy')
local function worst(p) local c = T.load_npy(p):cosine(f) local m = 1 for i = 1, c:size(1) do m = math.min(m, c[i][i]) end return m end
print(('%.7f %.7f'):format(worst('$TMP/q-int8-0.npy'), worst('$TMP/q-int8-6.npy')))"
expect "cosines of int8 to f32 embeddings" 0 "^[01]\.[0-9]+ [01]\.[0-9]+$"
read -r cos0 cos6 <<<"$OUT"
echo "# int8 vs f32, smallest cosine: $cos0 (--threshold 0), $cos6 (--threshold 6)"
awk -v a="$cos0" -v b="$cos6" 'BEGIN { exit !(a >= 0.999 && b >= 0.999) }' \
  && ok "int8 embeddings have cosine >= 0.999 to f32 ($cos0, $cos6)" || not_ok "int8 embeddings have cosine >= 0.999 to f32" "$cos0 $cos6"
awk -v a="$cos0" -v b="$cos6" 'BEGIN { exit !(1 - b < (1 - a) / 10) }' \
  && ok "--threshold 6 takes the outliers out of int8: 10x closer to f32" || not_ok "--threshold 6 brings int8 closer to f32" "$cos0 $cos6"

long=$(printf 'word %.0s' $(seq 1 2100))
run_in "$long" "$LACOS" embed --model "$M" --out "$TMP/long.npy"
expect "a sentence over the model's limit is named" 1 "sentence 1 has [0-9]+ tokens, more than the model's limit of 2048"
[ ! -e "$TMP/long.npy" ] && ok "no partial output for the long sentence" || not_ok "no partial output for the long sentence"

if [ -f "$DATA/nli/snli-infersent/s1.dev" ]; then
  paste "$DATA/nli/snli-infersent/s1.dev" "$DATA/nli/snli-infersent/s2.dev" "$DATA/nli/snli-infersent/labels.dev" \
    | awk -F'\t' '$3 ~ /entailment/ {print $1"\t"$2}' | head -96 > "$TMP/pairs.tsv"
  run_cmd "$LACOS" train --model "$M" --pairs "$TMP/pairs.tsv" --out "$TMP/adapter" --batch-size 16 --db "$TMP/r.db" --pooling mean
  expect "train runs with printed defaults" 0 "lr +0.0002"
  grep -q "predicted peak" <<<"$ERR" && ok "train prints the memory plan" || not_ok "train prints the memory plan" "$ERR"
  for f in adapter_config.json adapter_model.safetensors lacos.json; do
    [ -f "$TMP/adapter/$f" ] && ok "train saved $f" || not_ok "train saved $f"
  done
  run_cmd "$LACOS" train --model "$M" --pairs "$TMP/pairs.tsv" --out "$TMP/adapter" --batch-size 16 --db "$TMP/r.db" --pooling mean
  expect "a finished training is not redone" 0 "nothing to do"
  run_in $'a cat\n' "$LACOS" embed --model "$M" --adapter "$TMP/adapter" --out "$TMP/a.npy" --pooling weightedmean
  expect "the adapter's recorded pooling is enforced: a usage error naming --force" 2 \
    "lacos embed: .*/adapter was trained with mean pooling; --pooling weightedmean needs --force"
  grep -q "\.lua:[0-9]" <<<"$ERR" && not_ok "no Lua file:line in the pooling error" "$ERR" || ok "no Lua file:line in the pooling error"
  run_in $'a cat\n' "$LACOS" embed --model "$M" --adapter "$TMP/adapter" --out "$TMP/a-wm.npy" --pooling weightedmean --force
  expect "--force allows another pooling" 0 "weightedmean pooling"
  run_cmd "$LACOS" sts --model "$M" --adapter "$TMP/adapter" --sets stsb:test --data "$DATA" --no-db --pooling lasttoken
  expect "sts says --force too" 2 "lacos sts: .*/adapter was trained with mean pooling; --pooling lasttoken needs --force"
  # train and sts record the lacos tree's git commit (not the working directory's) and what they read
  head_commit=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null)
  mkdir -p "$TMP/not-a-repo"
  ( cd "$TMP/not-a-repo" && "$LACOS" train --model "$M" --pairs "$TMP/pairs.tsv" --out "$TMP/adapter2" --batch-size 16 --steps 2 \
      --db "$TMP/r2.db" ) >/dev/null 2>&1
  run_cmd sqlite3 "$TMP/r2.db" "SELECT r.git_commit, (SELECT value_text FROM params WHERE run_id = r.id AND key = 'pairs_sha256'),
    (SELECT value_text FROM params WHERE run_id = r.id AND key = 'out_path') FROM runs r"
  want_sha=$(sha256sum "$TMP/pairs.tsv" | cut -d' ' -f1)
  if [ -n "$head_commit" ]; then
    [ "$OUT" = "$head_commit|$want_sha|$TMP/adapter2" ] && ok "train records lacos' git commit, the pairs file's sha256, absolute paths" \
      || not_ok "train records lacos' git commit, the pairs file's sha256, absolute paths" "got: $OUT" "want: $head_commit|$want_sha|$TMP/adapter2"
  else
    skip "train records lacos' git commit" "the lacos tree is not a git checkout"
  fi
  run_in $'a cat\n' "$LACOS" embed --model "$M" --adapter "$TMP/adapter" --out "$TMP/a.npy"
  expect "embed with the adapter uses its pooling" 0 "mean pooling"
  run_cmd "$LACOS" -e "local T = require('lacos').tensor; print(T.load_npy('$TMP/a.npy'):maxdiff(T.load_npy('$TMP/mean.npy')) > 0)"
  expect "the adapter changes the embedding" 0 "true"
  run_cmd "$LACOS" sts --model "$M" --adapter "$TMP/adapter" --sets stsb:test --data "$DATA" --db "$TMP/r.db" --json
  expect "sts --json" 0 '"spearman"'
  sts_run=$(sqlite3 "$TMP/r.db" "SELECT max(id) FROM runs WHERE name LIKE 'sts %'")
  grep -q "^lacos sts: recorded as run $sts_run in $TMP/r.db (lacos results show $sts_run)$" <<<"$ERR" \
    && ok "sts says which run it recorded" || not_ok "sts says which run it recorded" "$ERR"
  [ "$(sqlite3 "$TMP/r.db" "SELECT git_commit FROM runs WHERE id = $sts_run")" = "$(git -C "$ROOT" rev-parse HEAD 2>/dev/null)" ] \
    && ok "sts records lacos' git commit" || not_ok "sts records lacos' git commit"
  run_cmd "$LACOS" results sql "SELECT count(*) AS n FROM sts_results WHERE dataset = 'stsb'" --db "$TMP/r.db"
  expect "sts scores are recorded" 0 "^1$"
  # CoSENT on STS-B's own layout, the softmax classifier on SNLI's labelled pairs
  head -64 "$DATA/sts/stsb/sts-train.csv" > "$TMP/sts-train.csv"
  run_cmd "$LACOS" train --model "$M" --loss cosent --pairs "$TMP/sts-train.csv" --format stsb --out "$TMP/cosent" \
    --batch-size 16 --steps 4 --no-db --pooling mean
  expect "train --loss cosent on STS-B's train layout" 0 "done after 4 of 4 steps"
  grep -qE "data_kind +scored" <<<"$ERR" && ok "train --loss cosent reads scored pairs" || not_ok "train --loss cosent reads scored pairs" "$ERR"
  [ -f "$TMP/cosent/adapter_model.safetensors" ] && ok "train --loss cosent saved the adapter" || not_ok "train --loss cosent saved the adapter"
  paste "$DATA/nli/snli-infersent/s1.dev" "$DATA/nli/snli-infersent/s2.dev" "$DATA/nli/snli-infersent/labels.dev" | head -96 > "$TMP/nli.tsv"
  run_cmd "$LACOS" train --model "$M" --loss softmax --pairs "$TMP/nli.tsv" --out "$TMP/softmax" --batch-size 16 --steps 4 \
    --no-db --pooling mean --checkpoint-every 2
  expect "train --loss softmax on labelled NLI pairs" 0 "done after 4 of 4 steps"
  [ -f "$TMP/softmax/adapter_model.safetensors" ] && ok "train --loss softmax saved the adapter" || not_ok "train --loss softmax saved the adapter"
  # the run again with its newest checkpoint gone: it resumes from the one before (the same options: a
  # checkpoint of other ones is refused)
  rm -rf "$TMP/softmax/checkpoints/ckpt-00000004"
  run_cmd "$LACOS" train --model "$M" --loss softmax --pairs "$TMP/nli.tsv" --out "$TMP/softmax" --batch-size 16 --steps 4 \
    --no-db --pooling mean --checkpoint-every 2
  expect "train --loss softmax resumes with its classifier from the checkpoint" 0 "resumed from step 2"
  run_cmd "$LACOS" train --help
  expect "train --help documents each loss's layout" 0 "--loss softmax +premise TAB hypothesis TAB label"
  printf 'a cat sits\ta cat is sitting\t4.5\nthe sky\ta dog runs\t0.5\nbirds fly\tbirds are flying\t4.8\n' > "$TMP/my.tsv"
  run_cmd "$LACOS" sts --model "$M" --file "$TMP/my.tsv" --no-db
  expect "sts --file scores a generic pairs file" 0 "my.tsv +3"
else
  skip "train, adapter and sts commands" "no shared datasets at $DATA"
fi
finish
