#!/usr/bin/env bash
# The GPU benchmarks' parts that run without a GPU, so that the session that
# is lent one does not find their bugs there:
# - the FLOP count of tests/bench/model_flops.py for bloom-7b1 against the
#   sums worked out by hand (its docstring's formulas);
# - tests/bench/gpu_report.py on made-up engine results: row order (fastest
#   peer first, then lacos), lacos' speed-up, MFU/HFU, a failed engine's row,
#   the old table kept below the new one, a second run's rows under the
#   first's, exit 1 and no change when lacos failed;
# - the GPU benchmarks skip with the reason and exit 0 on a machine without a GPU;
# - with the reference virtualenv: the PyTorch training step (bf16 + peft)
#   on the CPU with a tiny model, its first loss next to lacos' (LoRA's B
#   starts at zero, so both are the base model's loss); with
#   LACOS_TEST_LONG=1 also the GPU encode driver with every engine on the CPU.
. "$(dirname "$0")/lib.sh"
ROOT=${LACOS_ROOT:-.}
BENCH=$ROOT/tests/bench
PY=python3
VPY=$ROOT/.venv-ref/bin/python

run_cmd $PY -c "import sys; sys.path.insert(0, '$BENCH'); import model_flops as f
c = {'h': 4096, 'L': 30}
print(f.per_token(c, 128), f.per_token(c, 128, 8, True), f.per_token(c, 128, 8, True, True), f.per_token(c, 128, 8, True, False))"
# by hand, per layer: 24h^2 = 402,653,184; 4Th = 2,097,152; 8rh = 262,144
# encode 30 x (402,653,184 + 2,097,152); training 30 x (forward 405,012,480 + backward 407,371,776), + forward again
expect "FLOPs per token of bloom-7b1 at T=128: encode, training, training with recompute" 0 \
  "^12142510080 24371527680 36521902080 24371527680$"

mkdir -p "$TMP/m7"
echo '{"hidden_size": 4096, "n_layer": 30, "n_head": 32}' > "$TMP/m7/config.json"
cat > "$TMP/train.jsonl" <<'EOF'
{"impl": "lacos", "device": "NVIDIA H200", "seconds_per_step": 0.25, "tokens_per_s": 8192, "engine_peak_gpu_bytes": 10737418240, "planned_peak_bytes": 11274289152, "device_used_bytes": 11811160064, "first_loss": 2.0959, "last_loss": 1.9507}
{"impl": "pytorch bf16 + peft", "engine": "bf16", "device": "NVIDIA H200", "seconds_per_step": 0.2, "tokens_per_s": 10240, "max_allocated_bytes": 21474836480, "device_used_bytes": 23622320128, "attention": "eager", "sdpa_refused": "BloomModel does not support an attention implementation through torch.nn.functional.scaled_dot_product_attention yet", "first_loss": 2.0959, "last_loss": 1.9487}
{"impl": "pytorch + peft + bitsandbytes", "engine": "bnb8", "error": "ModuleNotFoundError: No module named 'bitsandbytes'"}
EOF
git -C "$ROOT" show HEAD:results/bench/gpu.md > "$TMP/gpu.md" 2>/dev/null ||
  printf '# GPU training step: lacos vs PyTorch + peft + bitsandbytes\n\nold text\n' > "$TMP/gpu.md"
