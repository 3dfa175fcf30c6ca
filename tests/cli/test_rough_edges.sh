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

# ---- did you mean: mistyped commands, subcommands and options are usage errors (exit 2) with a guess
run_cmd "$LACOS" trian
expect "a mistyped command" 2 "unknown command 'trian' \(did you mean 'train'\?\)"
run_cmd "$LACOS" train --modle m --pairs p --out o
expect "a mistyped option" 2 "lacos train: unknown option --modle \(did you mean --model\?\)"
run_cmd "$LACOS" --hlep
expect "a mistyped lacos option" 2 "unknown option --hlep \(did you mean --help\?\)"
run_cmd "$LACOS" results lsit
expect "a mistyped results subcommand" 2 "unknown subcommand 'lsit' — did you mean 'list'\?"
run_cmd "$LACOS" model randm tiny-xs
expect "a mistyped model subcommand" 2 "unknown subcommand 'randm' — did you mean 'random'\?"
run_cmd "$LACOS" data pul allnli
expect "a mistyped data subcommand" 2 "unknown subcommand 'pul' — did you mean 'pull'\?"
run_cmd "$LACOS" run experiments/scale.lua --dry-run --size tiny-xs
expect "a script's mistyped option" 2 "unknown option --size \(did you mean --sizes\?\)"
run_cmd "$LACOS" frobnicate
expect "no guess when nothing is close" 2 "unknown command 'frobnicate'"
grep -q "did you mean" <<<"$ERR" && not_ok "no guess for frobnicate" "$ERR" || ok "no guess for frobnicate"

# ---- a pairs file with a header line: refused (pairs, labelled) unless --header, skipped when scored
"$LACOS" model random tiny-xs --out "$D/model" --seed 1 >/dev/null 2>&1
printf 'anchor\tpositive\n' > "$D/pairs-h.tsv"
printf 'premise\thypothesis\tlabel\n' > "$D/nli-h.tsv"
printf 'sentence1\tsentence2\tscore\n' > "$D/scored-h.tsv"
for i in 1 2 3 4 5 6 7 8; do
  printf 'a cat number %d\ta kitten number %d\n' $i $i >> "$D/pairs-h.tsv"
  printf 'a dog number %d\ta puppy number %d\tentailment\n' $i $i >> "$D/nli-h.tsv"
  printf 'a bird number %d\ta sparrow number %d\t%d\n' $i $i $((i % 5)) >> "$D/scored-h.tsv"
done
run_cmd "$LACOS" train --model "$D/model" --pairs "$D/pairs-h.tsv" --out "$D/a1" --no-db --steps 1
expect "train: a header line in a pairs file is refused, naming the file, the line and --header" 2 \
  "lacos train: .*/pairs-h.tsv:1 looks like a header line \(anchor, positive\), not an example: pass --header to skip it"
[ ! -e "$D/a1" ] && ok "nothing written for the refused file" || not_ok "nothing written for the refused file"
run_cmd "$LACOS" train --model "$D/model" --pairs "$D/nli-h.tsv" --loss softmax --out "$D/a2" --no-db --steps 1
expect "train --loss softmax: a header line is refused too" 2 "nli-h.tsv:1 looks like a header line \(premise, hypothesis, label\)"
run_cmd "$LACOS" train --model "$D/model" --pairs "$D/pairs-h.tsv" --header --out "$D/a3" --no-db --steps 1
expect "train --header skips it" 0 "done after 1 of 1 steps"
grep -qE "n_pairs +8$" <<<"$ERR" && ok "--header: 8 pairs, not 9" || not_ok "--header: 8 pairs, not 9" "$ERR"
run_cmd "$LACOS" train --model "$D/model" --pairs "$D/scored-h.tsv" --loss cosent --out "$D/a4" --no-db --steps 1
expect "train --loss cosent skips a header whose score is not a number, and says so" 0 \
  "scored-h.tsv:1 is a header line \(sentence1, sentence2, score\): skipped"

finish
