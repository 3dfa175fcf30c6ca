#!/usr/bin/env bash
# test_bert_cli.sh: a sentence-transformers BERT directory (all-MiniLM-L6-v2,
# `make models-minilm`) through the commands a user types: lacos embed
# (f32 equal to sentence-transformers' encode, kept in
# tests/fixtures/minilm; int8 close to it; --pooling over the directory's
# mean), lacos train (the family's defaults, BERT's LoRA targets, an adapter
# PEFT names, a rerun that has nothing to do, a BLOOM target refused by
# name), and --help listing every pooling mode. Skipped, saying why, without
# the model.
source "$(dirname "$0")/lib.sh"
ROOT=${LACOS_ROOT:-.}
MODEL="$ROOT/models/all-MiniLM-L6-v2"
FIX="$ROOT/tests/fixtures/minilm/sentences.json"

# --help first: it needs no model
for cmd in embed sts train; do
  run_cmd "$LACOS" "$cmd" --help
  missing=
  for p in mean weightedmean lasttoken cls max mean_sqrt_len_tokens; do
    grep -qE -- "--pooling MODE .*[(|]$p[|)]" <<<"$OUT" || missing="$missing $p"
  done
  [ "$RC" = 0 ] && [ -z "$missing" ] && ok "lacos $cmd --help lists every pooling mode" \
    || not_ok "lacos $cmd --help lists every pooling mode" "exit $RC, missing:$missing" "${OUT:0:800}"
done

if [ ! -f "$MODEL/model.safetensors" ]; then
  skip "MiniLM from the command line" "models/all-MiniLM-L6-v2 is absent (make models-minilm)"
  finish
fi

# the fixture's sentences, one per line
"$LACOS" -e "local j = require('lacos.json').decode(io.open('$FIX'):read('*a'))
for _, s in ipairs(j.sentences) do print(s) end" > "$TMP/sentences.txt"
n=$(wc -l < "$TMP/sentences.txt")
[ "$n" -ge 10 ] && ok "the fixture has $n sentences" || not_ok "the fixture has sentences" "$n"

OUT=$("$LACOS" embed --model "$MODEL" --quant f32 --out "$TMP/f32.npy" < "$TMP/sentences.txt" 2>"$TMP/.stderr"); RC=$?
ERR=$(cat "$TMP/.stderr")
expect "embed --quant f32 writes n x 384 with the directory's mean pooling" 0 "wrote $n x 384 embeddings \(mean pooling\)"
run_cmd "$LACOS" -e "local T, json = require('lacos').tensor, require('lacos.json')
local e = T.load_npy('$TMP/f32.npy'); local p = e:data_ptr()
local ref = json.decode(io.open('$FIX'):read('*a')).encode
local worst = 0
for i, row in ipairs(ref) do for k, v in ipairs(row) do
  worst = math.max(worst, math.abs(p[(i - 1) * 384 + k - 1] - v)) end end
print(('max diff %.3g'):format(worst)); if worst > 1e-5 then os.exit(1) end"
expect "the f32 embeddings equal SentenceTransformer.encode within 1e-5" 0 "max diff"

OUT=$("$LACOS" embed --model "$MODEL" --out "$TMP/int8.npy" < "$TMP/sentences.txt" 2>"$TMP/.stderr"); RC=$?
ERR=$(cat "$TMP/.stderr")
expect "embed with the default int8" 0 "wrote $n x 384"
# the lowest per-sentence cosine the engine test measures is 0.9934 (results/minilm.md)
run_cmd "$LACOS" -e "local T = require('lacos').tensor
local a, b = T.load_npy('$TMP/f32.npy'), T.load_npy('$TMP/int8.npy')
local pa, pb, low = a:data_ptr(), b:data_ptr(), 1
for i = 0, a:size(1) - 1 do
  local d, na, nb = 0, 0, 0
  for k = 0, 383 do local x, y = pa[i * 384 + k], pb[i * 384 + k]; d = d + x * y; na = na + x * x; nb = nb + y * y end
  low = math.min(low, d / math.sqrt(na * nb))
end
print(('lowest cosine %.5f'):format(low)); if low < 0.99 then os.exit(1) end"
expect "int8 embeddings stay close to f32 (cosine >= 0.99 per sentence)" 0 "lowest cosine"

