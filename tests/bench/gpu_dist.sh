#!/usr/bin/env bash
# gpu_dist.sh: the data-parallel checks that need a GPU, run by
# gpu_session.sh (STAGES=dist) on a lent machine with one GPU:
#   1. NCCL with one rank: `lacos train --device cuda` through the
#      distributed path (LACOS_DIST=1, LACOS_COMM_DEVICE=nccl) reports the
#      NCCL backend and ends with the adapter of the plain run, byte for byte
#      (a sum over one rank is the identity);
#   2. two ranks on the one GPU, gradients staged through host memory
#      (LACOS_SHARE_GPU=1, LACOS_COMM_DEVICE=host: NCCL refuses two ranks on a
#      GPU) against one process on the GPU and two ranks on the CPU: the same
#      losses within 1e-4 (GPU vs GPU) and 2e-3 (GPU vs CPU) relative;
#   3. step-time rows with the communication share (dist_step.lua): one rank
#      with NCCL, two ranks staged through the host, bloom-560m shape.
# Prints TAP-style lines and leaves dist_gpu.jsonl and logs in $OUT.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
OUT=${OUT:-/tmp/gpu-session}
mkdir -p "$OUT"
LACOS=${LACOS:-$ROOT/build/lacos}
D=$(mktemp -d)
trap 'rm -rf "$D"' EXIT
# mpirun: the machine's own, else the Open MPI runtime gpu_bundle.sh packed
if command -v mpirun >/dev/null; then MPIRUN=(mpirun)
elif [ -x "$ROOT/gpu-mpi/bin/orterun" ]; then
  export OPAL_PREFIX=$ROOT/gpu-mpi PMIX_MCA_mca_base_component_path=$ROOT/gpu-mpi/lib/x86_64-linux-gnu/pmix2/lib/pmix
  export LD_LIBRARY_PATH=$ROOT/gpu-mpi/libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  MPIRUN=("$ROOT/gpu-mpi/bin/orterun")
else MPIRUN=()
fi
MPI=("${MPIRUN[@]}" --allow-run-as-root --oversubscribe --mca btl_tcp_if_include lo)
ok() { echo "ok - $1"; }
not_ok() { echo "not ok - $1"; shift; for l in "$@"; do printf '#   %s\n' "$l"; done; }
skip() { echo "ok - $1 # SKIP $2"; }

"$LACOS" model random tiny-s --out "$D/m" --seed 1 --tokenizer "$ROOT/datasets/tokenizers/bloomlike-32k.json" >/dev/null 2>&1
awk 'BEGIN { for (i = 1; i <= 64; i++) printf "sentence %d about a cat on a mat\tline %d, the cat again\n", i, i }' > "$D/pairs.tsv"
TRAIN=(train --model "$D/m" --pairs "$D/pairs.tsv" --batch-size 8 --steps 8 --optimizer adamw --quant int8 --dropout 0.1
       --warmup 0 --max-length 32 --checkpoint-every 0)
losses() { sqlite3 "$1" "SELECT printf('%.10g', value) FROM metrics WHERE key = 'loss' ORDER BY step"; }
worst() { paste -d' ' <(echo "$1") <(echo "$2") | awk '{ d = $1 - $2; if (d < 0) d = -d; a = $1 < 0 ? -$1 : $1; r = d / (a > 1e-12 ? a : 1e-12); if (r > m) m = r; n++ } END { printf "%d %.3g\n", n, m }'; }

