#!/usr/bin/env bash
# test_model_export.sh: lacos model export as a user runs it — help, usage
# errors (exit 2), an export with and without an adapter, the weights' dtype,
# and bad input failing with the file and the cause named and nothing
# written: a missing model or adapter, a model lacos cannot export, an
# unknown --format, an existing --out (refused unless --force), an --out
# that cannot be written, a pooling the adapter was not trained with, a
# length past the model's. Then a tiny random BERT (BertModel config.json,
# the WordPiece fixture tokenizer): exported with its length, each pooling
# flag, an adapter's recorded pooling, int8's warning, and the same bad
# input refused. (SentenceTransformer loading the exports is
# tests/lua/test_stexport.lua and tests/lua/test_bertexport.lua.)
source "$(dirname "$0")/lib.sh"
D="$TMP/export"
mkdir -p "$D"

nothing_at() {  # nothing_at NAME DIR: no output directory and no temporary beside it
  if [ ! -e "$2" ] && [ -z "$(ls -d "$2".tmp.* 2>/dev/null)" ]; then ok "$1: nothing written"; else not_ok "$1: nothing written" "$(ls -d "$2"* 2>&1)"; fi
}

run_cmd "$LACOS" model export --help
expect "model export --help" 0 "lacos model export --model DIR \[--adapter DIR\] --out DIR \[--format sentence-transformers\]"

run_cmd "$LACOS" model random tiny-xs --out "$D/base" --seed 4 --dtype f32
expect "a base model" 0 ""
printf 'a cat sits on the mat\tun chat est assis sur le tapis\nthe weather is fine\tdas Wetter ist schön\n' > "$D/pairs.tsv"
printf 'it is raining\testá lloviendo\nI like tea\t我喜欢茶\n' >> "$D/pairs.tsv"
run_cmd "$LACOS" train --model "$D/base" --pairs "$D/pairs.tsv" --out "$D/adapter" --quant f32 --pooling lasttoken --steps 1 \
  --batch-size 4 --checkpoint-every 0 --no-db
expect "an adapter trained with last-token pooling" 0 ""

# usage errors: exit 2, nothing written
run_cmd "$LACOS" model export --out "$D/x"
expect "export without --model is a usage error" 2 "export needs --model DIR"
run_cmd "$LACOS" model export --model "$D/base"
expect "export without --out is a usage error" 2 "export needs --out DIR"
run_cmd "$LACOS" model export --model "$D/base" --out "$D/x" --format onnx
expect "an unknown --format is a usage error" 2 "--format must be one of sentence-transformers"
run_cmd "$LACOS" model export --model "$D/base" --out "$D/x" --pooling bogus
expect "an unknown pooling is a usage error" 2 "--pooling must be one of mean, weightedmean, lasttoken, cls, max, mean_sqrt_len_tokens, got 'bogus'"
run_cmd "$LACOS" model export --model "$D/base" --out "$D/x" --max-length 0
expect "--max-length 0 is a usage error" 2 "--max-length"
run_cmd "$LACOS" model export --model "$D/base" --out "$D/x" extra
expect "a positional argument is a usage error" 2 "export takes no positional argument"
run_cmd "$LACOS" model merge --model "$D/base" --adapter "$D/adapter" --out "$D/x" --pooling mean
expect "--pooling with merge is a usage error" 2 "--pooling, --max-length and --db belong to export, not merge"
nothing_at "usage errors" "$D/x"

# a base alone: BLOOM's default pooling, f32
run_cmd "$LACOS" model export --model "$D/base" --out "$D/plain"
expect "export of a base model" 0 "exported .* \(weightedmean pooling, max_seq_length 2048, f32 weights\)"
run_cmd "$LACOS" -e "local d = require('lacos').sentence_transformers.describe('$D/plain'); print(d.kind, d.pooling, d.max_length, d.padding_side)"
expect "describe reads the base's export" 0 "sentence-transformers	weightedmean	2048	right"
grep -q "adapter: none" "$D/plain/README.md" && ok "the card says there is no adapter" || not_ok "the card says there is no adapter"

