#!/usr/bin/env bash
# Encode throughput (tokens/s) of lacos int8 next to the strongest peers on
# the same random-weight checkpoints of bloom-560m and bloom-1b7 shape: ONNX
# Runtime dynamic int8 (tests/bench/export_onnx.py), PyTorch quantize_dynamic,
# llama.cpp Q8_0 (tests/bench/build_llamacpp.sh, convert_gguf.py), PyTorch
# f32 (whose embeddings are the reference for every engine's cosine) and
# lacos f32; same batch of token ids (16 x 64), same threads, same run,
# int8 engines timed in turns (tests/bench/encode_compare.py).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
THREADS=${THREADS:-$(nproc)}
B=${B:-16}; T=${T:-64}; REPS=${REPS:-5}
OUT=results/bench/encode.md
ids="$BENCH_DIR/ids_${B}x${T}.npy"; mask="$BENCH_DIR/mask_${B}x${T}.npy"
"$LACOS" -e "local T = require('lacos').tensor
T.rand({$B, $T}, {seed = 7, lo = 4, hi = 30000}):to('i32'):save_npy('$ids')
T.ones({$B, $T}, 'i32'):save_npy('$mask')"
cpu="$(cpu_model)"; isa="$(int8_isa)"
echo "CPU: $cpu; lacos int8 products: $isa"
# one core's int8 multiply-accumulate peak (tests/bench/int8_peak.c): the ceiling row
peak=$("$BUILD/tests/bench_int8_peak")
echo "int8 peak of one core: $peak"
peak_gops=$(json_field "$peak" gops)
for shape in ${SHAPES:-bloom-560m bloom-1b7}; do
  dir=$(random_model "$shape")
  onnx=$(onnx_model "$shape" "$dir")
  gguf=$(gguf_model "$shape" "$dir")
  load=$(cut -d' ' -f1 /proc/loadavg)
  results="$BENCH_DIR/encode-$shape.jsonl"
  "$VENV_PY" tests/bench/encode_compare.py "$LACOS" "$dir" "$onnx" "$gguf" "$THREADS" "$REPS" "$ids" "$mask" \
    "$BENCH_DIR/encode-$shape" | tee "$results"
  # one row per engine, the strongest peer first (tests/bench/encode_table.py)
  # a block's int8 products per token: 2 operations per weight of qkv (3C²), dense (C²), fc1 and fc2 (4C² each)
  ops=$("$VENV_PY" -c "import json,sys; c=json.load(open(sys.argv[1])); print(2*12*c['hidden_size']**2*c['n_layer'])" \
    "$dir/config.json")
  "$VENV_PY" tests/bench/encode_table.py "$OUT" "$(bench_date)" "$cpu; $isa" "$THREADS" "$shape" "${B}x${T}" "$load" \
    "$results" "$peak_gops" "$ops"
done
