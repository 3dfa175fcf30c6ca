#!/usr/bin/env bash
# Training-step throughput and peak memory: lacos (int8 base, LoRA, 8-bit
# Adam, MNRL) next to PyTorch + peft (f32 base, same LoRA and loss,
# bitsandbytes' 8-bit Adam where it runs on the CPU, else AdamW) on the same
# random-weight checkpoints of bloom-560m and bloom-1b7 shape, the same
# batch (8 pairs x 64 tokens), the same threads, in the same run: ROUNDS
# rounds of one lacos process then one PyTorch process (each a warm-up and
# STEPS timed steps), the median over all of an engine's timed steps.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
THREADS=${THREADS:-$(nproc)}
P=${P:-8}; T=${T:-64}; STEPS=${STEPS:-3}; ROUNDS=${ROUNDS:-2}
OUT=results/bench/train.md
B=$((2 * P))
ids="$BENCH_DIR/train_ids_${B}x${T}.npy"; mask="$BENCH_DIR/train_mask_${B}x${T}.npy"
"$LACOS" -e "local T = require('lacos').tensor
T.rand({$B, $T}, {seed = 8, lo = 4, hi = 30000}):to('i32'):save_npy('$ids')
T.ones({$B, $T}, 'i32'):save_npy('$mask')"
if [ ! -f "$OUT" ]; then
  cat > "$OUT" <<'HDR'
# Training-step throughput: lacos vs PyTorch + peft

`make bench` (tests/bench/bench_train.sh): one optimisation step = forward and backward of 2·P sequences
(P anchor/positive pairs) of T tokens, MNRL (scale 20) over in-batch negatives, LoRA r=8 alpha=16 on
query_key_value, gradient clipping at 1.0 and an optimizer step. lacos: int8 base weights, 8-bit Adam,
int8 products for input gradients. PyTorch: f32 base weights, peft LoRA, bitsandbytes' 8-bit Adam on the CPU
when it runs, else torch AdamW (named in the table). Median of the timed steps after one warm-up; same
checkpoint, batch and thread count, same run. From 2026-12-06 the s/step cells also give the median process
CPU time of a step (all threads; the machine is shared, the wall clock also counts other processes' time), and
the last column the 1-minute load average before the shape's run.

| date | CPU | threads | model | P pairs x T | lacos s/step | PyTorch s/step | speed-up | lacos peak RSS | PyTorch peak RSS | lacos optimizer state | PyTorch optimizer | load |
|---|---|---|---|---|---|---|---|---|---|---|---|---|
HDR
fi
for shape in ${SHAPES:-bloom-560m bloom-1b7}; do
  dir=$(random_model "$shape")
  load=$(cut -d' ' -f1 /proc/loadavg)
  export LACOS_THREADS=$THREADS
  ls=(); ps=()
  for r in $(seq "$ROUNDS"); do
    ls+=("$("$LACOS" run tests/bench/train_step.lua "$dir" "$P" "$T" "$STEPS" "$ids" "$mask" off)")
    ps+=("$("$VENV_PY" tests/bench/train_step_torch.py "$dir" "$P" "$THREADS" "$STEPS" "$ids" "$mask" 2>/dev/null | tail -1)")
  done
  # one JSON per engine: the last run's fields, the median over every round's steps, the largest peak RSS
  merge() { "$VENV_PY" -c "
import json, statistics, sys
runs = [json.loads(a) for a in sys.argv[1:]]
out = dict(runs[-1])
out['seconds_per_step'] = statistics.median([t for r in runs for t in r['step_seconds']])
out['cpu_seconds_per_step'] = statistics.median([t for r in runs for t in r.get('step_cpu_seconds', [float('nan')])])
out['peak_rss_bytes'] = max(r['peak_rss_bytes'] for r in runs)
print(json.dumps(out))" "$@"; }
  l=$(merge "${ls[@]}"); pt=$(merge "${ps[@]}")
  sl=$(json_field "$l" seconds_per_step); sp=$(json_field "$pt" seconds_per_step)
  cl=$(json_field "$l" cpu_seconds_per_step); cp=$(json_field "$pt" cpu_seconds_per_step)
  line=$(printf '| %s | %s | %s | %s | %sx%s | %.2f (CPU %.2f s) | %.2f (CPU %.2f s) | %.2fx | %.2f GiB | %.2f GiB | %.1f KiB | %s | %s |' "$(bench_date)" "$(cpu_model)" \
    "$THREADS" "$shape" "$P" "$T" "$sl" "$cl" "$sp" "$cp" "$(echo "$sp / $sl" | bc -l)" \
    "$(echo "$(json_field "$l" peak_rss_bytes) / 1073741824" | bc -l)" "$(echo "$(json_field "$pt" peak_rss_bytes) / 1073741824" | bc -l)" \
    "$(echo "$(json_field "$l" optimizer_state_bytes) / 1024" | bc -l)" "$(json_field "$pt" optimizer)" "$load")
  echo "$line"
  echo "$line" >> "$OUT"
done
