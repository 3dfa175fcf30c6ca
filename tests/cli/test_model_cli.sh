#!/usr/bin/env bash
# test_model_cli.sh: the model commands as a user runs them — lacos model
# random/info/list, lacos embed (.npy and --tsv, pooling recorded with an
# adapter, a too-long sentence), lacos train (defaults printed, adapter
# saved, a rerun resumes; --loss cosent and softmax), lacos sts (--sets,
# --file, --json).
source "$(dirname "$0")/lib.sh"
ROOT=${LACOS_ROOT:-.}
TOK="$ROOT/datasets/tokenizers/bloomlike-32k.json"
DATA=${LACOS_TEST_DATA:-../shared/datasets}
M="$TMP/model"

run_cmd "$LACOS" model list
expect "model list shows the released shapes" 0 "bloom-7b1 +4096 +30 +32 +250880 +7.069 B"
run_cmd "$LACOS" model info bloom-3b
expect "model info counts parameters exactly" 0 "3.003 B parameters"
run_cmd "$LACOS" model random tiny-xs --out "$M" --seed 2 --tokenizer "$TOK"
expect "model random writes a checkpoint" 0 ""
for f in config.json model.safetensors tokenizer.json lacos.json; do
  [ -f "$M/$f" ] && ok "model random wrote $f" || not_ok "model random wrote $f"
done

run_in $'a cat\nun chat\n\n' "$LACOS" embed --model "$M" --out "$TMP/e.npy"
expect "embed writes a .npy" 0 "wrote 3 x 64 embeddings"
run_cmd "$LACOS" -e "local t = require('lacos').tensor.load_npy('$TMP/e.npy'); print(t.dtype, t:size(1), t:size(2))"
expect "the .npy is float32 of shape [n, hidden]" 0 "f32	3	64"
run_in $'a cat\n' "$LACOS" embed --model "$M" --out - --tsv
expect "embed --tsv prints a row of 64 numbers" 0 ""
[ "$(awk -F'\t' '{print NF}' <<<"$OUT")" = 64 ] && ok "embed --tsv has 64 columns" || not_ok "embed --tsv has 64 columns" "$OUT"
run_in $'a cat\n' "$LACOS" embed --model "$M" --out "$TMP/mean.npy" --pooling mean
expect "embed --pooling on a model without a recorded pooling" 0 "mean pooling"

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
  expect "the adapter's recorded pooling is enforced" 1 "trained with pooling 'mean'"
  run_in $'a cat\n' "$LACOS" embed --model "$M" --adapter "$TMP/adapter" --out "$TMP/a.npy"
  expect "embed with the adapter uses its pooling" 0 "mean pooling"
  run_cmd "$LACOS" -e "local T = require('lacos').tensor; print(T.load_npy('$TMP/a.npy'):maxdiff(T.load_npy('$TMP/mean.npy')) > 0)"
  expect "the adapter changes the embedding" 0 "true"
  run_cmd "$LACOS" sts --model "$M" --adapter "$TMP/adapter" --sets stsb:test --data "$DATA" --db "$TMP/r.db" --json
  expect "sts --json" 0 '"spearman"'
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
  run_cmd "$LACOS" train --model "$M" --loss softmax --pairs "$TMP/nli.tsv" --out "$TMP/softmax" --batch-size 16 --steps 6 \
    --no-db --pooling mean --checkpoint-every 2
  expect "train --loss softmax resumes with its classifier from the checkpoint" 0 "resumed from step 4"
  run_cmd "$LACOS" train --help
  expect "train --help documents each loss's layout" 0 "--loss softmax +premise TAB hypothesis TAB label"
  printf 'a cat sits\ta cat is sitting\t4.5\nthe sky\ta dog runs\t0.5\nbirds fly\tbirds are flying\t4.8\n' > "$TMP/my.tsv"
  run_cmd "$LACOS" sts --model "$M" --file "$TMP/my.tsv" --no-db
  expect "sts --file scores a generic pairs file" 0 "my.tsv +3"
else
  skip "train, adapter and sts commands" "no shared datasets at $DATA"
fi
finish
