# Helpers shared by the benchmark scripts.
# The model name, and what a virtual machine's bare "AMD EPYC" leaves out: the
# family/model numbers (25/17 is Zen 4) and whether int8 products have VNNI.
cpu_model() {
  local name fam mod vnni=
  name=$(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
  fam=$(lscpu | sed -n 's/^CPU family:[[:space:]]*//p' | head -1)
  mod=$(lscpu | sed -n 's/^Model:[[:space:]]*//p' | head -1)
  grep -qw -E 'avx512_vnni|avx_vnni' /proc/cpuinfo && vnni=", VNNI"
  echo "$name (family $fam model $mod$vnni)"
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
# json_field JSON KEY
json_field() { "$VENV_PY" -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }
