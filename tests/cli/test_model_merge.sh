#!/usr/bin/env bash
# test_model_merge.sh: lacos model merge as a user runs it — help, usage
# errors (exit 2), a merged checkpoint that embeds like base + adapter, the
# base's dtype by default, an existing --out refused unless --force, and bad
# adapters (another model's shape, missing files) failing with the file
# named and nothing written.
source "$(dirname "$0")/lib.sh"
ROOT=${LACOS_ROOT:-.}
TOK="$ROOT/datasets/tokenizers/bloomlike-32k.json"
D="$TMP/merge"
mkdir -p "$D"

# no output directory and no temporary beside it
nothing_at() {  # nothing_at NAME DIR
  if [ ! -e "$2" ] && [ -z "$(ls -d "$2".tmp.* 2>/dev/null)" ]; then ok "$1: nothing written"; else not_ok "$1: nothing written" "$(ls -d "$2"* 2>&1)"; fi
}

run_cmd "$LACOS" model merge --help
expect "model merge --help" 0 "lacos model merge --model DIR --adapter DIR --out DIR"

run_cmd "$LACOS" model random tiny-xs --out "$D/base" --seed 4 --tokenizer "$TOK"
expect "a base model (f16 on disk)" 0 ""
run_cmd "$LACOS" model random tiny-s --out "$D/other" --seed 4
expect "a model of another shape" 0 ""
# adapters whose B is not zero (a fresh adapter merges to nothing)
make_adapter() {  # make_adapter BASE OUT
  "$LACOS" -e "
    local lacos = require 'lacos'
    local m = lacos.bloom.load('$1', {quant = 'f32'})
    m:add_lora{r = 4, alpha = 8, targets = {'all'}, seed = 1}
    for _, p in ipairs(m:trainable()) do
      if p.name:match('lora_B') then p.param:copy(lacos.tensor.randn(p.param:size(), {seed = #p.name, std = 0.1})) end
    end
    m:save_lora('$2')" 2>&1
}
make_adapter "$D/base" "$D/adapter" && ok "adapter for the base" || not_ok "adapter for the base"
make_adapter "$D/other" "$D/other-adapter" && ok "adapter for the other shape" || not_ok "adapter for the other shape"

run_cmd "$LACOS" model merge --model "$D/base" --out "$D/x"
expect "merge without --adapter is a usage error" 2 "merge needs --adapter DIR"
run_cmd "$LACOS" model merge --model "$D/base" --adapter "$D/adapter"
expect "merge without --out is a usage error" 2 "merge needs --out DIR"
run_cmd "$LACOS" model merge --model "$D/base" --adapter "$D/adapter" --out "$D/x" --dtype i8
expect "an unknown --dtype is a usage error" 2 "--dtype must be one of f16, bf16, f32"
run_cmd "$LACOS" model random tiny-xs --out "$D/x" --adapter "$D/adapter"
expect "--adapter with random is a usage error" 2 "--model and --adapter belong to merge"
nothing_at "usage errors" "$D/x"

run_cmd "$LACOS" model merge --model "$D/base" --adapter "$D/adapter" --out "$D/merged"
expect "merge writes a checkpoint" 0 "merged .* wrote f16 weights"
for f in config.json model.safetensors tokenizer.json lacos.json; do
  [ -f "$D/merged/$f" ] && ok "merge wrote $f" || not_ok "merge wrote $f"
done
[ -z "$(ls -d "$D"/merged.tmp.* 2>/dev/null)" ] && ok "no temporary left after a merge" || not_ok "no temporary left after a merge"
run_cmd "$LACOS" -e "print(require('lacos').safetensors.open('$D/merged'):info('h.1.mlp.dense_4h_to_h.weight').dtype)"
expect "merge keeps the base's dtype (f16) by default" 0 "^f16$"

run_cmd "$LACOS" model merge --model "$D/base" --adapter "$D/adapter" --out "$D/merged32" --dtype f32
expect "merge --dtype f32" 0 "wrote f32 weights"
printf 'a cat sits on the mat\nun chat est assis\nthe weather is fine today\n' > "$D/s.txt"
run_cmd bash -c "'$LACOS' embed --model '$D/base' --adapter '$D/adapter' --quant f32 --out '$D/a.npy' < '$D/s.txt'"
expect "embed with base + adapter" 0 ""
run_cmd bash -c "'$LACOS' embed --model '$D/merged32' --quant f32 --out '$D/m.npy' < '$D/s.txt'"
expect "embed with the merged model" 0 ""
run_cmd "$LACOS" -e "local T = require('lacos').tensor; local a, m = T.load_npy('$D/a.npy'), T.load_npy('$D/m.npy')
  local r = m:maxdiff(a) / a:abs():max(); print(('rel %.3g'):format(r)); assert(r <= 1e-6, 'embeddings differ by ' .. r)"
expect "the merged model embeds as base + adapter (relative 1e-6)" 0 "rel"
echo "# merged f32 model vs base + adapter through lacos embed: $OUT"

# an existing output
ls -l "$D/merged" > "$D/before.txt"
run_cmd "$LACOS" model merge --model "$D/base" --adapter "$D/adapter" --out "$D/merged" --dtype f32
expect "a non-empty --out is refused" 1 "merged: exists and is not empty \(--force replaces it\)"
ls -l "$D/merged" | cmp -s - "$D/before.txt" && ok "the existing --out is untouched" || not_ok "the existing --out is untouched"
echo mine > "$D/merged/extra.txt"
run_cmd "$LACOS" model merge --model "$D/base" --adapter "$D/adapter" --out "$D/merged" --dtype f32 --force
expect "--force replaces it" 0 "wrote f32 weights"
[ ! -e "$D/merged/extra.txt" ] && [ -f "$D/merged/model.safetensors" ] && ok "--force replaced the directory whole" \
  || not_ok "--force replaced the directory whole" "$(ls "$D/merged")"
: > "$D/afile"
run_cmd "$LACOS" model merge --model "$D/base" --adapter "$D/adapter" --out "$D/afile"
expect "--out naming a file is refused" 1 "afile: exists and is not a directory"

# bad adapters and models: the file and the cause named, nothing written
run_cmd "$LACOS" model merge --model "$D/base" --adapter "$D/other-adapter" --out "$D/bad1"
expect "an adapter for another model shape" 1 "other-adapter/adapter_model.safetensors: .* has shape \(4, 512\), expected \(4, 256\): the adapter was made for a model of another shape, its base_model_name_or_path is .*/other"
nothing_at "another shape" "$D/bad1"
run_cmd "$LACOS" model merge --model "$D/base" --adapter "$D/missing" --out "$D/bad2"
expect "a missing adapter directory" 1 "missing/adapter_config.json: no such file"
nothing_at "missing adapter" "$D/bad2"
mkdir -p "$D/half" && cp "$D/adapter/adapter_config.json" "$D/half/"
run_cmd "$LACOS" model merge --model "$D/base" --adapter "$D/half" --out "$D/bad3"
expect "an adapter without its weights" 1 "half/adapter_model.safetensors: no such file"
nothing_at "adapter without weights" "$D/bad3"
run_cmd "$LACOS" model merge --model "$D/nomodel" --adapter "$D/adapter" --out "$D/bad4"
expect "a missing base model" 1 "nomodel/config.json: no such file"
nothing_at "missing base" "$D/bad4"
finish
