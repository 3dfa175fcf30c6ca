# test_rough_edges.sh: what a new user hits first on the command line —
# experiments found from any directory and installed with lacos, "did you
# mean" for mistyped commands and options, usage errors that speak the
# command line (exit 2, no Lua file:line), model sizes in M/B.
source "$(dirname "$0")/lib.sh"

D="$TMP/rough"
mkdir -p "$D/elsewhere"
export LACOS_DATA="${LACOS_TEST_DATA:-$LACOS_ROOT/../shared/datasets}"

# ---- experiments from anywhere
cd "$D/elsewhere"
run_cmd "$LACOS" run experiments/scale.lua --dry-run --sizes tiny-xs --pairs 0
expect "lacos run experiments/scale.lua works outside the lacos tree" 0 "sweep scale-synthetic: 1 points"
run_cmd "$LACOS" run scale --dry-run --sizes tiny-xs --pairs 0
expect "lacos run scale: a bare experiment name" 0 "sweep scale-synthetic: 1 points"
run_cmd "$LACOS" run experiments/nope.lua
expect "a script that is nowhere names where it looked" 1 "cannot open experiments/nope.lua: no such file \(looked at experiments/nope.lua, .*/experiments/experiments/nope.lua"
[ ! -e "$D/elsewhere/results" ] && ok "a dry run creates nothing in the working directory" || not_ok "a dry run creates nothing in the working directory"
cd "$LACOS_ROOT"

# ---- make install puts the experiments beside the modules
PREFIX="$D/prefix"
if make -s --no-print-directory BUILD="${BUILD:-build}" install PREFIX="$PREFIX" >"$D/install.log" 2>&1; then
  ok "make install PREFIX=DIR"
  [ -f "$PREFIX/share/lacos/experiments/scale.lua" ] && ok "experiments installed" || not_ok "experiments installed"
  cd "$D/elsewhere"
  run_cmd env -u LACOS_HOME "$PREFIX/bin/lacos" run experiments/scale.lua --dry-run --sizes tiny-xs --pairs 0
  expect "the installed lacos runs its experiments from anywhere" 0 "sweep scale-synthetic: 1 points"
  cd "$LACOS_ROOT"
else
  not_ok "make install PREFIX=DIR" "$(tail -20 "$D/install.log")"
fi

finish
