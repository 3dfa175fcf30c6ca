#!/usr/bin/env bash
# make bench: every tests/bench/bench_*.sh, each measuring lacos next to the
# reference implementation in the same run and appending its results (date,
# CPU, numbers) to results/bench/<name>.md. BENCH=pattern selects some.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
export BUILD=${BUILD:-build}
export LACOS="$ROOT/$BUILD/lacos"
export VENV_PY=${VENV_PY:-$ROOT/.venv-ref/bin/python}
export BENCH_DIR=${BENCH_DIR:-$ROOT/$BUILD/bench}   # models, exports, results of the runs
export LLAMACPP_SRC=${LLAMACPP_SRC:-$ROOT/$BUILD/llamacpp/src}   # tests/bench/build_llamacpp.sh
mkdir -p "$BENCH_DIR" results/bench
for b in tests/bench/bench_*.sh; do
  [ -n "${BENCH:-}" ] && [[ "$b" != *"$BENCH"* ]] && continue
  echo "== $b"
  bash "$b"
done
