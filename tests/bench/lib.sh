# Helpers shared by the benchmark scripts.
cpu_model() { lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1; }
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
