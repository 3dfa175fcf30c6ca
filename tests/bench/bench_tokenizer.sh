#!/usr/bin/env bash
# bench_tokenizer.sh: tokens/s of lacos' tokenizer and of the Hugging Face
# tokenizers library on the same sentences (all STSb + XNLI dev sentences, 15
# languages) with the same tokenizer.json, on one thread and on all threads.
# Prints one line per thread count and appends rows to results/bench/tokenizer.md.
#
#   bash tests/bench/bench_tokenizer.sh            (after make; VENV_PY for the Python side)
#   LACOS_BLOOM_TOKENIZER=.../tokenizer.json ...    benchmark BLOOM's real vocabulary instead
# Each side encodes the whole list 5 times in one process; the best pass
# counts (both libraries cache words, so later passes are the warm case); the
# first pass of lacos (cold cache) is printed too.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
BUILD=${BUILD:-build}
LACOS="$ROOT/$BUILD/lacos"
PY=${VENV_PY:-$ROOT/.venv-ref/bin/python}
DATA=${LACOS_TEST_DATA:-$(cd "$ROOT/.." && pwd)/shared/datasets}
TOK=${LACOS_BLOOM_TOKENIZER:-$ROOT/tests/fixtures/tokenizer/bloomlike-32k.json}
OUT_MD=$ROOT/results/bench/tokenizer.md

[ -x "$LACOS" ] || { echo "bench_tokenizer: build lacos first (make)"; exit 1; }
[ -d "$DATA/nli/xnli-dev" ] || { echo "bench_tokenizer: datasets not found at $DATA (set LACOS_TEST_DATA)"; exit 1; }
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
TEXT=$TMP/sentences.txt
for f in "$DATA"/sts/stsb/sts-{train,dev,test}.csv; do awk -F'\t' '{print $6; print $7}' "$f"; done > "$TEXT"
for f in "$DATA"/nli/xnli-dev/dev-*.tsv; do awk -F'\t' '{print $1; print $2}' "$f"; done >> "$TEXT"
N_SENT=$(wc -l < "$TEXT")

cat > "$TMP/ref.py" <<'EOF'
import sys, time
from tokenizers import Tokenizer
tok = Tokenizer.from_file(sys.argv[1])
lines = open(sys.argv[2], encoding="utf-8").read().split("\n")
if lines and lines[-1] == "":
    lines.pop()
best = None
for _ in range(5):
    t0 = time.perf_counter()
    encs = tok.encode_batch_fast(lines) if hasattr(tok, "encode_batch_fast") else tok.encode_batch(lines)
    dt = time.perf_counter() - t0
    best = dt if best is None or dt < best else best
print(sum(len(e.ids) for e in encs), best)
EOF

CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || echo unknown)
NPROC=$(nproc)
DATE=$(date -u +%Y-%m-%d)
TOKNAME=$(basename "$(dirname "$TOK")")/$(basename "$TOK")
mkdir -p "$(dirname "$OUT_MD")"
if [ ! -f "$OUT_MD" ]; then
  printf '# Tokenizer speed\n\n%s\n\n' "tests/bench/bench_tokenizer.sh: all STSb + XNLI dev sentences, best of 5 passes (warm word caches); lacos cold = its first pass." > "$OUT_MD"
  printf '| date | CPU | tokenizer | sentences | tokens | threads | lacos tokens/s | lacos cold tokens/s | tokenizers tokens/s | speed-up |\n' >> "$OUT_MD"
  printf '|---|---|---|---:|---:|---:|---:|---:|---:|---:|\n' >> "$OUT_MD"
fi

for THREADS in 1 "$NPROC"; do
  read -r _ TOKENS FIRST BEST _ < <(LACOS_THREADS=$THREADS "$LACOS" run tests/bench/bench_tokenizer.lua "$TOK" "$TEXT" 5)
  LACOS_RATE=$(awk -v n="$TOKENS" -v t="$BEST" 'BEGIN { printf "%.0f", n / t }')
  COLD_RATE=$(awk -v n="$TOKENS" -v t="$FIRST" 'BEGIN { printf "%.0f", n / t }')
  REF_RATE="n/a"; SPEEDUP="n/a"
  if [ -x "$PY" ] && REF=$(RAYON_NUM_THREADS=$THREADS TOKENIZERS_PARALLELISM=true "$PY" "$TMP/ref.py" "$TOK" "$TEXT" 2>/dev/null); then
    read -r REF_TOKENS REF_BEST <<< "$REF"
    if [ "$REF_TOKENS" != "$TOKENS" ]; then
      echo "bench_tokenizer: token counts differ (lacos $TOKENS, tokenizers $REF_TOKENS)"; exit 1
    fi
    REF_RATE=$(awk -v n="$TOKENS" -v t="$REF_BEST" 'BEGIN { printf "%.0f", n / t }')
    SPEEDUP=$(awk -v a="$LACOS_RATE" -v b="$REF_RATE" 'BEGIN { printf "%.1fx", a / b }')
  fi
  printf 'tokenizer (%s, %d threads): lacos %.2fM tokens/s (cold %.2fM), tokenizers %s tokens/s, %s; %d sentences, %d tokens, %s\n' \
    "$TOKNAME" "$THREADS" "$(awk -v r="$LACOS_RATE" 'BEGIN{print r/1e6}')" "$(awk -v r="$COLD_RATE" 'BEGIN{print r/1e6}')" \
    "$REF_RATE" "$SPEEDUP" "$N_SENT" "$TOKENS" "$CPU"
  printf '| %s | %s | %s | %d | %d | %d | %s | %s | %s | %s |\n' "$DATE" "$CPU" "$TOKNAME" "$N_SENT" "$TOKENS" "$THREADS" \
    "$LACOS_RATE" "$COLD_RATE" "$REF_RATE" "$SPEEDUP" >> "$OUT_MD"
  if [ "$NPROC" = 1 ]; then break; fi
done
