#!/usr/bin/env bash
# GPU training step: lacos with the model on "cuda" (int8 base through
# cuBLASLt, LoRA, 8-bit Adam, MNRL) next to PyTorch + peft + bitsandbytes
# (the paper's stack) on the same GPU, the same random-weight checkpoint of
# bloom-7b1 shape, the same batch (P=8 pairs x T=128 tokens), activation
# checkpointing on both (CKPT=off to compare without). Records seconds per
# step, tokens/s and peak GPU memory into results/bench/gpu.md. The goal
# (issue #7): at most 16 GiB of GPU memory and at least twice PyTorch's
# throughput. Without a usable GPU it prints why and exits 0.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
if ! why=$("$LACOS" -e 'local ok, why = require("lacos").cuda.available(); if not ok then io.write(why); os.exit(1) end'); then
  echo "bench_gpu: skipped: no GPU: $why"
  exit 0
fi
SHAPE=${SHAPE:-bloom-7b1}; P=${P:-8}; T=${T:-128}; STEPS=${STEPS:-5}; CKPT=${CKPT:-on}
OUT=results/bench/gpu.md
B=$((2 * P))
ids="$BENCH_DIR/gpu_ids_${B}x${T}.npy"; mask="$BENCH_DIR/gpu_mask_${B}x${T}.npy"
"$LACOS" -e "local T = require('lacos').tensor
T.rand({$B, $T}, {seed = 8, lo = 4, hi = 30000}):to('i32'):save_npy('$ids')
T.ones({$B, $T}, 'i32'):save_npy('$mask')"
if [ ! -f "$OUT" ]; then
  cat > "$OUT" <<'HDR'
# GPU training step: lacos vs PyTorch + peft + bitsandbytes

`BENCH=gpu make bench` (tests/bench/bench_gpu.sh) on a machine with a GPU: one optimisation step = forward and
backward of 2·P sequences (P anchor/positive pairs) of T tokens, MNRL (scale 20), LoRA r=8 alpha=16 on
query_key_value, clipping at 1.0, 8-bit Adam. lacos: int8 weights (cuBLASLt int8 GEMMs), int8 products for the
input gradients, f32 activations. PyTorch: BloomModel in 8 bits through bitsandbytes (LLM.int8, threshold 6,
f16 activations), peft, bitsandbytes' Adam8bit. Both with activation checkpointing unless the row says
otherwise. Median of the timed steps after one warm-up; same checkpoint, batch and GPU, same run. GPU memory:
lacos' own allocations at their peak (weights, activations, LoRA, optimizer state, scratch) and PyTorch's
max_memory_allocated; "device used" adds each process's CUDA context (lacos: context + engine peak; PyTorch: what
the device had in use after the steps, its caching allocator's reserve included); "lacos planned" is
the memory planner's prediction of lacos' peak (what `lacos train` checks before the first step).

| date | GPU | model | P x T | ckpt | lacos s/step | lacos tokens/s | PyTorch s/step | speed-up | lacos peak GPU | lacos planned | PyTorch peak GPU | lacos device used | PyTorch device used |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|
HDR
fi
dir=$(random_model "$SHAPE")
l=$("$LACOS" run tests/bench/train_step_gpu.lua "$dir" "$P" "$T" "$STEPS" "$ids" "$mask" "$CKPT")
echo "lacos: $l"
pt=$("$VENV_PY" tests/bench/train_step_gpu_torch.py "$dir" "$P" "$STEPS" "$ids" "$mask" "$CKPT" 2>"$BENCH_DIR/gpu_torch.err" | tail -1) ||
  pt='{"error": "the PyTorch script failed; see '"$BENCH_DIR"'/gpu_torch.err"}'
echo "pytorch: $pt"
field() { "$VENV_PY" -c "import json,sys; v=json.loads(sys.argv[1]).get(sys.argv[2]); print('' if v is None else v)" "$1" "$2"; }
# awk, not bc: the GPU machine's image has no bc
div() { awk -v a="$1" -v b="$2" 'BEGIN { print a / b }'; }
gib() { [ -n "$1" ] && printf '%.2f GiB' "$(div "$1" 1073741824)" || printf 'n/a'; }
sl=$(field "$l" seconds_per_step); sp=$(field "$pt" seconds_per_step)
[ -n "$sl" ] || { echo "bench_gpu: lacos failed: $(field "$l" error)"; exit 1; }
speed=n/a; [ -n "$sp" ] && speed=$(printf '%.2fx' "$(div "$sp" "$sl")")
if [ -n "$sp" ]; then torch_s=$(printf '%.3f' "$sp"); else torch_s="n/a ($(field "$pt" error))"; fi
line=$(printf '| %s | %s | %s | %sx%s | %s | %.3f | %.0f | %s | %s | %s | %s | %s | %s | %s |' "$(bench_date)" "$(field "$l" device)" \
  "$SHAPE" "$P" "$T" "$CKPT" "$sl" "$(field "$l" tokens_per_s)" "$torch_s" "$speed" \
  "$(gib "$(field "$l" engine_peak_gpu_bytes)")" "$(gib "$(field "$l" planned_peak_bytes)")" "$(gib "$(field "$pt" max_allocated_bytes)")" \
  "$(gib "$(field "$l" device_used_bytes)")" "$(gib "$(field "$pt" device_used_bytes)")")
echo "$line"
echo "$line" >> "$OUT"
