#!/usr/bin/env bash
# test_resume.sh: what a rerun of `lacos train` may and may not do with what
# an earlier run left in --out. A checkpoint resumes only a run with the same
# fingerprint (options, seeds, data, starting weights, lacos version): other
# options are refused by name, never continued silently; a smaller --pairs
# file is refused, not a crash; training further is a new run that starts
# from the old adapter (--init-adapter); an adapter that a run made (and a
# results database recorded) is never overwritten by another run; two
# trainings into one --out are kept apart by a lock naming the process and
# host, and a lock left by a killed process is taken over.
source "$(dirname "$0")/lib.sh"
ROOT=${LACOS_ROOT:-.}
W="$TMP/resume"
rm -rf "$W" && mkdir -p "$W" && cd "$W" || exit 1
export LACOS_DB="$W/runs.db"
TOK="$ROOT/datasets/tokenizers/bloomlike-32k.json"
"$LACOS" model random tiny-xs --out m --seed 1 --tokenizer "$TOK" >/dev/null 2>&1
awk 'BEGIN { for (i = 1; i <= 24; i++) printf "sentence %d about a cat on a mat\tline %d, the cat again\n", i, i }' > pairs.tsv
head -6 pairs.tsv > small.tsv
sha() { sha256sum "$1" 2>/dev/null | cut -d' ' -f1; }
TR=(train --model m --pairs pairs.tsv --batch-size 4 --checkpoint-every 2)

# ---- other options: refused, by their option names, nothing touched
run_cmd "$LACOS" "${TR[@]}" --epochs 2 --out a
expect "a 2-epoch run (12 steps) into a" 0 "done after 12 of 12 steps"
adapter=$(sha a/adapter_model.safetensors)
ck=$(sha a/checkpoints/ckpt-00000012/tensors.safetensors.zst)
run_cmd "$LACOS" "${TR[@]}" --epochs 2 --out a --lr 0.001
expect "another --lr is refused, naming --lr and both values" 1 \
  "a/checkpoints/ckpt-00000012 was made with other options: --lr 0.0002 there, 0.001 now"
grep -q "resumed from step" <<<"$ERR" && not_ok "another --lr does not resume" "$ERR" || ok "another --lr does not resume"
run_cmd "$LACOS" "${TR[@]}" --epochs 3 --out a
expect "--epochs 3 after the finished 2-epoch run is refused (not an extension in place)" 1 \
  "--epochs 2 there, 3 now.*the number of steps .* 12 there, 18 now.*--init-adapter"
run_cmd "$LACOS" "${TR[@]}" --epochs 2 --out a --seed 7
expect "another --seed is refused, naming it" 1 "--seed 42 there, 7 now"
run_cmd "$LACOS" "${TR[@]}" --epochs 2 --out a --pooling mean --max-length 32 --warmup 0.2
expect "several options at once: each is named" 1 "--warmup 0.1 there, 0.2 now.*--pooling weightedmean there, mean now; --max-length 128 there, 32 now"
run_cmd "$LACOS" train --model m --pairs small.tsv --batch-size 4 --checkpoint-every 2 --epochs 2 --out a
expect "a smaller --pairs file is refused naming --pairs (no crash in pairs.lua)" 1 \
  "made with other options: --pairs \(the pairs read.*\) [0-9a-f]+… there, [0-9a-f]+… now; the number of pairs \(--pairs, --limit\) 24 there, 6 now"
[ "$(sha a/adapter_model.safetensors)" = "$adapter" ] && [ "$(sha a/checkpoints/ckpt-00000012/tensors.safetensors.zst)" = "$ck" ] &&
  ok "the refused runs left the adapter and the checkpoints as they were" || not_ok "the refused runs left the adapter and the checkpoints as they were"
recorded=$(sqlite3 runs.db "SELECT sha256 FROM artifacts WHERE kind = 'adapter' AND path LIKE '%/resume/a/adapter_model.safetensors'")
[ -n "$recorded" ] && [ "$recorded" = "$adapter" ] && ok "the database's record of the adapter still matches the file" ||
  not_ok "the database's record of the adapter still matches the file" "recorded $recorded, file $adapter"

# ---- the same options again: nothing to do, the adapter untouched
run_cmd "$LACOS" "${TR[@]}" --epochs 2 --out a --no-db
expect "the same command (no database) resumes from the final checkpoint: nothing to do" 0 "nothing to do: the checkpoints already reach step 12 of 12"
[ "$(sha a/adapter_model.safetensors)" = "$adapter" ] && ok "... and leaves the adapter as it was" || not_ok "... and leaves the adapter as it was"

# ---- a finished adapter is never overwritten by another run
run_cmd "$LACOS" "${TR[@]}" --epochs 2 --out a --no-resume
expect "--no-resume into a directory with a trained adapter is refused" 1 \
  "a already holds a trained adapter \(a/adapter_model.safetensors\) and --no-resume would replace it; .*--init-adapter a --out NEW_DIR"
mkdir -p lone && cp a/adapter_model.safetensors a/adapter_config.json lone/
run_cmd "$LACOS" "${TR[@]}" --epochs 1 --out lone
expect "an adapter with no checkpoint of its run is not overwritten" 1 "lone already holds a trained adapter .* and no checkpoint of the run that made it"
[ "$(sha a/adapter_model.safetensors)" = "$adapter" ] && [ "$(sha lone/adapter_model.safetensors)" = "$adapter" ] &&
  ok "both adapters are as they were" || not_ok "both adapters are as they were"

# ---- training further: a new run from the old adapter
run_cmd "$LACOS" "${TR[@]}" --epochs 1 --out b --init-adapter a
expect "--init-adapter: a new run starting from a's adapter" 0 "done after 6 of 6 steps .*adapter in b$"
grep -q '"init_adapter": "a"' b/lacos.json && ok "b/lacos.json records the adapter it started from" || not_ok "b/lacos.json records the adapter it started from" "$(cat b/lacos.json)"
[ "$(sha a/adapter_model.safetensors)" = "$adapter" ] && ok "a's adapter is untouched by the new run" || not_ok "a's adapter is untouched by the new run"
[ "$(sqlite3 runs.db "SELECT count(DISTINCT run_id) FROM artifacts WHERE kind = 'adapter'")" = 2 ] &&
  ok "two runs, two adapter artifacts" || not_ok "two runs, two adapter artifacts" "$(sqlite3 runs.db 'SELECT * FROM artifacts')"
run_cmd "$LACOS" -e "
local lacos = require 'lacos'
local a, b = lacos.safetensors.open('a/adapter_model.safetensors'), lacos.safetensors.open('b/adapter_model.safetensors')
local n = 'base_model.model.h.0.self_attention.query_key_value.lora_B.weight'
print(((a:get(n) - b:get(n)):abs():max()))"
awk '{ exit !($1 > 0) }' <<<"$OUT" && ok "b trained further (its weights moved from a's)" || not_ok "b trained further (its weights moved from a's)" "$OUT $ERR"
run_cmd "$LACOS" "${TR[@]}" --epochs 1 --out c --init-adapter a --r 4
expect "--init-adapter with another --r is refused before training" 1 "a: .*lora_A.weight has shape 8x64, --r 4 needs 4x64"
[ -e c ] && not_ok "... and leaves no c" || ok "... and leaves no c"
run_cmd "$LACOS" "${TR[@]}" --epochs 1 --out a --init-adapter a
expect "--init-adapter into its own directory is a usage error" 2 "--init-adapter and --out name the same directory"

# ---- the Lua API refuses the same way (lacos.train's own option names)
run_cmd "$LACOS" -e "
local lacos = require 'lacos'
local function go(lr)
  local m = lacos.bloom.load('m'); m:add_lora { r = 4, alpha = 8, seed = 1 }
  return lacos.train { model = m, data = lacos.pairs.read('pairs.tsv'), batch_size = 4, steps = 2, lr = lr,
                       checkpoint_dir = 'lua-ckpt', checkpoint_every = 1, quiet = true }
end
go(1e-4)
local ok, err = pcall(go, 2e-4)
print(ok, err)"
expect "lacos.train with another lr: refused, by its Lua name" 0 "^false	lua-ckpt/ckpt-00000002 was made with other options: lr 0.0001 there, 0.0002 now"

# ---- two trainings into one --out
slow=(train --model m --pairs pairs.tsv --batch-size 4 --checkpoint-every 1 --epochs 40 --no-db)
"$LACOS" "${slow[@]}" --out d > d.log 2>&1 &
first=$!
for _ in $(seq 1 100); do [ -e d/checkpoints/.lacos-lock ] && break; sleep 0.1; done
run_cmd "$LACOS" "${slow[@]}" --out d --lr 0.001
expect "a second training into the same --out is refused, naming the first's pid and host" 1 \
  "d/checkpoints: another lacos is using this directory \(pid $first host $(hostname) holds d/checkpoints/.lacos-lock\)"
run_cmd "$LACOS" "${slow[@]}" --out d
expect "... with the same options too (no database to claim the run)" 1 "another lacos is using this directory \(pid $first "
kill -KILL "$first" 2>/dev/null; wait "$first" 2>/dev/null
ls d/checkpoints | grep -q '^ckpt-' || sleep 1
run_cmd "$LACOS" "${slow[@]}" --out d --steps 3
expect "after the first was killed, its lock is free: a new command goes on (refused here only for its other options)" 1 \
  "was made with other options: --epochs 40 there, unused \(steps given\) now"
grep -q "another lacos is using" <<<"$ERR" && not_ok "... not refused for the lock" "$ERR" || ok "... not refused for the lock"
# a lock file that a killed process left behind, naming it
sleep 0 & dead=$!; wait "$dead"
mkdir -p e/checkpoints && printf 'pid %s host %s\n' "$dead" "$(hostname)" > e/checkpoints/.lacos-lock
run_cmd "$LACOS" "${TR[@]}" --steps 2 --out e --no-db
expect "a stale lock of a dead process is taken over, with a note naming it" 0 \
  "e/checkpoints: taking over the lock that pid $dead host $(hostname) left \(that process is gone\)"
[ -e e/checkpoints/.lacos-lock ] && not_ok "the lock is removed when the run ends" || ok "the lock is removed when the run ends"

# ---- the Lua API takes the same lock
"$LACOS" "${slow[@]}" --out f > f.log 2>&1 &
holder=$!
for _ in $(seq 1 100); do [ -e f/checkpoints/.lacos-lock ] && break; sleep 0.1; done
run_cmd "$LACOS" -e "
local lacos = require 'lacos'
local m = lacos.bloom.load('m'); m:add_lora { r = 8, alpha = 16 }
lacos.train { model = m, data = lacos.pairs.read('pairs.tsv'), batch_size = 4, steps = 2, checkpoint_dir = 'f/checkpoints', quiet = true }"
expect "lacos.train into a checkpoint directory another process trains into: refused" 1 "f/checkpoints: another lacos is using this directory \(pid $holder "
kill -KILL "$holder" 2>/dev/null; wait "$holder" 2>/dev/null
finish