# with the adapter: its pooling, the dtype asked for, the length asked for
run_cmd "$LACOS" model export --model "$D/base" --adapter "$D/adapter" --out "$D/st16" --dtype f16 --max-length 128
expect "export with an adapter, f16, max length 128" 0 "lasttoken pooling, max_seq_length 128, f16 weights"
run_cmd "$LACOS" -e "local lacos = require('lacos'); local d = lacos.sentence_transformers.describe('$D/st16')
  print(d.pooling, d.max_length, lacos.safetensors.open('$D/st16'):info('h.0.self_attention.query_key_value.weight').dtype)"
expect "describe and the weights agree" 0 "lasttoken	128	f16"
grep -q "training run: not recorded" "$D/st16/README.md" && ok "a run trained with --no-db is not named" \
  || not_ok "a run trained with --no-db is not named" "$(grep 'training run' "$D/st16/README.md")"

run_cmd "$LACOS" model export --model "$D/base" --adapter "$D/adapter" --out "$D/x" --pooling mean
expect "a pooling the adapter was not trained with" 1 "adapter was trained with lasttoken pooling; exported with mean"
run_cmd "$LACOS" model export --model "$D/base" --out "$D/x" --max-length 4096
expect "a length past the model's" 1 "max_length must be a whole number from 1 to the model's 2048, got 4096"
nothing_at "refused pooling and length" "$D/x"

# missing or wrong inputs: the file and the cause, nothing written
run_cmd "$LACOS" model export --model "$D/nomodel" --out "$D/bad1"
expect "a missing model" 1 "nomodel/config.json: no such file"
nothing_at "missing model" "$D/bad1"
run_cmd "$LACOS" model export --model "$D/base" --adapter "$D/noadapter" --out "$D/bad2"
expect "a missing adapter" 1 "noadapter/adapter_config.json: no such file"
nothing_at "missing adapter" "$D/bad2"
mkdir -p "$D/gpt2" && printf '{"model_type": "gpt2", "n_embd": 64}\n' > "$D/gpt2/config.json"
run_cmd "$LACOS" model export --model "$D/gpt2" --out "$D/bad3"
expect "a model family lacos does not export" 1 "gpt2/config.json: model_type is \"gpt2\"; lacos exports bert, bloom models"
nothing_at "unknown family" "$D/bad3"
mkdir -p "$D/notok" && cp "$D/base/config.json" "$D/base/model.safetensors" "$D/notok/"
run_cmd "$LACOS" model export --model "$D/notok" --out "$D/bad4"
expect "a model without tokenizer.json" 1 "notok: the model has no tokenizer.json; a sentence-transformers directory needs one"
nothing_at "no tokenizer" "$D/bad4"
run_cmd "$LACOS" model random tiny-s --out "$D/other" --seed 4
run_cmd "$LACOS" model export --model "$D/other" --adapter "$D/adapter" --out "$D/bad5"
expect "an adapter for another shape" 1 "adapter/adapter_model.safetensors: .* the adapter was made for a model of another shape"
nothing_at "another shape" "$D/bad5"

# an existing output: refused and untouched; --force replaces it whole
ls -l "$D/plain" > "$D/before.txt"
run_cmd "$LACOS" model export --model "$D/base" --adapter "$D/adapter" --out "$D/plain"
expect "a non-empty --out is refused" 1 "plain: exists and is not empty \(--force replaces it\)"
ls -l "$D/plain" | cmp -s - "$D/before.txt" && ok "the existing --out is untouched" || not_ok "the existing --out is untouched"
echo mine > "$D/plain/extra.txt"
run_cmd "$LACOS" model export --model "$D/base" --adapter "$D/adapter" --out "$D/plain" --force
expect "--force replaces it" 0 "lasttoken pooling"
[ ! -e "$D/plain/extra.txt" ] && [ -f "$D/plain/modules.json" ] && ok "--force replaced the directory whole" \
  || not_ok "--force replaced the directory whole" "$(ls "$D/plain")"
[ -z "$(ls -d "$D"/plain.tmp.* 2>/dev/null)" ] && ok "no temporary left after an export" || not_ok "no temporary left after an export"