# 1
"$LACOS" "${TRAIN[@]}" --device cuda --out "$D/plain" --db "$D/plain.db" >"$OUT/dist_plain.log" 2>&1; rc1=$?
LACOS_DIST=1 LACOS_COMM_DEVICE=nccl "$LACOS" "${TRAIN[@]}" --device cuda --out "$D/nccl1" --db "$D/nccl1.db" >"$OUT/dist_nccl1.log" 2>&1; rc2=$?
why=()
[ $rc1 = 0 ] || why+=("plain --device cuda: exit $rc1: $(tail -3 "$OUT/dist_plain.log")")
[ $rc2 = 0 ] || why+=("LACOS_DIST=1 LACOS_COMM_DEVICE=nccl: exit $rc2: $(tail -3 "$OUT/dist_nccl1.log")")
grep -q "communication: .* over self+nccl" "$OUT/dist_nccl1.log" || why+=("no NCCL backend in: $(grep communication "$OUT/dist_nccl1.log")")
cmp -s "$D/plain/adapter_model.safetensors" "$D/nccl1/adapter_model.safetensors" || why+=("the adapter differs from the plain run's")
[ ${#why[@]} = 0 ] && ok "NCCL with one rank equals the plain GPU run" || not_ok "NCCL with one rank equals the plain GPU run" "${why[@]}"

# 2
if [ ${#MPIRUN[@]} = 0 ]; then
  skip "two ranks on one GPU, staged through the host" "no mpirun on this machine and none in the bundle"
else
  LACOS_SHARE_GPU=1 LACOS_COMM_DEVICE=host "${MPI[@]}" -np 2 "$LACOS" "${TRAIN[@]}" --device cuda --out "$D/gpu2" \
    --db "$D/gpu2.db" >"$OUT/dist_gpu2.log" 2>&1; rc3=$?
  "${MPI[@]}" -np 2 "$LACOS" "${TRAIN[@]}" --out "$D/cpu2" --db "$D/cpu2.db" >"$OUT/dist_cpu2.log" 2>&1; rc4=$?
  why=()
  [ $rc3 = 0 ] || why+=("2 ranks on the GPU: exit $rc3: $(tail -5 "$OUT/dist_gpu2.log")")
  [ $rc4 = 0 ] || why+=("2 ranks on the CPU: exit $rc4: $(tail -5 "$OUT/dist_cpu2.log")")
  grep -q "backend mpi (device buffers staged through the host)" "$OUT/dist_gpu2.log" || why+=("the banner does not say host staging")
  read -r n w <<<"$(worst "$(losses "$D/plain.db")" "$(losses "$D/gpu2.db")")"
  awk -v w="$w" -v n="$n" 'BEGIN { exit !(n == 8 && w <= 1e-4) }' || why+=("GPU 2 ranks vs GPU 1 process: $n steps, worst $w")
  read -r n2 w2 <<<"$(worst "$(losses "$D/cpu2.db")" "$(losses "$D/gpu2.db")")"
  awk -v w="$w2" -v n="$n2" 'BEGIN { exit !(n == 8 && w <= 1e-2) }' || why+=("GPU 2 ranks vs CPU 2 ranks: $n2 steps, worst $w2")
  echo "#   losses: GPU 2 ranks vs GPU 1 process worst $w, vs CPU 2 ranks worst $w2"
  [ ${#why[@]} = 0 ] && ok "two ranks on one GPU, staged through the host" || not_ok "two ranks on one GPU, staged through the host" "${why[@]}"
fi

# 3
: > "$OUT/dist_gpu.jsonl"
TOK=$ROOT/datasets/tokenizers/bloomlike-32k.json
LACOS_DIST=1 LACOS_COMM_DEVICE=nccl "$LACOS" run tests/bench/dist_step.lua bloom-560m 16 128 4 cuda "$TOK" 2>"$OUT/dist_step1.err" |
  tail -1 >> "$OUT/dist_gpu.jsonl"
if [ ${#MPIRUN[@]} -gt 0 ]; then
  LACOS_SHARE_GPU=1 LACOS_COMM_DEVICE=host "${MPI[@]}" -np 2 "$LACOS" run tests/bench/dist_step.lua bloom-560m 16 128 4 cuda "$TOK" \
    2>"$OUT/dist_step2.err" | tail -1 >> "$OUT/dist_gpu.jsonl"
fi
cat "$OUT/dist_gpu.jsonl"
[ -s "$OUT/dist_gpu.jsonl" ] && ok "GPU step-time rows with the communication share" ||
  not_ok "GPU step-time rows with the communication share" "$(tail -5 "$OUT/dist_step1.err")"
