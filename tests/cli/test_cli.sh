#!/usr/bin/env bash
# test_cli.sh: the lacos command line as a user meets it — help and version,
# running scripts (arg, ..., errors with file:line and a traceback, syntax
# errors, missing files), -e, -l, unknown commands and options.
source "$(dirname "$0")/lib.sh"

run_cmd "$LACOS" --version
expect "--version prints the version and build" 0 "^lacos [0-9]+\.[0-9]+\.[0-9]+"
run_cmd "$LACOS" --help
expect "--help lists the commands" 0 "commands:"
for c in run repl tokenize embed model pull train sts data results; do
  run_cmd "$LACOS" $c --help
  expect "$c --help" 0 "usage:"
done

cat > "$TMP/args.lua" <<'LUA'
print(arg[0], arg[1], arg[2], select("#", ...), (...))
LUA
run_cmd "$LACOS" run "$TMP/args.lua" one two
expect "run passes arg and ... like luajit" 0 "args.lua	one	two	2	one"
run_cmd "$LACOS" "$TMP/args.lua" x
expect "a .lua file as the command runs it" 0 "args.lua	x	nil	1	x"

cat > "$TMP/boom.lua" <<'LUA'
local function inner() error("the widget is broken") end
local function outer() inner() end
outer()
LUA
run_cmd "$LACOS" run "$TMP/boom.lua"
expect "a script error prints file:line: message" 1 "boom.lua:1: the widget is broken"
if grep -q "stack traceback:" <<<"$ERR" && grep -q "boom.lua:2: in function 'outer'" <<<"$ERR"; then ok "the traceback names the callers"; else not_ok "the traceback names the callers" "$ERR"; fi

printf 'local x = = 1\n' > "$TMP/syntax.lua"
run_cmd "$LACOS" run "$TMP/syntax.lua"
expect "a syntax error names file and line" 1 "syntax.lua:1: unexpected symbol"

run_cmd "$LACOS" run "$TMP/does-not-exist.lua"
expect "a missing script is named" 1 "cannot open .*does-not-exist.lua"
run_cmd "$LACOS" run
expect "run without a script is a usage error" 2 "missing script"

run_cmd "$LACOS" -e 'print(1 + 1)'
expect "-e runs code" 0 "^2$"
run_cmd "$LACOS" -e 'error("nope")'
expect "-e errors name the chunk" 1 "command line.:1: nope"
run_cmd "$LACOS" -l lacos.json -e 'print(json.encode({a = 1}))'
expect "-l requires a module into a global" 0 '\{"a":1\}'
run_cmd "$LACOS" -e 'os.exit(7)'
expect "a script's exit status is kept" 7 ""

run_cmd "$LACOS" frobnicate
expect "an unknown command is refused" 2 "unknown command 'frobnicate'"
run_cmd "$LACOS" --frob
expect "an unknown option is refused" 2 "unknown option --frob"
run_cmd "$LACOS" embed --model
expect "a missing option value is a usage error" 2 "--model needs a value"
run_cmd "$LACOS" embed --out x.npy
expect "a missing required option is named" 2 "missing required option --model"
run_cmd "$LACOS" tokenize --tokenizer "$TMP/nope.json"
expect "an engine error names the file" 1 "nope.json"

# an uncaught error inside the engine API from a script: message, no crash
cat > "$TMP/engine_err.lua" <<'LUA'
local T = require("lacos").tensor
local a, b = T.zeros({2, 3}), T.zeros({4, 5})
local c = a:mm(b)
LUA
run_cmd "$LACOS" run "$TMP/engine_err.lua"
expect "an engine error in a script is a Lua error with a traceback" 1 "matmul: inner sizes differ"
finish
