#!/usr/bin/env bash
# Encode throughput (tokens/s) of lacos int8 and f32 next to PyTorch +
# transformers f32 on the same random-weight checkpoints of bloom-560m and
# bloom-1b7 shape: same batch of token ids (16 x 64), same threads, same run.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
THREADS=${THREADS:-$(nproc)}
B=${B:-16}; T=${T:-64}; REPS=${REPS:-3}
OUT=results/bench/encode.md
ids="$BENCH_DIR/ids_${B}x${T}.npy"; mask="$BENCH_DIR/mask_${B}x${T}.npy"
"$LACOS" -e "local T = require('lacos').tensor
T.rand({$B, $T}, {seed = 7, lo = 4, hi = 30000}):to('i32'):save_npy('$ids')
T.ones({$B, $T}, 'i32'):save_npy('$mask')"
if [ ! -f "$OUT" ]; then
  cat > "$OUT" <<'HDR'
# Encode throughput: lacos vs PyTorch

`make bench` (tests/bench/bench_encode.sh): random-weight checkpoints with the exact shapes of the released
models, one batch of token ids (B sequences x T tokens, no padding), mean pooling, median of the timed runs
after one warm-up, all implementations in the same run on the same machine with the same thread count.

| date | CPU | threads | model | B x T | lacos int8 tok/s | lacos f32 tok/s | PyTorch f32 tok/s | int8 / PyTorch | peak RSS int8 / PyTorch |
|---|---|---|---|---|---|---|---|---|---|
HDR
fi
for shape in bloom-560m bloom-1b7; do
  dir=$(random_model "$shape")
  export LACOS_THREADS=$THREADS
  l8=$("$LACOS" run tests/bench/encode.lua "$dir" int8 "$B" "$T" "$REPS" "$ids" "$mask")
  l32=$("$LACOS" run tests/bench/encode.lua "$dir" f32 "$B" "$T" "$REPS" "$ids" "$mask")
  pt=$("$VENV_PY" tests/bench/encode_torch.py "$dir" "$THREADS" "$REPS" "$ids" "$mask" 2>/dev/null | tail -1)
  t8=$(json_field "$l8" tokens_per_s); t32=$(json_field "$l32" tokens_per_s); tp=$(json_field "$pt" tokens_per_s)
  r8=$(json_field "$l8" peak_rss_bytes); rp=$(json_field "$pt" peak_rss_bytes)
  line=$(printf '| %s | %s | %s | %s | %sx%s | %.0f | %.0f | %.0f | %.2fx | %.1f / %.1f GiB |' "$(bench_date)" "$(cpu_model)" \
    "$THREADS" "$shape" "$B" "$T" "$t8" "$t32" "$tp" "$(echo "$t8 / $tp" | bc -l)" \
    "$(echo "$r8 / 1073741824" | bc -l)" "$(echo "$rp / 1073741824" | bc -l)")
  echo "$line"
  echo "$line" >> "$OUT"
done