old_rows=$(grep -c '^| 2026' "$TMP/gpu.md")
run_cmd $PY "$BENCH/gpu_report.py" train "$TMP/gpu.md" 2027-01-01 "$TMP/m7" bloom-7b1 8 128 on "$TMP/train.jsonl"
expect "gpu_report train writes the rows" 0 "lacos int8"
rows=$(grep '^| 2027-01-01' "$TMP/gpu.md")
want1='| 2027-01-01 | NVIDIA H200 | bloom-7b1 | 8x128 | on | pytorch bf16 + peft, eager attention | 0.200 | 10240 | 0.80x | 12.6% | 18.9% | 20.00 GiB | 22.00 GiB | 2.0959 → 1.9487 |'
want2='| 2027-01-01 | NVIDIA H200 | bloom-7b1 | 8x128 | on | lacos int8 | 0.250 | 8192 | 1.00x | 10.1% | 15.1% | 10.00 GiB (planned 10.50 GiB) | 11.00 GiB | 2.0959 → 1.9507 |'
want3="| 2027-01-01 | NVIDIA H200 | bloom-7b1 | 8x128 | on | pytorch + peft + bitsandbytes: not measured (ModuleNotFoundError: No module named 'bitsandbytes') | - | - | - | - | - | - | - | - |"
if [ "$rows" = "$want1"$'\n'"$want2"$'\n'"$want3" ]; then ok "training rows: the faster peer first, speed-up, MFU/HFU of the H200's int8 peak, memory, a failed engine named"
else not_ok "training rows: the faster peer first, speed-up, MFU/HFU of the H200's int8 peak, memory, a failed engine named" "got:" "$rows" "want:" "$want1" "$want2" "$want3"; fi
if head -1 "$TMP/gpu.md" | grep -q 'PyTorch bf16' && grep -q '^## Earlier layout: lacos vs PyTorch + peft + bitsandbytes' "$TMP/gpu.md" &&
   [ "$(grep -c '^| 2026' "$TMP/gpu.md")" = "$old_rows" ] && grep -q '^| date | GPU | model | P x T | ckpt | engine |' "$TMP/gpu.md"; then
  ok "the new table on top, the earlier one kept below under its own heading"
else not_ok "the new table on top, the earlier one kept below under its own heading" "$(head -3 "$TMP/gpu.md")"; fi
run_cmd $PY "$BENCH/gpu_report.py" train "$TMP/gpu.md" 2027-01-02 "$TMP/m7" bloom-7b1 8 128 on "$TMP/train.jsonl"
first=$(grep -n '^| 2027-01-01' "$TMP/gpu.md" | tail -1 | cut -d: -f1); second=$(grep -n '^| 2027-01-02' "$TMP/gpu.md" | head -1 | cut -d: -f1)
marker=$(grep -n '<!-- rows above -->' "$TMP/gpu.md" | cut -d: -f1)
if [ "$RC" = 0 ] && [ "$first" -lt "$second" ] && [ "$((second + 3))" = "$marker" ]; then ok "a second run's rows go under the first's"
else not_ok "a second run's rows go under the first's" "rc $RC, lines $first $second, marker $marker"; fi
cp "$TMP/gpu.md" "$TMP/gpu.before"
grep -v '"impl": "lacos"' "$TMP/train.jsonl" > "$TMP/nolacos.jsonl"
echo '{"impl": "lacos", "error": "cuBLASLt: no int8 kernel"}' >> "$TMP/nolacos.jsonl"
run_cmd $PY "$BENCH/gpu_report.py" train "$TMP/gpu.md" 2027-01-03 "$TMP/m7" bloom-7b1 8 128 on "$TMP/nolacos.jsonl"
expect "gpu_report train: lacos failed is exit 1 with its reason" 1 "lacos failed: cuBLASLt: no int8 kernel"
if cmp -s "$TMP/gpu.md" "$TMP/gpu.before"; then ok "... and the table is left as it was"; else not_ok "... and the table is left as it was"; fi

