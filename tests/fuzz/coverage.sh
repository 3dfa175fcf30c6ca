#!/usr/bin/env bash
# coverage.sh NAME...: line coverage reached by each fuzz target's corpus.
# Builds the engine and tests/fuzz/fuzz_NAME.c with clang's source-based
# coverage (-fprofile-instr-generate -fcoverage-mapping, libFuzzer's driver,
# no sanitizers) in build/fuzz-cov/, runs the target once over its corpus
# (build/fuzz/corpus/NAME from `make fuzz`, else the seeds seed.sh gives),
# and prints the line coverage of the engine files the target is about.
set -eu
out=build/fuzz-cov
mkdir -p "$out/obj" "$out/profiles"
cflags="-std=c11 -D_GNU_SOURCE -O1 -g -pthread -Wno-unknown-pragmas -fprofile-instr-generate -fcoverage-mapping"
pc="$(pkg-config --cflags sqlite3 libzstd jansson libpcre2-8 libcurl libcrypto luajit) $(PKG_CONFIG_PATH=/usr/lib/$(gcc -print-multiarch)/openblas-openmp/pkgconfig pkg-config --cflags openblas)"
libs="$(pkg-config --libs sqlite3 libzstd jansson libpcre2-8 libcurl libcrypto) $(PKG_CONFIG_PATH=/usr/lib/$(gcc -print-multiarch)/openblas-openmp/pkgconfig pkg-config --libs openblas) -ldnnl -lm"
objs=()
for src in $(ls engine/*.c engine/cpu/*.c | grep -v engine/main.c); do
  o=$out/obj/${src//\//_}.o
  if [ ! -f "$o" ] || [ "$src" -nt "$o" ] || [ engine/engine.h -nt "$o" ] || [ engine/lacos.h -nt "$o" ]; then
    clang $cflags $pc -c "$src" -o "$o"
  fi
  objs+=("$o")
done

# the engine files each target is about
files_of() {
  case $1 in
  safetensors) echo engine/safetensors.c ;;
  tokenizer) echo engine/tokenizer.c ;;
  tsv|csv|gold|lines|jsonl) echo engine/datasets.c ;;
  npy) echo engine/npy.c ;;
  bloom) echo engine/bloom.c engine/bloom_io.c engine/bloom_config.c ;;
  lora) echo engine/lora.c engine/lora_peft.c ;;
  checkpoint) echo engine/checkpoint.c ;;
  results) echo engine/results_json.c engine/results_db.c engine/results_schema.c engine/results_run.c engine/results_query.c ;;
  lua) echo lua ;;
  esac
}

printf '%-18s %-22s %s\n' target file "lines covered"
for name in "$@"; do
  extra=
  [ "$name" = lua ] && extra="-rdynamic $(pkg-config --libs luajit)"
  # shellcheck disable=SC2086
  clang $cflags $pc -fsanitize=fuzzer -Iengine -o "$out/fuzz_$name" "tests/fuzz/fuzz_$name.c" "${objs[@]}" $libs $extra
  corpus=build/fuzz/corpus/$name
  if [ ! -d "$corpus" ]; then corpus=$out/seeds/$name; rm -rf "$corpus"; bash tests/fuzz/seed.sh "$name" "$corpus"; fi
  prof=$out/profiles/$name
  rm -f "$prof".profraw
  LLVM_PROFILE_FILE="$prof.profraw" LACOS_ROOT=$(pwd) "$out/fuzz_$name" -runs=0 -timeout=30 -rss_limit_mb=4096 "$corpus" > "$out/$name.log" 2>&1 || true
  llvm-profdata merge -sparse "$prof.profraw" -o "$prof.profdata"
  for f in $(files_of "$name"); do
    [ "$f" = lua ] && { printf '%-18s %-22s %s\n' "fuzz_$name" "(Lua modules)" "not measured by clang (see its extra counters)"; continue; }
    line=$(llvm-cov report "$out/fuzz_$name" -instr-profile="$prof.profdata" "$f" 2>/dev/null | grep -E "^(engine|/)" | tail -1)
    # columns: Regions Missed Cover Functions Missed Executed Lines Missed Cover ...
    read -r _ _ _ _ _ _ _ lines lmiss lcover _ <<<"$line"
    printf '%-18s %-22s %s of %s (%s)\n' "fuzz_$name" "$f" "$((lines - lmiss))" "$lines" "$lcover"
  done
done
