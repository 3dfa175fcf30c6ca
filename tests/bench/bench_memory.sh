#!/usr/bin/env bash
# Peak memory of a full training step on a bloom-7b1-shaped random int8 model
# (8 pairs x 64 tokens, checkpointing on). Goal: <= 10 GiB resident.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
OUT=results/bench/memory.md
if [ ! -f "$OUT" ]; then
  cat > "$OUT" <<'HDR'
# Training memory on the CPU

`make bench` (tests/bench/bench_memory.sh, tests/bench/train_memory.lua): a random-weight model with the exact
shape of the released checkpoint, generated straight into int8 (f16 embedding table), one full training step:
LoRA r=8 on query_key_value, 8 pairs x 64 tokens, MNRL, 8-bit Adam, activation checkpointing on.
Peak resident set size of the process (getrusage), next to the engine's own count of its allocations at their
peak and the memory planner's prediction (`lacos.train.plan`: weights, LoRA, optimizer state, activations and
scratch; rows before 2026-12-04's second one counted weights and activations only).

| date | CPU | model | pairs x T | peak RSS | engine peak | predicted | optimizer state | step time | lora_B non-zero |
|---|---|---|---|---|---|---|---|---|---|
HDR
fi
for shape in ${SHAPES:-bloom-7b1}; do
  r=$("$LACOS" run tests/bench/train_memory.lua "$shape" 8 64)
  line=$(printf '| %s | %s | %s | 8x64 | %.2f GiB | %.2f GiB | %.2f GiB | %.1f KiB | %.0f s | %s |' "$(bench_date)" "$(cpu_model)" "$shape" \
    "$(echo "$(json_field "$r" peak_rss_bytes) / 1073741824" | bc -l)" "$(echo "$(json_field "$r" engine_peak_bytes) / 1073741824" | bc -l)" \
    "$(echo "$(json_field "$r" predicted_bytes) / 1073741824" | bc -l)" "$(echo "$(json_field "$r" optimizer_state_bytes) / 1024" | bc -l)" \
    "$(json_field "$r" step_seconds)" "$(json_field "$r" lora_B_nonzero)")
  echo "$line"
  echo "$line" >> "$OUT"
done
