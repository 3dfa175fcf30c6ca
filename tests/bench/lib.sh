# Helpers shared by the benchmark scripts.
# The model name, and what a virtual machine's bare "AMD EPYC" leaves out: the
# family/model numbers (25/17 is Zen 4) and whether int8 products have VNNI.
cpu_model() {
  local name fam mod vnni=
  name=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
  fam=$(lscpu | sed -n 's/^CPU family:[[:space:]]*//p' | head -1)
  mod=$(lscpu | sed -n 's/^Model:[[:space:]]*//p' | head -1)
  grep -qw -E 'avx512_vnni|avx_vnni' /proc/cpuinfo && vnni=", VNNI"
  grep -qw amx_int8 /proc/cpuinfo && vnni="$vnni, AMX"
  echo "$name (family $fam model $mod$vnni)"
}
# The instruction set oneDNN picks for lacos' int8 products, in its own words
# (ONEDNN_VERBOSE's isa line, from one encode of a tiny random model), and
# whether the CPU has AMX at all.
int8_isa() {
  local isa
  isa=$(ONEDNN_VERBOSE=1 "$LACOS" -e "local l = require('lacos'); local T = l.tensor
    l.bloom.random('tiny-xs', {seed = 1}):encode_ids(T.ones({1, 4}, 'i32'), T.ones({1, 4}, 'i32'), {pooling = 'mean'})" \
    2>&1 | sed -n 's/^onednn_verbose,info,cpu,isa://p' | head -1)
  grep -qw amx_int8 /proc/cpuinfo || isa="$isa; no AMX on this CPU"
  echo "$isa"
}
bench_date() { date -u +%Y-%m-%d; }
# random_model SHAPE: a random-weight checkpoint (f16 on disk) cached under $BENCH_DIR/models
random_model() {
  local shape=$1 dir="$BENCH_DIR/models/$1"
  if [ ! -f "$dir/config.json" ]; then
    mkdir -p "$BENCH_DIR/models"
    "$LACOS" model random "$shape" --out "$dir" --seed 1 --dtype f16 >&2
  fi
  echo "$dir"
}
# onnx_model SHAPE MODEL_DIR: the int8 ONNX model of that checkpoint (tests/bench/export_onnx.py), cached
onnx_model() {
  local out="$BENCH_DIR/onnx/$1"
  [ -f "$out/model.onnx" ] || "$VENV_PY" tests/bench/export_onnx.py "$2" "$out" >&2
  echo "$out/model.onnx"
}
# gguf_model SHAPE MODEL_DIR: the Q8_0 GGUF of that checkpoint for llama.cpp
# (tests/bench/convert_gguf.py with the converter in $LLAMACPP_SRC, which
# tests/bench/build_llamacpp.sh unpacks), cached. Prints the path even when it
# could not be made: the llama.cpp engine then says why it was not measured.
gguf_model() {
  local out="$BENCH_DIR/gguf/$1/model-q8_0.gguf"
  if [ ! -f "$out" ] && [ -d "${LLAMACPP_SRC:-}" ]; then
    mkdir -p "$(dirname "$out")"
    "$VENV_PY" tests/bench/convert_gguf.py "$LLAMACPP_SRC" "$2" "$out" > "$out.log" 2>&1 \
      || echo "lacos: llama.cpp's converter failed on $2 (see $out.log)" >&2
  fi
  echo "$out"
}
# json_field JSON KEY
json_field() { "$VENV_PY" -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }
