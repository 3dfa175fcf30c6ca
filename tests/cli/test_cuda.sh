#!/usr/bin/env bash
# --device cuda from the command line. Without a usable GPU (this machine, or
# a build without nvcc) every way of asking for CUDA — embed, sts, train,
# Lua's device options and tensor:to("cuda") — must stop with the reason
# (no CUDA in this build / no CUDA device), a non-zero exit, no crash and no
# output file. With a GPU, embeddings on cuda must match the CPU's.
. "$(dirname "$0")/lib.sh"
ROOT=${LACOS_ROOT:-.}
TOK=$ROOT/tests/fixtures/tokenizer/bloomlike-32k.json
MODEL=$TMP/cuda-tiny

run_cmd "$LACOS" model random tiny-xs --out "$MODEL" --seed 3 --tokenizer "$TOK"
expect "a tiny checkpoint to embed with" 0 ""

run_cmd "$LACOS" -e 'local c = require("lacos").cuda
local ok, why = c.available()
print(c.compiled() and "compiled" or "not-compiled", ok and "gpu" or "no-gpu", why or "")'
expect "lacos.cuda.available() answers" 0 "compiled"
compiled=$(printf '%s' "$OUT" | cut -f1)
gpu=$(printf '%s' "$OUT" | cut -f2)
if [ "$compiled" = compiled ]; then reason='no CUDA device: '; else reason='this lacos was built without CUDA support \(no nvcc at build time\)'; fi

run_in $'a\n' "$LACOS" embed --model "$MODEL" --device tpu --out "$TMP/x.npy"
expect "--device takes cpu or cuda" 2 "cpu, cuda|cpu\|cuda|one of"

if [ "$gpu" = gpu ]; then
  skip "embed --device cuda refuses without a GPU" "a GPU is present"
  skip "sts --device cuda refuses without a GPU" "a GPU is present"
  skip "train --device cuda refuses without a GPU" "a GPU is present"
  skip "Lua device options refuse without a GPU" "a GPU is present"
  run_in $'a cat\nun chat\n' "$LACOS" embed --model "$MODEL" --out "$TMP/cpu.npy"
  expect "embed on the CPU" 0 ""
  run_in $'a cat\nun chat\n' "$LACOS" embed --model "$MODEL" --device cuda --out "$TMP/gpu.npy"
  expect "embed on the GPU" 0 ""
  run_cmd "$LACOS" -e "local T = require 'lacos.tensor'
local a, b = T.load_npy('$TMP/cpu.npy'), T.load_npy('$TMP/gpu.npy')
local d = (a - b):abs():max()
print(d)
assert(d < 1e-3 * a:abs():max(), 'embeddings differ by ' .. d)"
  expect "GPU embeddings match the CPU's" 0 ""
  # sts and train as a user runs them, on both devices
  printf 'sentence1\tsentence2\tscore\na cat\ta dog\t3\nrain\tsun\t1\nhi\thello\t4\nthe sea\tthe ocean\t5\n' > "$TMP/pairs.tsv"
  run_cmd "$LACOS" sts --model "$MODEL" --file "$TMP/pairs.tsv" --no-db --json
  expect "sts on the CPU" 0 ""
  cpu_sts=$OUT
  run_cmd "$LACOS" sts --model "$MODEL" --device cuda --file "$TMP/pairs.tsv" --no-db --json
  expect "sts --device cuda" 0 ""
  run_cmd "$LACOS" -e "local json = require 'lacos.json'
local a, b = json.decode([[$cpu_sts]]), json.decode([[$OUT]])
local function sp(r) return r.results[1].spearman end
print(sp(a), sp(b)); assert(math.abs(sp(a) - sp(b)) < 1e-6, 'Spearman differs')"
  expect "sts: the same Spearman on both devices" 0 ""
  printf 'a cat\ta feline\nrain\twater from the sky\nhi\thello\nthe sea\tthe ocean\n' > "$TMP/train.tsv"
  for dev in cpu cuda; do
    run_cmd "$LACOS" train --model "$MODEL" --pairs "$TMP/train.tsv" --out "$TMP/run-$dev" --device "$dev" --steps 3 \
      --batch-size 4 --no-db --seed 5
    expect "train --device $dev" 0 ""
  done
  run_cmd "$LACOS" -e "local st = require 'lacos.safetensors'
local a = st.open('$TMP/run-cpu/adapter_model.safetensors')
local b = st.open('$TMP/run-cuda/adapter_model.safetensors')
local worst = 0
for _, k in ipairs(a:names()) do
  local x, y = a:get(k), b:get(k)
  local d = (x - y):abs():max() / math.max(x:abs():max(), 1e-12)
  if d > worst then worst = d end
end
print(worst); assert(#a:names() > 0 and worst < 1e-2, 'adapters differ by ' .. worst)"
  expect "train: the GPU's adapter matches the CPU's after 3 steps" 0 ""
  finish
fi

printf 'a cat\nun chat\n' > "$TMP/sentences.txt"
run_in $'a cat\nun chat\n' "$LACOS" embed --model "$MODEL" --device cuda --out "$TMP/emb.npy"
expect "embed --device cuda says why it cannot" 1 "lacos embed: .*device cuda requested, but $reason"
if [ -e "$TMP/emb.npy" ]; then not_ok "no output file after a refused device" "$TMP/emb.npy exists"; else ok "no output file after a refused device"; fi

printf 'sentence1\tsentence2\tscore\na cat\ta dog\t3\nrain\tsun\t1\nhi\thello\t4\n' > "$TMP/pairs.tsv"
run_cmd "$LACOS" sts --model "$MODEL" --device cuda --file "$TMP/pairs.tsv" --no-db
expect "sts --device cuda says why it cannot" 1 "lacos sts: .*device cuda requested, but $reason"

printf 'a cat\ta feline\nrain\twater from the sky\nhi\thello\n' > "$TMP/train.tsv"
run_cmd "$LACOS" train --model "$MODEL" --pairs "$TMP/train.tsv" --out "$TMP/run" --device cuda --steps 1 --no-db
expect "train --device cuda says why it cannot" 1 "lacos train: .*device cuda requested, but $reason"
if [ -e "$TMP/run/adapter_model.safetensors" ]; then not_ok "no adapter after a refused device" "written"; else ok "no adapter after a refused device"; fi

run_cmd "$LACOS" -e "local lacos = require 'lacos'
local ok1, e1 = pcall(lacos.bloom.random, 'tiny-xs', { device = 'cuda' })
local ok2, e2 = pcall(lacos.bloom.load, '$MODEL', { device = 'cuda' })
local t = lacos.tensor.from({ 1, 2, 3 })
local ok3, e3 = pcall(function() return t:to('cuda') end)
print(ok1, e1); print(ok2, e2); print(ok3, e3)
assert(not ok1 and not ok2 and not ok3)"
expect "Lua: bloom.random, bloom.load and tensor:to('cuda') refuse" 0 "random model: device cuda requested, but $reason"
if grep -qE "cuda-tiny: device cuda requested, but $reason" <<<"$OUT" && grep -qE "tensor:to\\('cuda'\\): .*$reason" <<<"$OUT"; then
  ok "Lua messages name the model directory and the tensor call"
else not_ok "Lua messages name the model directory and the tensor call" "$OUT"; fi

run_cmd "$LACOS" -e "local c = require('lacos').cuda
local ok, e = pcall(c.info)
print(ok, e)
assert(not ok)"
expect "lacos.cuda.info() fails cleanly" 0 "$reason"
finish
