#!/usr/bin/env bash
# Two builds of lacos side by side in process CPU time: an encode and one
# training step (tests/bench/cpu_time.lua) on the same checkpoint, the two
# executables taking turns (A B A B ...), so that the neighbours' load falls
# on both alike. For a change that must not slow the engine down, measured on
# a shared machine where wall time is noise.
# usage: tests/bench/bench_cpu_ab.sh LACOS_A LACOS_B MODEL_DIR [B T REPS ROUNDS]
#   LACOS_A, LACOS_B: the two executables (each finds its own lua/ and engine/)
# Prints one line per run and the medians over the rounds, per build.
set -euo pipefail
A=$1 Bexe=$2 MODEL=$3 B=${4:-8} T=${5:-64} REPS=${6:-3} ROUNDS=${7:-3}
SCRIPT=$(cd "$(dirname "$0")" && pwd)/cpu_time.lua
export LACOS_THREADS=${LACOS_THREADS:-1}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for r in $(seq 1 "$ROUNDS"); do
  for side in A B; do
    exe=$A; [ "$side" = B ] && exe=$Bexe
    line=$("$exe" run "$SCRIPT" "$MODEL" "$B" "$T" "$REPS")
    echo "$side round $r: $line"
    echo "$side $line" >> "$out"
  done
done
python3 - "$out" <<'PY'
import json, sys, statistics
rows = {}
for l in open(sys.argv[1]):
    side, js = l.split(" ", 1)
    rows.setdefault(side, []).append(json.loads(js))
for side in sorted(rows):
    r = rows[side]
    med = {k: statistics.median(x[k] for x in r) for k in ("encode_cpu_s", "encode_wall_s", "step_cpu_s", "step_wall_s")}
    print("%s median of %d rounds: encode %.3f s CPU (%.3f s wall), step %.3f s CPU (%.3f s wall)" % (
        side, len(r), med["encode_cpu_s"], med["encode_wall_s"], med["step_cpu_s"], med["step_wall_s"]))
PY
