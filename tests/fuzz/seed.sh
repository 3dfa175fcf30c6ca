#!/usr/bin/env bash
# seed.sh NAME CORPUS: seeds the corpus of fuzz target fuzz_NAME with
#  - the target's test fixtures, packed the way the target reads them
#    (several files as PART SEP PART ..., SEP the 9 bytes "\n\0SHARD\0\n";
#    control bytes first for the targets that take them),
#  - the hand-made edge cases of tests/fuzz/seeds/NAME/,
#  - the minimised corpus of earlier runs, tests/fuzz/corpus/NAME/,
#  - the saved findings of tests/fuzz/regressions/NAME/.
# The replay tests (tests/c/test_fuzz_*.c) run this too, so `make test` and
# `make fuzz` start from the same inputs.
set -eu
name=$1
mkdir -p "$2"
corpus=$(cd "$2" && pwd)
cd "$(dirname "$0")/../.."
fx=tests/fixtures

sep() { printf '\n\0SHARD\0\n'; }
# put NAME: stdin -> corpus/seed-NAME
put() { cat > "$corpus/seed-$1"; }
flat() { tr '/' '_' <<<"$1"; }

case $name in
safetensors)
  find $fx/safetensors -type f -size -1000k | while read -r f; do put "$(flat "$f")" < "$f"; done
  find $fx/safetensors -name model.safetensors.index.json | while read -r idx; do
    d=$(dirname "$idx")
    { cat "$idx"; for s in $(ls "$d" | grep -E '^model-[0-9]{5}-of-[0-9]{5}\.safetensors$' | sort); do sep; cat "$d/$s"; done; } \
      | put "$(flat "$d")-packed"
  done ;;
tokenizer)
  for f in added-small gpt2-small gpt2-fallback; do
    put "$f" < $fx/tokenizer/$f.json
    { cat $fx/tokenizer/$f.json; sep; printf 'Hello  world!\tTabs, 1234 and émoji 🙂 <pad>'; } | put "$f-text"
  done ;;
bloom)
  # control byte: 0 f32, 1 int8, 3 int8 with the cache, 4 forward pass
  for d in tiny-a tiny-bf16; do
    for c in 0 5; do { printf "\\x0$c"; cat $fx/bloom/$d/config.json; sep; cat $fx/bloom/$d/model.safetensors; } | put "$d-$c"; done
  done
  for d in tiny-a tiny-b tiny-bf16 tiny-sharded lora-a/base; do { printf '\0'; cat $fx/bloom/$d/config.json; } | put "$(flat "$d")-config"; done ;;
lora)
  { cat $fx/bloom/lora-a/adapter/adapter_config.json; sep; cat $fx/bloom/lora-a/adapter/adapter_model.safetensors; } | put lora-a ;;
npy)
  find $fx/optim $fx/bloom -name '*.npy' -size -9k | sort | head -40 | while read -r f; do put "$(flat "$f")" < "$f"; done ;;
checkpoint)
  # control byte 3: the harness compresses the image and fixes the manifest's hashes
  for f in dtypes exotic; do
    { printf '\3{"format": "lacos-checkpoint", "version": 1, "step": 1, "files": {"state.json": {}, "tensors.safetensors.zst": {}}}'
      sep; printf '{"step": 1, "data": {"epoch": 0, "position": 12}, "seed": 7}'; sep; cat $fx/safetensors/$f.safetensors; } | put "$f"
  done ;;
esac
for extra in "tests/fuzz/seeds/$name" "tests/fuzz/corpus/$name" "tests/fuzz/regressions/$name"; do
  if [ -d "$extra" ]; then
    find "$extra" -type f | while read -r f; do cp "$f" "$corpus/seed-$(flat "$f")"; done
  fi
done
exit 0
