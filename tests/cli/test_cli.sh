#!/usr/bin/env bash
# test_cli.sh: the lacos command line as a user meets it — help and version,
# running scripts (arg, ..., errors with file:line and a traceback, syntax
# errors, missing files), -e, -l, unknown commands and options. An uncaught
# error from a bug in the user's code prints file:line: message and a
# traceback of the user's frames; an error about the input (the engine's,
# or lacos' without a Lua position) prints its message and the script line.
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

# the same for an error in the script's main chunk, which has no callers
printf 'local t = nil\nprint(t.x)\n' > "$TMP/chunk.lua"
run_cmd "$LACOS" run "$TMP/chunk.lua"
expect "a runtime error in the main chunk prints file:line: message" 1 "^[^ ]*chunk.lua:2: attempt to index local 't' \(a nil value\)$"
if [ "$(sed -n 2,3p <<<"$ERR")" = $'stack traceback:\n\t'"$TMP/chunk.lua:2: in main chunk" ]; then
  ok "... and a traceback of the main chunk"
else not_ok "... and a traceback of the main chunk" "$ERR"; fi
grep -qE "lua/lacos/|\[C\]|xpcall" <<<"$ERR" && not_ok "the traceback has only the user's frames" "$ERR" || ok "the traceback has only the user's frames"
cat > "$TMP/tensor_bug.lua" <<'LUA'
local T = require("lacos").tensor
local function last(t) return t[#t + 1] end
print(last(T.zeros({3})))
LUA
run_cmd "$LACOS" run "$TMP/tensor_bug.lua"
expect "an out-of-range index is the user's bug: file:line of the indexing" 1 "tensor_bug.lua:2: t\[i\]: index 4 out of range for dimension 1 of size 3"
if grep -q "tensor_bug.lua:2: in function 'last'" <<<"$ERR" && grep -q "tensor_bug.lua:3: in main chunk" <<<"$ERR" \
   && ! grep -qE "lua/lacos/|\[C\]" <<<"$ERR"; then ok "... with the user's frames, none of lacos'"
else not_ok "... with the user's frames, none of lacos'" "$ERR"; fi
run_cmd "$LACOS" -e 'local t = {} ; t.x.y = 1'
expect "-e: a runtime error prints (command line):1: message" 1 "^\(command line\):1: attempt to index field 'x' \(a nil value\)$"
[ "$(sed -n 2,3p <<<"$ERR")" = $'stack traceback:\n\t(command line):1: in main chunk' ] \
  && ok "-e: ... and its traceback" || not_ok "-e: ... and its traceback" "$ERR"
# errors about the input stay one clean message, with the line that led to them
printf 'local lacos = require "lacos"\nlocal p = lacos.pairs.read("%s/nope.tsv")\n' "$TMP" > "$TMP/input.lua"
run_cmd "$LACOS" run "$TMP/input.lua"
expect "an input error in a script: the message" 1 "nope.tsv: No such file or directory"
if grep -q "^  (at .*input.lua:2)$" <<<"$ERR" && ! grep -q "stack traceback" <<<"$ERR"; then ok "... the script line, no traceback"
else not_ok "... the script line, no traceback" "$ERR"; fi
run_cmd "$LACOS" -e 'require("lacos").tensor.load_npy("/nonexistent/x.npy")'
expect "-e: an input error" 1 "^/nonexistent/x.npy: No such file or directory$"
grep -q "stack traceback" <<<"$ERR" && not_ok "-e: an input error has no traceback" "$ERR" || ok "-e: an input error has no traceback"
LACOS_DEBUG=1 run_cmd "$LACOS" -e 'require("lacos").tensor.load_npy("/nonexistent/x.npy")'
grep -q "stack traceback" <<<"$ERR" && ok "LACOS_DEBUG=1 shows the full traceback" || not_ok "LACOS_DEBUG=1 shows the full traceback" "$ERR"

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
