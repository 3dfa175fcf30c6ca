#!/usr/bin/env bash
# GPU training step: lacos with the model on "cuda" (int8 base through
# cuBLASLt, LoRA, 8-bit Adam, MNRL) next to PyTorch bf16 + peft (what a user
# with an 80 GB GPU runs) and PyTorch + peft + bitsandbytes (the paper's
# stack), one after the other on the same GPU, the same random-weight
# checkpoint of bloom-7b1 shape, the same batch (P=8 pairs x T=128 tokens),
# activation checkpointing on every engine (CKPT=off to compare without).
# One row per engine in results/bench/gpu.md (tests/bench/gpu_report.py):
# seconds per step, tokens/s, utilisation of the GPU's int8 peak, peak GPU
# memory. Goals (issue 17): lacos at least 1.5x PyTorch bf16 per step, at
# most 16 GiB of GPU memory. Without a usable GPU it prints why and exits 0.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/gpu_lib.sh"
gpu_or_skip bench_gpu
SHAPE=${SHAPE:-bloom-7b1}; P=${P:-8}; T=${T:-128}; STEPS=${STEPS:-5}; CKPT=${CKPT:-on}
B=$((2 * P))
ids="$BENCH_DIR/gpu_ids_${B}x${T}.npy"; mask="$BENCH_DIR/gpu_mask_${B}x${T}.npy"
token_batch "$B" "$T" 8 "$ids" "$mask"
dir=$(random_model "$SHAPE")
results="$BENCH_DIR/gpu_train.jsonl"
"$LACOS" run tests/bench/train_step_gpu.lua "$dir" "$P" "$T" "$STEPS" "$ids" "$mask" "$CKPT" > "$results" ||
  echo '{"impl": "lacos", "error": "tests/bench/train_step_gpu.lua failed"}' > "$results"
for engine in bf16 bnb8; do
  err="$BENCH_DIR/gpu_torch_$engine.err"
  "$VENV_PY" tests/bench/train_step_gpu_torch.py "$dir" "$P" "$STEPS" "$ids" "$mask" "$CKPT" --engine "$engine" \
    2>"$err" | tail -1 >> "$results" ||
    echo '{"impl": "pytorch '"$engine"'", "engine": "'"$engine"'", "error": "the PyTorch script failed; see '"$err"'"}' >> "$results"
done
cat "$results"
"$VENV_PY" tests/bench/gpu_report.py train results/bench/gpu.md "$(bench_date)" "$dir" "$SHAPE" "$P" "$T" "$CKPT" "$results"
