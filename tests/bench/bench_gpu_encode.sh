#!/usr/bin/env bash
# GPU encoding (most of a sweep's evaluation): lacos int8 with the model on
# "cuda" next to PyTorch bf16 and PyTorch + bitsandbytes LLM.int8, with
# PyTorch f32 as the reference for every engine's embeddings
# (tests/bench/encode_gpu_compare.py), the same random-weight checkpoint of
# bloom-7b1 shape and the same batch. B=64 sequences x T=128 tokens (T as
# the training benchmark): 8,192 rows in every product, so each weight byte
# read takes part in 16k operations, far more than the memory can starve
# (an H100 at its int8 peak reads one byte per ~600), and tokens/s measures
# the engines' kernels rather than weight traffic or launches. An evaluation
# of short STS sentences in lacos' default batches of 32 is a smaller call
# per batch; this does not measure that regime.
# One row per engine in results/bench/gpu_encode.md (tests/bench/gpu_report.py).
# Goal (issue 17): lacos at least 2x PyTorch bf16. Without a usable GPU it
# prints why and exits 0.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/gpu_lib.sh"
gpu_or_skip bench_gpu_encode
SHAPE=${SHAPE:-bloom-7b1}; B=${B:-64}; T=${T:-128}; REPS=${REPS:-5}
ids="$BENCH_DIR/gpu_enc_ids_${B}x${T}.npy"; mask="$BENCH_DIR/gpu_enc_mask_${B}x${T}.npy"
token_batch "$B" "$T" 7 "$ids" "$mask"
dir=$(random_model "$SHAPE")
results="$BENCH_DIR/gpu_encode.jsonl"
# the Python wrapper of the GPU machine clears LD_LIBRARY_PATH for PyTorch; lacos, started by the driver, needs it
LACOS_LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-} "$VENV_PY" tests/bench/encode_gpu_compare.py "$LACOS" "$dir" "$REPS" \
  "$ids" "$mask" "$BENCH_DIR/gpu_encode" 2>"$BENCH_DIR/gpu_encode.err" | tee "$results"
"$VENV_PY" tests/bench/gpu_report.py encode results/bench/gpu_encode.md "$(bench_date)" "$dir" "$SHAPE" "$B" "$T" "$results"