cat > "$TMP/enc.jsonl" <<'EOF'
{"engine": "pytorch + bitsandbytes int8", "error": "pytorch + bitsandbytes int8: did not start: CUDA out of memory"}
{"engine": "pytorch f32", "tokens_per_s": 20000, "device": "NVIDIA H100 80GB HBM3", "peak_gpu_bytes": 30064771072, "device_used_bytes": 32212254720, "cos_min": 1.0, "cos_mean": 1.0}
{"engine": "lacos int8", "tokens_per_s": 60000, "device": "NVIDIA H100 80GB HBM3", "peak_gpu_bytes": 8589934592, "device_used_bytes": 9126805504, "cos_min": 0.99812, "cos_mean": 0.999101}
{"engine": "pytorch bf16", "tokens_per_s": 40000, "device": "NVIDIA H100 80GB HBM3", "attention": "eager", "peak_gpu_bytes": 16106127360, "device_used_bytes": 17179869184, "cos_min": 0.99901, "cos_mean": 0.999502}
EOF
run_cmd $PY "$BENCH/gpu_report.py" encode "$TMP/gpu_encode.md" 2027-01-01 "$TMP/m7" bloom-7b1 64 128 "$TMP/enc.jsonl"
expect "gpu_report encode writes a new file" 0 "lacos int8"
rows=$(grep '^| 2027-01-01' "$TMP/gpu_encode.md")
# MFU: 60,000 tok/s x 12,142,510,080 FLOP / 1,979e12 = 36.8%
want=$(printf '%s\n' \
  '| 2027-01-01 | NVIDIA H100 80GB HBM3 | bloom-7b1 | 64x128 | pytorch bf16, eager attention | 40000 | 1.50x | 24.5% | 0.99901 / 0.999502 | 15.00 GiB | 16.00 GiB |' \
  '| 2027-01-01 | NVIDIA H100 80GB HBM3 | bloom-7b1 | 64x128 | lacos int8 | 60000 | 1.00x | 36.8% | 0.99812 / 0.999101 | 8.00 GiB | 8.50 GiB |' \
  '| 2027-01-01 | NVIDIA H100 80GB HBM3 | bloom-7b1 | 64x128 | pytorch f32 | 20000 | 3.00x | 12.3% | reference | 28.00 GiB | 30.00 GiB |' \
  '| 2027-01-01 | NVIDIA H100 80GB HBM3 | bloom-7b1 | 64x128 | pytorch + bitsandbytes int8: not measured (pytorch + bitsandbytes int8: did not start: CUDA out of memory) | - | - | - | - | - | - |')
if [ "$rows" = "$want" ] && head -1 "$TMP/gpu_encode.md" | grep -q '^# GPU encoding'; then
  ok "encode rows: the fastest peer first, lacos' speed-up, MFU of the H100's int8 peak, cosines, a failed engine named"
else not_ok "encode rows: the fastest peer first, lacos' speed-up, MFU of the H100's int8 peak, cosines, a failed engine named" "got:" "$rows" "want:" "$want"; fi
echo '{"engine": "lacos int8", "tokens_per_s": 1, "device": "Some GPU"}' > "$TMP/unknown.jsonl"
run_cmd $PY "$BENCH/gpu_report.py" encode "$TMP/unknown.md" 2027-01-01 "$TMP/m7" bloom-7b1 64 128 "$TMP/unknown.jsonl"
if [ "$RC" = 0 ] && grep -q '| Some GPU | bloom-7b1 | 64x128 | lacos int8 | 1 | 1.00x | - | - |' "$TMP/unknown.md"; then
  ok "a GPU without a known peak gets no MFU rather than a guess"
else not_ok "a GPU without a known peak gets no MFU rather than a guess" "rc $RC" "$(grep '^| 2027' "$TMP/unknown.md")"; fi
run_cmd $PY "$BENCH/gpu_report.py" encode "$TMP/x.md"
expect "gpu_report with missing arguments prints its usage" 2 "usage: gpu_report.py train"

run_cmd "$LACOS" -e 'io.write(require("lacos").cuda.available() and "gpu" or "no-gpu")'
if [ "$OUT" = gpu ]; then
  skip "the GPU benchmarks without a GPU: skipped with the reason, exit 0" "a GPU is present (they would run)"
else
  for b in bench_gpu bench_gpu_encode; do
    run_cmd env LACOS="$LACOS" BENCH_DIR="$TMP/bench" VENV_PY=$PY bash "$BENCH/$b.sh"
    expect "$b without a GPU: skipped with the reason, exit 0" 0 "^$b: skipped: no GPU: ."
  done
fi

