#!/usr/bin/env bash
# seed.sh NAME CORPUS: seeds the corpus of fuzz target fuzz_NAME from
# tests/fixtures/NAME/ (every small file, and every checkpoint directory with
# model.safetensors.index.json packed as INDEX SEP SHARD1 SEP SHARD2 ..., the
# packed form fuzz_safetensors.c reads) and keeps the saved crashes of
# tests/fuzz/regressions/NAME/ in it.
set -eu
name=$1 corpus=$2
mkdir -p "$corpus"
src=tests/fixtures/$name
if [ -d "$src" ]; then
  find "$src" -type f -size -1M | while read -r f; do cp "$f" "$corpus/seed-$(tr '/' '_' <<<"$f")"; done
  find "$src" -name model.safetensors.index.json | while read -r idx; do
    d=$(dirname "$idx")
    {
      cat "$idx"
      for s in $(ls "$d" | grep -E '^model-[0-9]{5}-of-[0-9]{5}\.safetensors$' | sort); do
        printf '\n\0SHARD\0\n'
        cat "$d/$s"
      done
    } > "$corpus/seed-$(tr '/' '_' <<<"$d")-packed"
  done
fi
if [ -d "tests/fuzz/regressions/$name" ]; then
  find "tests/fuzz/regressions/$name" -type f -exec cp {} "$corpus/" \;
fi
exit 0