# an --out that cannot be written: under a file; under /proc (refused even to root); a read-only folder (not root)
: > "$D/afile"
run_cmd "$LACOS" model export --model "$D/base" --out "$D/afile/sub"
expect "an --out under a file" 1 "afile/sub.*Not a directory"
run_cmd "$LACOS" model export --model "$D/base" --out "$D/afile"
expect "an --out naming a file" 1 "afile: exists and is not a directory"
run_cmd "$LACOS" model export --model "$D/base" --out /proc/lacos-export-test
expect "an --out where nothing can be created" 1 "/proc/lacos-export-test"
if [ "$(id -u)" != 0 ]; then
  mkdir -p "$D/ro" && chmod 555 "$D/ro"
  run_cmd "$LACOS" model export --model "$D/base" --out "$D/ro/st"
  expect "an --out in a read-only folder" 1 "ro/st.*Permission denied"
  nothing_at "read-only folder" "$D/ro/st"
  chmod 755 "$D/ro"
else
  skip "an --out in a read-only folder" "running as root, whom file permissions do not stop"
fi

# a BERT: BertModel's names and config, its max_position_embeddings as max_seq_length, any pooling
B="$D/bert"
printf '{"model_type": "bert", "vocab_size": 6000, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 48, "max_position_embeddings": 64, "pad_token_id": 0}\n' > "$D/bert.json"
run_cmd "$LACOS" model random "$D/bert.json" --out "$B" --dtype f32 --seed 2 --tokenizer "${LACOS_ROOT:-.}/tests/fixtures/wordpiece/wp-small.json"
expect "a tiny random BERT" 0 ""
run_cmd "$LACOS" model export --model "$B" --out "$D/bert-st"
expect "export of a BERT" 0 "exported .* \(mean pooling, max_seq_length 64, f32 weights\)"
run_cmd "$LACOS" -e "local lacos = require('lacos'); local d = lacos.sentence_transformers.describe('$D/bert-st')
  local s = lacos.safetensors.open('$D/bert-st')
  print(d.model_type, d.pooling, d.max_length, d.include_prompt, s:has('encoder.layer.1.attention.self.value.weight'))"
expect "a BertModel checkpoint with its pooling and length" 0 "bert	mean	64	true	true"
for p in cls max mean_sqrt_len_tokens; do
  run_cmd "$LACOS" model export --model "$B" --out "$D/bert-$p" --pooling "$p" --max-length 16
  expect "BERT export with --pooling $p --max-length 16" 0 "$p pooling, max_seq_length 16"
done
grep -q '"pooling_mode_max_tokens": true' "$D/bert-max/1_Pooling/config.json" && ok "max pooling in the Pooling config" \
  || not_ok "max pooling in the Pooling config" "$(cat "$D/bert-max/1_Pooling/config.json")"
run_cmd "$LACOS" model export --model "$B" --out "$D/x" --max-length 65
expect "a BERT length past max_position_embeddings" 1 "max_length must be a whole number from 1 to the model's 64, got 65"
run_cmd "$LACOS" model export --model "$B" --out "$D/bert-st"
expect "an existing BERT export without --force" 1 "bert-st: exists and is not empty \(--force replaces it\)"
run_cmd "$LACOS" model export --model "$B" --out "$D/afile/bert"
expect "a BERT --out under a file" 1 "afile/bert.*Not a directory"
nothing_at "refused BERT exports" "$D/x"
run_cmd "$LACOS" train --model "$B" --pairs "$D/pairs.tsv" --out "$D/bert-adapter" --quant f32 --pooling max --steps 1 \
  --batch-size 4 --checkpoint-every 0 --no-db --targets query,value
expect "a BERT adapter trained with max pooling" 0 ""
run_cmd "$LACOS" model export --model "$B" --adapter "$D/bert-adapter" --out "$D/x" --pooling cls
expect "a pooling the BERT adapter was not trained with" 1 "adapter was trained with max pooling; exported with cls"
nothing_at "refused BERT pooling" "$D/x"
run_cmd "$LACOS" model export --model "$B" --adapter "$D/bert-adapter" --out "$D/bert-merged" --quant int8
expect "an int8-held BERT exports dequantised, saying so" 0 "warning: .*held in int8: the export's weights are its int8 weights dequantised"
grep -q "dequantised from the int8 model" "$D/bert-merged/README.md" && ok "the card says the weights were dequantised" \
  || not_ok "the card says the weights were dequantised" "$(grep -i int8 "$D/bert-merged/README.md")"
finish
