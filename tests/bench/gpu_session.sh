#!/usr/bin/env bash
# gpu_session.sh: what a session with a lent GPU machine runs there, in one
# call (the machine starts bare and its time is short). Here first:
#   make && bash tests/bench/gpu_bundle.sh     # build/lacos-gpu.tar.xz
#   bitsandbytes unpacked into build/gpu-site  (see README-gpu.md)
# then on the device, carry ["build/lacos-gpu.tar.xz", "build/gpu-site"]:
#   bash tests/bench/gpu_session.sh
# It unpacks the build, writes the bloom-7b1-shaped checkpoint in the
# background while the CUDA tests run (op harness, parity, planner, CLI),
# then the GPU benchmarks: the training step and encoding, lacos next to
# PyTorch bf16 + peft and PyTorch + peft + bitsandbytes (bench_gpu.sh,
# bench_gpu_encode.sh). Logs, the engines' JSON lines and results/bench/
# gpu.md, gpu_encode.md go to $OUT. STAGES=tests or STAGES=bench
# runs one part; TEST_SECONDS and BENCH_SECONDS bound each. STAGES=dist runs
# the data-parallel checks (tests/bench/gpu_dist.sh: NCCL with one rank, two
# ranks on the GPU staged through the host, step-time rows with the
# communication share; DIST_SECONDS bounds it).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
OUT=${OUT:-/tmp/gpu-session}
mkdir -p "$OUT"
STAGES=${STAGES:-tests dist bench}
t0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - t0 ))s] $*"; }

tar xJf build/lacos-gpu.tar.xz || { echo "gpu_session: cannot unpack build/lacos-gpu.tar.xz"; exit 1; }
# lacos' libraries (Debian's, glibc 2.36) for lacos alone: PyTorch keeps its own libstdc++
export LD_LIBRARY_PATH=$ROOT/gpu-libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
# Debian's Lua C modules (lua-cjson) that lacos loads through package.cpath
export LUA_CPATH="$ROOT/gpu-libs/lua/?.so;$ROOT/build/gpu-site/?.so;;"
py=$OUT/python3
printf '#!/bin/sh\nunset LD_LIBRARY_PATH\n%s\nexec python3 "$@"\n' \
  "$([ -d "$ROOT/build/gpu-site" ] && echo "export PYTHONPATH=$ROOT/build/gpu-site")" > "$py"
chmod +x "$py"
{ nvidia-smi; nvidia-smi -q -d CLOCK | head -30; nproc; free -g; df -h .; } > "$OUT/machine.txt" 2>&1
stamp "machine: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1)"
"$py" -c 'import torch, peft, transformers; print("torch", torch.__version__, "peft", peft.__version__, "transformers", transformers.__version__)
try:
    import bitsandbytes as b; print("bitsandbytes", b.__version__)
except Exception as e: print("bitsandbytes missing:", e)' 2>&1 | tail -3

export BENCH_DIR=$ROOT/build/bench
mkdir -p "$BENCH_DIR/models"
ckpt_pid=
if [[ " $STAGES " == *" bench "* ]] && [ ! -f "$BENCH_DIR/models/${SHAPE:-bloom-7b1}/config.json" ]; then
  build/lacos model random "${SHAPE:-bloom-7b1}" --out "$BENCH_DIR/models/${SHAPE:-bloom-7b1}" --seed 1 --dtype f16 \
    > "$OUT/checkpoint.log" 2>&1 &
  ckpt_pid=$!
fi

if [[ " $STAGES " == *" tests "* ]]; then
  stamp "CUDA tests"
  BUILD=build T=cuda timeout "${TEST_SECONDS:-240}" bash tests/run.sh 2>&1 | tail -15
  cp build/test.log "$OUT/test.log"
  grep -E '^(not ok|#)' build/test.log | head -80
fi

if [[ " $STAGES " == *" dist "* ]]; then
  stamp "data-parallel checks"
  OUT=$OUT timeout "${DIST_SECONDS:-240}" bash tests/bench/gpu_dist.sh 2>&1 | tee "$OUT/dist.txt" | grep -E '^(ok|not ok|#)|^\{'
fi

if [[ " $STAGES " == *" ops "* ]] || [[ " $STAGES " == *" bench "* ]]; then
  stamp "GPU op timings"
  timeout 120 build/tests/bench_cuda_ops 2>&1 | tee "$OUT/cuda_ops.txt"
fi

if [[ " $STAGES " == *" bench "* ]]; then
  if [ -n "$ckpt_pid" ]; then stamp "waiting for the checkpoint"; wait "$ckpt_pid"; tail -2 "$OUT/checkpoint.log"; fi
  stamp "GPU benchmarks: training step, then encoding"
  BUILD=build BENCH=gpu VENV_PY=$py timeout "${BENCH_SECONDS:-360}" bash tests/bench/run.sh 2>&1 | tee "$OUT/bench.txt" | tail -40
  for f in gpu_torch_bf16.err gpu_torch_bnb8.err gpu_encode.err gpu_train.jsonl gpu_encode.jsonl; do
    cp "$BENCH_DIR/$f" "$OUT/" 2>/dev/null
  done
  for f in gpu_torch_bf16.err gpu_torch_bnb8.err gpu_encode.err; do
    [ -s "$OUT/$f" ] && { echo "--- $f (last lines)"; grep -v 'Loading weights\|it/s\]' "$OUT/$f" | tail -8; }
  done
  cp results/bench/gpu.md results/bench/gpu_encode.md "$OUT/" 2>/dev/null
fi
stamp "done"
