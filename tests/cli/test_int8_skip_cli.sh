# test_int8_skip_cli.sh: --int8-skip on the commands that take --quant, on
# the tiny BLOOM checkpoint tests/fixtures/bloom/tiny-b: embed (and its bad
# input: a pattern naming nothing, an empty one, --quant f32), sts records
# the list with every score and in the run's config, train records it in the
# adapter's lacos.json and in its fingerprint (a rerun with another list is
# refused, naming --int8-skip), and a load with the adapter takes it.
source "$(dirname "$0")/lib.sh"

MODEL="$LACOS_ROOT/tests/fixtures/bloom/tiny-b"
D="$TMP/int8-skip-cli"
mkdir -p "$D"
printf 'A cat sits on the mat.\nDogs run.\nThe weather is nice.\n' > "$D/sentences.txt"

run_in "$(cat "$D/sentences.txt")" "$LACOS" embed --model "$MODEL" --int8-skip dense_4h_to_h,h.0 --out - --tsv
expect "embed --int8-skip" 0 ""
mixed=$OUT
run_in "$(cat "$D/sentences.txt")" "$LACOS" embed --model "$MODEL" --out - --tsv
plain=$OUT
[ -n "$mixed" ] && [ "$(wc -l <<<"$mixed")" = 3 ] && [ "$mixed" != "$plain" ] \
  && ok "f32 linears change the int8 embeddings" || not_ok "f32 linears change the int8 embeddings" "${mixed:0:200}"
run_in "$(cat "$D/sentences.txt")" "$LACOS" embed --model "$MODEL" --int8-skip none --out - --tsv
[ "$OUT" = "$plain" ] && ok "--int8-skip none is plain int8" || not_ok "--int8-skip none is plain int8" "${OUT:0:200}"

run_in "x" "$LACOS" embed --model "$MODEL" --int8-skip value --out - --tsv
expect "a pattern naming no linear is refused with the model's names" 1 \
  'pattern "value" names none of the model.s linears.*h\.N\.\{self_attention\.query_key_value, self_attention\.dense, mlp\.dense_h_to_4h, mlp\.dense_4h_to_h\} for N in 0\.\.2'
[ -z "$OUT" ] && ok "nothing on stdout after the refusal" || not_ok "nothing on stdout after the refusal" "${OUT:0:200}"
run_in "x" "$LACOS" embed --model "$MODEL" --int8-skip "dense," --out - --tsv
expect "an empty pattern is refused" 1 'pattern 2 is empty'
run_in "x" "$LACOS" embed --model "$MODEL" --quant f32 --int8-skip dense --out - --tsv
expect "--int8-skip with --quant f32 is refused" 1 'quant is f32'

# sts: the list goes with the scores and into the run's config
printf 'A cat sits.\tA cat is sitting.\t4.5\nDogs run.\tThe weather is nice.\t0.5\nA man eats.\tSomeone is eating.\t4\nIt rains.\tThe sun shines.\t1\n' > "$D/pairs.tsv"
run_cmd "$LACOS" sts --model "$MODEL" --file "$D/pairs.tsv" --int8-skip mlp --db "$D/r.db"
expect "sts --int8-skip" 0 "pairs.tsv"
q=$(sqlite3 "$D/r.db" "SELECT DISTINCT quantisation FROM sts_results")
[ "$q" = "int8 int8_skip=mlp" ] && ok "each score records the formats" || not_ok "each score records the formats" "$q"
c=$(sqlite3 "$D/r.db" "SELECT json_extract(config_json, '$.int8_skip') FROM runs")
[ "$c" = "mlp" ] && ok "the run's config names the list" || not_ok "the run's config names the list" "$c"

# train: the adapter's lacos.json and the fingerprint
printf 'A man plays a guitar.\tA person plays music.\nA woman cuts an onion.\tSomeone cuts a vegetable.\nTwo dogs run.\tAnimals run.\nA child reads.\tA kid reads a book.\n' > "$D/train.tsv"
R="$D/run"
run_cmd "$LACOS" train --model "$MODEL" --pairs "$D/train.tsv" --out "$R" --int8-skip h.1 --steps 2 --batch-size 2 \
  --max-length 16 --no-db
expect "train --int8-skip" 0 "done after 2 of 2 steps"
grep -qE "int8_skip +h\.1" <<<"$ERR" && ok "the run's settings show the list" || not_ok "the run's settings show the list" "${ERR:0:800}"
run_cmd "$LACOS" -e "local m = require('lacos.json').read('$R/lacos.json'); print(table.concat(m.int8_skip, ','))"
[ "$OUT" = "h.1" ] && ok "the adapter's lacos.json names the list" || not_ok "the adapter's lacos.json names the list" "$OUT $ERR"
run_cmd "$LACOS" train --model "$MODEL" --pairs "$D/train.tsv" --out "$R" --int8-skip h.2 --steps 3 --batch-size 2 \
  --max-length 16 --no-db
expect "a rerun with another list is refused, naming --int8-skip" 1 "--int8-skip h\.1 there, h\.2 now"
run_in "A cat sits on the mat." "$LACOS" embed --model "$MODEL" --adapter "$R" --out - --tsv
with=$OUT
run_in "A cat sits on the mat." "$LACOS" embed --model "$MODEL" --adapter "$R" --int8-skip h.1 --out - --tsv
[ -n "$with" ] && [ "$with" = "$OUT" ] && ok "embed --adapter takes the adapter's list" \
  || not_ok "embed --adapter takes the adapter's list" "${with:0:100} / ${OUT:0:100}"
# quant-sensitivity: on a copy with outlier features planted in block 0 (tests/lua/outliers_fixture.lua), the
# block's linears rank worst at threshold 0 and the greedy list starts there and reaches the target
run_cmd "$LACOS" -e "require('outliers_fixture').plant('$MODEL', '$D/planted')"
printf 'A cat sits on the mat.\nDogs run in the park.\nThe weather is nice today.\n' > "$D/s3.txt"
run_cmd "$LACOS" quant-sensitivity --model "$D/planted" --sentences "$D/s3.txt" --target 0.99999
expect "quant-sensitivity prints the list that reaches the target" 0 "^--int8-skip h\.0\.mlp\.dense_4h_to_h"
grep -qE "^ +1  h\.0\." <<<"$OUT" && ok "the planted block's linears rank worst" || not_ok "the planted block's linears rank worst" "${OUT:0:1500}"
last=$(grep -E "^ +[0-9]+  \+ " <<<"$OUT" | tail -1 | awk '{print $4}')
awk -v c="$last" 'BEGIN { exit !(c >= 0.99999) }' && ok "the last greedy step reaches it ($last)" \
  || not_ok "the last greedy step reaches it" "${OUT:0:1500}"
run_cmd "$LACOS" quant-sensitivity --model "$MODEL" --sentences "$D/absent.txt"
expect "quant-sensitivity without the sentences file" 1 "absent.txt: No such file"
finish
