# Helpers shared by the GPU benchmarks (bench_gpu.sh, bench_gpu_encode.sh),
# sourced after lib.sh.
# gpu_or_skip NAME: without a GPU lacos can use, print why and exit 0 (a
# machine without one skips these benchmarks; it does not fail them).
gpu_or_skip() {
  local why
  if ! why=$("$LACOS" -e 'local ok, why = require("lacos").cuda.available(); if not ok then io.write(why); os.exit(1) end'); then
    echo "$1: skipped: no GPU: $why"
    exit 0
  fi
}
# token_batch B T SEED IDS MASK: B sequences of T random token ids (no padding)
token_batch() {
  "$LACOS" -e "local T = require('lacos').tensor
T.rand({$1, $2}, {seed = $3, lo = 4, hi = 30000}):to('i32'):save_npy('$4')
T.ones({$1, $2}, 'i32'):save_npy('$5')"
}
