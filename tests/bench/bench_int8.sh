#!/usr/bin/env bash
# lacos' int8 products next to oneDNN's matmul primitive by itself, at the
# linear shapes of bloom-560m and bloom-1b7 with M = 16 x 64 rows
# (tests/bench/int8_products.c): the primitive's throughput on pre-packed
# weights is the peak lacos' whole products (quantise, multiply, dequantise)
# are measured against, forward and input gradient.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
THREADS=${THREADS:-$(nproc)}
M=${M:-1024}; REPS=${REPS:-7}
OUT=results/bench/int8.md
BIN="$BUILD/tests/bench_int8_products"   # made by make bench
if [ ! -f "$OUT" ]; then
  cat > "$OUT" <<'HDR'
# int8 products: lacos vs oneDNN's matmul primitive

`make bench` (tests/bench/bench_int8.sh, tests/bench/int8_products.c): each linear of a BLOOM block at M rows.
"primitive" is oneDNN's matmul primitive by itself (u8 activations, s8 weights reordered once into the layout it
picks, s32 products, nothing else): the peak for that shape on this machine. "forward" is lacos' whole
`linear_forward` on its packed int8 linear (quantise the f32 rows, the product, dequantise, bias); "backward" its
`linear_backward_input` with int8 products (scale and quantise the gradient rows, rebuild the transposed tiles,
the product, dequantise into dx). GOP/s of the product's 2·M·K·N operations, medians of REPS runs timed in
turns, so the overheads count against lacos; each as "wall / CPU": from the wall clock, and from the process's
CPU time divided by the thread count (the machine is shared: the wall clock also counts time other processes
held the cores; with one thread the CPU figure is the work itself, with more it also counts threads waiting at
the ends of parallel regions, which descheduling lengthens). "of peak" = lacos / primitive, wall and CPU.
The load column is the 1-minute load average before the shape's run.

| date | CPU | threads | model | linear | M x K x N | primitive GOP/s | forward GOP/s | forward of peak | backward GOP/s | backward of peak | load |
|---|---|---|---|---|---|---|---|---|---|---|---|
HDR
fi
cpu="$(cpu_model); $(int8_isa)"
for shape in bloom-560m:1024 bloom-1b7:2048; do
  name=${shape%%:*}; C=${shape##*:}
  load=$(cut -d' ' -f1 /proc/loadavg)
  LACOS_THREADS=$THREADS "$BIN" "$C" "$M" "$REPS" | while read -r j; do
    echo "$j"
    line=$("$VENV_PY" -c "
import json, sys
d = json.loads(sys.argv[1])
p, pc = d['peak_gops'], d['peak_gops_cpu']
f, fc, b, bc = d['forward_gops'], d['forward_gops_cpu'], d['backward_gops'], d['backward_gops_cpu']
print('| %s | %s | %d | %s | %s | %dx%dx%d | %.0f / %.0f | %.0f / %.0f | %.0f%% / %.0f%% | %.0f / %.0f | %.0f%% / %.0f%% | %s |' % (
      sys.argv[2], sys.argv[3], d['threads'], sys.argv[4], d['linear'], d['M'], d['K'], d['N'], p, pc, f, fc,
      100 * f / p, 100 * fc / pc, b, bc, 100 * b / p, 100 * bc / pc, sys.argv[5]))" "$j" "$(bench_date)" "$cpu" "$name" "$load")
    echo "$line" >> "$OUT"
  done
done