OUT=$("$LACOS" embed --model "$MODEL" --quant f32 --pooling cls --out - --tsv < "$TMP/sentences.txt" 2>"$TMP/.stderr"); RC=$?
ERR=$(cat "$TMP/.stderr")
expect "embed --pooling cls over the directory's mean (nothing was trained with a pooling)" 0 ""
cols=$(head -1 <<<"$OUT" | awk -F'\t' '{print NF}')
first_mean=$("$LACOS" embed --model "$MODEL" --quant f32 --out - --tsv < "$TMP/sentences.txt" 2>/dev/null | head -1 | cut -f1)
[ "$cols" = 384 ] && [ "$(head -1 <<<"$OUT" | cut -f1)" != "$first_mean" ] \
  && ok "cls pooling gives other 384-wide rows than mean" || not_ok "cls pooling gives other 384-wide rows than mean" "$cols ${OUT:0:200}"

# training: anchor, positive, hard negative
cat > "$TMP/nli.tsv" <<'EOF'
A man is playing a guitar.	A person plays an instrument.	Nobody is making music.
A woman is slicing an onion.	Someone is cutting a vegetable.	A woman is swimming.
Two dogs run across a field.	Animals are running outside.	The dogs are asleep indoors.
A child is reading a book.	A kid looks at pages.	The child is playing football.
The train leaves at noon.	A train departs midday.	The train was cancelled.
A chef cooks pasta.	Someone prepares food.	The kitchen is empty.
EOF
R="$TMP/runs/minilm"
run_cmd "$LACOS" train --model "$MODEL" --pairs "$TMP/nli.tsv" --out "$R" --quant f32 --steps 2 --batch-size 3 \
  --targets query,key,value --max-length 32
expect "lacos train on MiniLM saves an adapter" 0 "done after 2 of 2 steps.*adapter in"
grep -qE "pooling +mean" <<<"$ERR" && ok "train takes the directory's pooling (mean) as its default" \
  || not_ok "train takes the directory's pooling (mean) as its default" "${ERR:0:1200}"
for f in adapter_model.safetensors adapter_config.json lacos.json; do
  [ -f "$R/$f" ] && ok "the adapter directory has $f" || not_ok "the adapter directory has $f" "$(ls "$R")"
done
tm=$(tr -d ' \n' < "$R/adapter_config.json" | grep -oE '"target_modules":\[[^]]*\]')
for t in query key value; do
  grep -q "\"$t\"" <<<"$tm" && ok "adapter_config names $t" || not_ok "adapter_config names $t" "$tm"
done
[ -n "$tm" ] && ! grep -q "query_key_value" <<<"$tm" && ok "no BLOOM module name in a BERT adapter" \
  || not_ok "no BLOOM module name in a BERT adapter" "$tm"

OUT=$("$LACOS" embed --model "$MODEL" --adapter "$R" --quant f32 --out - --tsv < "$TMP/sentences.txt" 2>"$TMP/.stderr"); RC=$?
ERR=$(cat "$TMP/.stderr")
expect "embed --adapter with the trained adapter" 0 ""
first=$(head -1 <<<"$OUT" | cut -f1)
[ "$RC" = 0 ] && [ -n "$first" ] && [ "$first" != "$first_mean" ] && ok "the trained adapter changes the embeddings" \
  || not_ok "the trained adapter changes the embeddings" "${OUT:0:200}"

run_cmd "$LACOS" train --model "$MODEL" --pairs "$TMP/nli.tsv" --out "$R" --quant f32 --steps 2 --batch-size 3 \
  --targets query,key,value --max-length 32
expect "the same command again has nothing to do" 0 "nothing to do"

# PEFT's default targets for BERT (query, value) when --targets is left out
R2="$TMP/runs/minilm-default"
run_cmd "$LACOS" train --model "$MODEL" --pairs "$TMP/nli.tsv" --out "$R2" --quant f32 --steps 1 --batch-size 3 --max-length 32 --no-db
expect "train without --targets" 0 "done after 1 of 1 steps"
grep -qE "targets +query,value" <<<"$ERR" && ok "BERT's default targets are PEFT's (query,value)" \
  || not_ok "BERT's default targets are PEFT's (query,value)" "${ERR:0:1200}"

run_cmd "$LACOS" train --model "$MODEL" --pairs "$TMP/nli.tsv" --out "$TMP/runs/bad" --quant f32 --steps 1 --batch-size 3 \
  --targets query_key_value --no-db
expect "a BLOOM target on a BERT model is refused, naming BERT's" 1 "unknown LoRA target 'query_key_value' for BERT \(valid: query, key, value"
[ ! -e "$TMP/runs/bad" ] && ok "the refused run leaves no directory" || not_ok "the refused run leaves no directory" "$(ls -R "$TMP/runs/bad")"
finish
