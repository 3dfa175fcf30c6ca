#!/usr/bin/env bash
# Data-parallel training on the CPU: what the ranks exchange and what it
# costs. Appends to results/bench/dist.md:
#   - the transport alone: an all-reduce of bloom-7b1's LoRA gradient (r=8 on
#     query_key_value: 3,932,160 floats, 15.7 MB) and an all-gather of
#     embedding rows, between 2 ranks of this machine (shared memory);
#   - lacos train steps on a random bloom-560m (int8, LoRA r=8 on
#     query_key_value, MNRL): one process with every core, and 2 ranks with
#     one core each, same global batch: seconds per step, bytes moved per
#     step, seconds inside collectives and their share of the step.
# Needs mpirun and liblacos_mpi.so (make with libopenmpi-dev). No reference
# implementation runs beside it: the numbers are lacos' own.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
source "$ROOT/tests/bench/lib.sh"
LACOS=${LACOS:-$ROOT/build/lacos}
LIBDIR=$(dirname "$("$LACOS" -e 'io.write(LACOS_LIB)')")
if [ ! -f "$LIBDIR/liblacos_mpi.so" ] || ! command -v mpirun >/dev/null; then
  echo "bench_dist: needs mpirun and a lacos built with MPI (liblacos_mpi.so)"; exit 0
fi
MPI=(mpirun --allow-run-as-root --oversubscribe --mca btl_tcp_if_include lo)
TOK=$ROOT/datasets/tokenizers/bloomlike-32k.json
SHAPE=${SHAPE:-bloom-560m} PAIRS=${PAIRS:-8} TOKENS=${TOKENS:-32} STEPS=${STEPS:-4}
OUTF=$ROOT/results/bench/dist.md
cores=$(nproc)

net=$(LACOS_THREADS=1 "${MPI[@]}" -np 2 "$LACOS" run "$ROOT/tests/bench/dist_allreduce.lua" 3932160 128 4096 10 | tail -1)
echo "$net"
one=$(LACOS_THREADS=$cores "$LACOS" run "$ROOT/tests/bench/dist_step.lua" "$SHAPE" "$PAIRS" "$TOKENS" "$STEPS" cpu "$TOK" | tail -1)
echo "$one"
two=$(LACOS_THREADS=$((cores / 2 > 0 ? cores / 2 : 1)) "${MPI[@]}" -np 2 "$LACOS" run "$ROOT/tests/bench/dist_step.lua" \
      "$SHAPE" "$PAIRS" "$TOKENS" "$STEPS" cpu "$TOK" | tail -1)
echo "$two"

if [ ! -f "$OUTF" ]; then
  cat > "$OUTF" <<'EOF'
# Data-parallel training on the CPU: bytes moved and time spent communicating

`BENCH=dist make bench` (tests/bench/bench_dist.sh). The transport rows time lacos' collectives alone
(tests/bench/dist_allreduce.lua: the median of 10 after a warm-up, a barrier before each): an all-reduce (sum,
in place) of bloom-7b1's LoRA gradient (r=8 on query_key_value: 30 × (8·4096 + 12288·8) = 3,932,160 floats, 15.7
MB) and an all-gather of 128 embedding rows of 4096 floats from each rank. Bandwidth is algorithm bandwidth: the
bytes of the buffer divided by the time. The training rows run `lacos.train` (tests/bench/dist_step.lua) on a
random-weight model of the named shape in int8, LoRA r=8 on query_key_value, MNRL, 8-bit Adam, the same global
batch of P pairs of T tokens; one process with every core, then two ranks with half the cores each. "bytes/step"
is each rank's payload: its LoRA gradient into the all-reduce, the gathered embeddings of the whole batch, a
few flags; "in collectives" counts the time from entering a collective to leaving it, so a rank that waits for
a slower one counts the wait as communication.

## Transport

| date | CPU | ranks | backend | all-reduce 15.7 MB | GB/s | all-gather 2×128×4096 floats | GB/s |
|---|---|---|---|---|---|---|---|
EOF
fi
row_net=$("$LACOS" -e "
local j = require('lacos.json').decode([[$net]])
io.write(('| %s | %s | %d | %s | %.2f ms | %.2f | %.2f ms | %.2f |'):format('$(bench_date)', '$(cpu_model)', j.ranks, j.backend,
  1e3 * j.allreduce_seconds, j.allreduce_gb_per_s, 1e3 * j.allgather_seconds, j.allgather_gb_per_s))")
row_train=$("$LACOS" -e "
local json = require('lacos.json')
local a, b = json.decode([[$one]]), json.decode([[$two]])
local function row(j)
  return ('| %s | %s | %s | %d | %dx%d | %d | %.3f | %s | %s | %.4f | %.1f%% | %s |'):format('$(bench_date)', '$(cpu_model)', j.shape,
    j.ranks, j.global_pairs, j.tokens, j.threads, j.seconds_per_step, require('lacos.util').bytes(j.comm_bytes_per_step),
    require('lacos.util').bytes(j.lora_gradient_bytes), j.comm_seconds_per_step, 100 * j.comm_share, j.backend)
end
io.write(row(a), '\n', row(b))")
python3 - "$OUTF" "$row_net" "$row_train" <<'EOF'
import sys
path, net, train = sys.argv[1], sys.argv[2], sys.argv[3]
text = open(path).read()
head = "| date | CPU | model | ranks | P x T | threads/rank | s/step | bytes/step | LoRA gradient | s in collectives/step | share | backend |"
if head not in text:
    text = text.rstrip("\n") + "\n"
    parts = text.split("\n## Training\n")
    text = parts[0].rstrip("\n") + "\n" + net + "\n\n## Training\n\n" + head + "\n|---|---|---|---|---|---|---|---|---|---|---|---|\n" + train + "\n"
else:
    a, b = text.split("\n## Training\n")
    a = a.rstrip("\n") + "\n" + net + "\n"
    text = a + "\n## Training\n" + b.rstrip("\n") + "\n" + train + "\n"
open(path, "w").write(text)
EOF
echo "appended to $OUTF"
