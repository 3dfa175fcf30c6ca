#!/usr/bin/env bash
# seed.sh NAME CORPUS: seeds the corpus of fuzz target fuzz_NAME from
# tests/fixtures/NAME/ (every file under 1 MB, and every checkpoint directory
# with model.safetensors.index.json packed as INDEX SEP SHARD1 SEP SHARD2 ...,
# the packed form fuzz_safetensors.c reads), the hand-made edge cases of
# tests/fuzz/seeds/NAME/ and the saved crashes of tests/fuzz/regressions/NAME/.
set -eu
name=$1 corpus=$2
mkdir -p "$corpus"
src=tests/fixtures/$name
if [ -d "$src" ]; then
  find "$src" -type f -size -1000k | while read -r f; do cp "$f" "$corpus/seed-$(tr '/' '_' <<<"$f")"; done
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
for extra in "tests/fuzz/seeds/$name" "tests/fuzz/regressions/$name"; do
  if [ -d "$extra" ]; then
    find "$extra" -type f | while read -r f; do cp "$f" "$corpus/seed-$(tr '/' '_' <<<"$f")"; done
  fi
done
exit 0