if [ ! -x "$VPY" ]; then
  skip "PyTorch bf16 + peft training step on the CPU" "no reference virtualenv (.venv-ref; make venv)"
  finish
fi
run_cmd "$LACOS" model random tiny-xs --out "$TMP/tiny" --seed 3
run_cmd "$LACOS" -e "local lacos = require 'lacos'
local T = lacos.tensor
T.rand({6, 12}, {seed = 8, lo = 4, hi = 30000}):to('i32'):save_npy('$TMP/ids.npy')
T.ones({6, 12}, 'i32'):save_npy('$TMP/mask.npy')
local m = lacos.bloom.load('$TMP/tiny', {quant = 'f32'})
m:add_lora{r = 8, alpha = 16, targets = {'query_key_value'}}
local emb = m:forward_train(T.load_npy('$TMP/ids.npy'), T.load_npy('$TMP/mask.npy'), 'mean', 0)
io.write(lacos.loss.mnrl{scale = 20}:compute(emb:narrow(1, 1, 3):contiguous(), emb:narrow(1, 4, 3):contiguous()))"
lacos_loss=$OUT
run_cmd "$VPY" "$BENCH/train_step_gpu_torch.py" "$TMP/tiny" 3 2 "$TMP/ids.npy" "$TMP/mask.npy" on --engine bf16 --device cpu
check=$("$VPY" -c "import json, sys
r = json.loads(sys.argv[1].splitlines()[-1])
assert 'error' not in r, r['error']
assert r['seconds_per_step'] > 0 and r['checkpointing'] and r['lora_params'] > 0, r
assert abs(r['first_loss'] - float(sys.argv[2])) < 0.05, (r['first_loss'], sys.argv[2])
print('fine', r['attention'])" "$OUT" "$lacos_loss" 2>&1)
if [[ "$check" == fine* ]]; then ok "PyTorch bf16 + peft training step on the CPU: a result, its first loss as lacos' ($lacos_loss; ${check#fine })"
else not_ok "PyTorch bf16 + peft training step on the CPU: a result, its first loss as lacos' ($lacos_loss)" "$check" "$OUT" "${ERR: -800}"; fi
run_cmd "$VPY" "$BENCH/train_step_gpu_torch.py" "$TMP/tiny" 3 2 "$TMP/ids.npy" "$TMP/mask.npy" --engine bnb8 --device cpu
expect "the bitsandbytes engine on the CPU is an error line, not a crash" 0 '"error": "RuntimeError: bitsandbytes.* cuda only'

if [ "${LACOS_TEST_LONG:-0}" = 0 ]; then
  skip "GPU encode driver with every engine on the CPU" "LACOS_TEST_LONG=1 (make check-long) runs it"
  finish
fi
run_cmd env ENCODE_DEVICE=cpu "$VPY" "$BENCH/encode_gpu_compare.py" "$LACOS" "$TMP/tiny" 2 "$TMP/ids.npy" "$TMP/mask.npy" "$TMP/enc"
check=$("$VPY" -c "import json, sys
rows = {r['engine']: r for r in map(json.loads, sys.argv[1].splitlines())}
assert 'error' in rows['pytorch + bitsandbytes int8'], rows
for e in ('pytorch f32', 'lacos int8', 'pytorch bf16'):
    assert rows[e]['tokens_per_s'] > 0 and len(rows[e]['seconds']) == (1 if e == 'pytorch f32' else 2), rows[e]
assert rows['pytorch f32']['cos_min'] > 0.999999
assert rows['lacos int8']['cos_min'] > 0.99 and rows['pytorch bf16']['cos_min'] > 0.99, rows
print('fine')" "$OUT" 2>&1)
if [ "$check" = fine ]; then ok "GPU encode driver with every engine on the CPU: results, cosines to f32, bitsandbytes' error"
else not_ok "GPU encode driver with every engine on the CPU: results, cosines to f32, bitsandbytes' error" "$check" "$OUT" "${ERR: -800}"; fi
finish
