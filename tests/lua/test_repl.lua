-- The REPL driven through a pipe (stdin not a terminal), and its parts:
-- compilation of statements, pretty printing, completion, help.
-- tests/lua/test_repl_tty.lua drives it on a pseudo-terminal.
local H = require "harness"
local pretty = require "lacos.pretty"
local complete = require "lacos.complete"
local help = require "lacos.help"
local repl = require "lacos.repl"
local T = require "lacos.tensor"

-- Runs the REPL with `input` on stdin (every run is bounded by timeout).
local function pipe(input, args, env)
  return H.sh(("%s timeout 20 %s %s"):format(env or "", H.lacos, args or ""), input)
end

-- ---------------------------------------------------------------- pipe mode

H.test("pipe: an expression prints its value, assignments print nothing", function()
  local rc, out, err = pipe("x = 1+1\nx\n")
  H.eq(rc, 0, "exit status")
  H.eq(out, "2\n")
  H.eq(err, "")
end)

H.test("pipe: a model prints as a one-line summary, not its internal table", function()
  local tok = H.root .. "/datasets/tokenizers/bloomlike-32k.json"
  local rc, out, err = pipe(("m = lacos.bloom.random('tiny-xs', { tokenizer = %q })\nm\n" ..
                             "m:add_lora { r = 4, alpha = 8, targets = { 'query_key_value' } };\nm\n"):format(tok))
  H.eq(rc, 0, err)
  local lines = {}
  for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
  H.eq(#lines, 2, out)
  H.eq(lines[1], "lacos.bloom tiny-xs (random weights): 2.2M parameters (hidden 64, 2 layers, 4 heads), int8 on cpu, " ..
                 "tokenizer 32,000 ids, weightedmean pooling")
  H.match(lines[2], ", LoRA r 4 alpha 8 on query_key_value %(2,048 trainable%)$")
end)

H.test("pipe: a function definition continues over lines", function()
  local rc, out = pipe("function twice(a)\n  local b = a * 2\n  return b\nend\ntwice(21)\nt = {\n  1,\n  2 }\n#t\n")
  H.eq(rc, 0)
  H.eq(out, "42\n2\n")
end)

H.test("pipe: a trailing ; suppresses printing, and _ keeps the result", function()
  local rc, out = pipe("40 + 2;\n_\n_LAST + 1\n_RESULTS[1]\n")
  H.eq(rc, 0)
  H.eq(out, "42\n43\n42\n")
end)

H.test("pipe: several values print tab-separated, nil included", function()
  local rc, out = pipe("1, 'a', nil\nnil\nprint('x')\n")
  H.eq(rc, 0)
  H.eq(out, '1\t"a"\tnil\nnil\nx\n')
end)

H.test("pipe: an error prints its message, the REPL goes on, exit status 1", function()
  local rc, out, err = pipe("error('boom')\n1 + 1\nnil + 1\n3\n")
  H.eq(rc, 1, "exit status after failed statements")
  H.eq(out, "2\n3\n")
  H.match(err, "^stdin:1: boom\n")
  H.match(err, "stdin:3: attempt to perform arithmetic on a nil value")   -- the input line
  H.truthy(not err:find("stack traceback"), "no traceback for an error in the statement itself: " .. err)
end)

H.test("pipe: a traceback shows the user's frames, not the REPL's", function()
  local rc, _, err = pipe("function inner() error('deep') end\nfunction outer() inner() end\nouter()\n")
  H.eq(rc, 1)
  H.match(err, "stdin:1: deep")
  H.match(err, "stack traceback:")
  H.match(err, "in function 'inner'")
  H.match(err, "in function 'outer'")
  H.truthy(not err:find("repl%.lua") and not err:find("xpcall"), "REPL frames in the traceback: " .. err)
end)

H.test("pipe: syntax errors are reported, unfinished input at the end too", function()
  local rc, out, err = pipe("x = = 1\n2\nfunction f()\n")
  H.eq(rc, 1)
  H.eq(out, "2\n")
  H.match(err, "unexpected symbol near '='")
  H.match(err, "'end' expected near '<eof>' %(at end of input%)")
end)

H.test("pipe: echo 'x = 1+1\\nx' | lacos repl, and a file on stdin", function()
  local rc, out = H.sh("printf 'x = 1+1\\nx\\n' | timeout 20 " .. H.lacos .. " repl")
  H.eq(rc, 0)
  H.eq(out, "2\n")
  local f = H.write(H.tmp .. "/repl_in.lua", "y = 6 * 7\ny\n")
  rc, out = H.sh("timeout 20 " .. H.lacos .. " < " .. f)
  H.eq(rc, 0)
  H.eq(out, "42\n")
end)

H.test("pipe: lacos -i script.lua sees the script's globals", function()
  local s = H.write(H.tmp .. "/repl_script.lua",
    'local lacos = require "lacos"\nresult = { loss = 0.25 }\nemb = lacos.tensor.ones{2, 3}\nlocal hidden = 1\n')
  local rc, out, err = pipe("result.loss * 4\nemb:sum()\nhidden\n", "-i " .. s)
  H.eq(rc, 0, err)
  H.eq(out, "1\n6\nnil\n")
end)

H.test("pipe: lacos -i with a failing script exits without the REPL", function()
  local s = H.write(H.tmp .. "/repl_bad.lua", "error('script failed')\n")
  local rc, out, err = pipe("1\n", "-i " .. s)
  H.eq(rc, 1)
  H.eq(out, "")
  H.match(err, "script failed")
end)

H.test("pipe: nested tables and tensors print readably", function()
  local rc, out = pipe("cfg = { name = 'run', lr = 0.001, layers = { 24, 32 }, opt = { beta = { 0.9, 0.999 } } }\ncfg\n" ..
    "lacos.tensor.arange(6):view(2, 3)\n{ w = lacos.tensor.zeros{4, 5} }\n")
  H.eq(rc, 0)
  H.match(out, '^{layers = {24, 32}, lr = 0.001, name = "run", opt = {beta = {0.9, 0.999}}}\n')
  H.match(out, "lacos.tensor f32 cpu %(2, 3%)\n%[%[0%.0000 1%.0000 2%.0000%],\n %[3%.0000 4%.0000 5%.0000%]%]\n", "tensor")
  H.match(out, "{w = lacos.tensor f32 cpu %(4, 5%)}\n$", "tensor inside a table shows its header")
end)

H.test("pipe: ?name prints the help of an engine C function", function()
  local rc, out = pipe("?lacos_tensor_matmul\n")
  H.eq(rc, 0)
  H.match(out, "^lacos_tensor_matmul  %(C, engine/lacos.h:%d+, section: tensors")
  H.match(out, "Matrix product of the last two dimensions")
  H.match(out, "int lacos_tensor_matmul%(lacos_tensor %*%*out, const lacos_tensor %*a, const lacos_tensor %*b%);")
end)

H.test("pipe: ?name prints the help of a Lua function and of a module", function()
  local rc, out = pipe("?lacos.memory_limit\n?lacos.tensor\n")
  H.eq(rc, 0)
  H.match(out, "lacos.memory_limit  %(Lua, lua/lacos/init.lua:%d+%)\n")
  H.match(out, "Sets a soft cap %(bytes%) on engine allocations")
  H.match(out, "function lacos.memory_limit%(bytes, device%)")
  H.match(out, "engine calls: lacos_memory_set_limit, lacos_memory_get_limit")
  H.match(out, "lacos.tensor  %(table, module lacos.tensor%)\nlacos.tensor: Lua face of the engine's tensor type")
  H.match(out, "functions: .*zeros")
end)

H.test("pipe: ? alone prints the REPL help; unknown names are errors", function()
  local rc, out, err = pipe("?\n?no.such.thing\n?lacos_no_such_fn\n? 1+\n")
  H.eq(rc, 1)
  H.match(out, "^lacos REPL: type Lua")
  H.match(out, "%$ command")
  H.match(err, "no.such.thing is nil")
  H.match(err, "no engine function lacos_no_such_fn in engine/lacos.h")
  H.match(err, "'1%+' is not a name")
end)

H.test("pipe: who(), :time, $ shell escape, unknown : commands", function()
  local rc, out, err = pipe("alpha = 1\nbeta = { 1, 2 }\nwho()\n:time on\nz = 1\n:time off\n$ echo from-shell\n$ exit 3\n:nope\n")
  H.eq(rc, 1, "the failing shell command and :nope count as failures")
  H.match(out, "  alpha  number   1\n  beta   table    {1, 2}\n")
  H.truthy(not out:find("LACOS_HOME") and not out:find(" who "), "who() lists only user globals")
  H.match(out, "timing is on\n%(wall [%d.]+ [mu]?s, cpu [%d.]+ [mu]?s%)\ntiming is off\n")
  H.match(out, "from%-shell\n")
  H.match(err, "%(exit status 3%)")
  H.match(err, "unknown REPL command :nope")
end)

H.test("pipe: lacos.repl.timing() toggles timing from Lua, :quit stops reading", function()
  local rc, out = pipe("lacos.repl.timing(true);\n1\n:quit\n2\n")
  H.eq(rc, 0)
  H.match(out, "^%(wall [^\n]+%)\n1\n%(wall [^\n]+%)\n$")
end)

H.test("pipe: an interrupt stops a running statement and the REPL, status 130", function()
  -- timeout sends SIGINT after 1 s (under valgrind, which starts lacos in seconds, 30 s); the statement would
  -- run forever.
  local wait = os.getenv("LACOS_UNDER_VALGRIND") and 30 or 1
  local rc, out, err = H.sh(("timeout --preserve-status -s INT %d "):format(wait) .. H.lacos, "n = 0\nwhile true do n = n + 1; os.time() end\n'after'\n")
  H.eq(rc, 130, "exit status")
  H.eq(out, "")
  H.match(err, "^interrupted\n$")
  -- Waiting for input (the pipe stays open and silent).
  rc, out, err = H.sh(("sleep %d | timeout --preserve-status -s INT %d "):format(wait + 1, wait) .. H.lacos)
  H.eq(rc, 130, "exit status while reading")
  H.match(err, "^interrupted\n$")
end)

H.test("lacos repl --help", function()
  local rc, out = H.sh("timeout 20 " .. H.lacos .. " repl --help")
  H.eq(rc, 0)
  H.match(out, "^usage: lacos repl")
  H.match(out, "XDG_STATE_HOME")
end)

-- ---------------------------------------------------------------- compile

H.test("compile: expressions, statements, unfinished chunks", function()
  local fn, kind = repl.compile("1 + 1")
  H.eq(kind, "expr")
  local fn2, kind2 = repl.compile("x = 1")
  H.eq(kind2, "stmt")
  H.truthy(fn and fn2)
  for _, src in ipairs { "function f()", "t = {", "if x then", "s = [[abc", "for i = 1, 3 do\n  print(i)" } do
    local f, err, incomplete = repl.compile(src)
    H.eq(f, nil, src)
    H.truthy(incomplete, "incomplete: " .. src .. " (" .. tostring(err) .. ")")
  end
  for _, src in ipairs { "x = = 1", "1 +* 2", "s = 'abc", "end" } do
    local f, err, incomplete = repl.compile(src)
    H.eq(f, nil, src)
    H.truthy(not incomplete, "a syntax error, not unfinished: " .. src)
    H.match(err, "^stdin:1:")
  end
  H.eq(select(2, repl.compile("=2")), "expr", "Lua 5.1's =expr")
  H.eq(select(2, repl.compile("1 -- comment")), "expr", "a trailing comment")
end)

-- ---------------------------------------------------------------- pretty

H.test("pretty: scalars, strings quoted with escapes", function()
  H.eq(pretty.format(42), "42")
  H.eq(pretty.format(0.5), "0.5")
  H.eq(pretty.format(nil), "nil")
  H.eq(pretty.format(true), "true")
  H.eq(pretty.format('a "b"\n\t\0c'), '"a \\"b\\"\\n\\t\\0c"')
  H.eq(pretty.format("\1"), '"\\001"')
  H.eq(pretty.format({ ("x"):rep(300) }, { width = 1000 }), '{"' .. ("x"):rep(200) .. '"...(100 more bytes)}', "long strings cut inside tables")
end)

H.test("pretty: tables sorted, nested, one line when short, else indented", function()
  H.eq(pretty.format({}), "{}")
  H.eq(pretty.format({ 3, 2, 1 }), "{3, 2, 1}")
  H.eq(pretty.format({ b = 1, a = 2, 10, [5] = "x", ["not id"] = true, ["end"] = 0 }),
    '{10, [5] = "x", a = 2, b = 1, ["end"] = 0, ["not id"] = true}')
  local long = { alpha = ("a"):rep(30), beta = ("b"):rep(30), gamma = { 1, 2, 3 } }
  H.eq(pretty.format(long), '{\n  alpha = "' .. ("a"):rep(30) .. '",\n  beta = "' .. ("b"):rep(30) .. '",\n  gamma = {1, 2, 3},\n}')
  H.eq(pretty.format({ a = { b = { c = { d = { e = { f = 1 } } } } } }), "{a = {b = {c = {d = {e = {...(1 entry)}}}}}}", "depth limit")
  H.eq(pretty.format({ a = { b = 1 } }, { depth = 1 }), "{a = {...(1 entry)}}")
end)

H.test("pretty: cycles, size limits, functions, cdata, colour", function()
  local t = { name = "loop" }
  t.self = t
  H.eq(pretty.format(t), '{name = "loop", self = <cycle>}')
  local shared = { 1 }
  H.eq(pretty.format({ shared, shared }), "{{1}, {1}}", "a shared table is not a cycle")
  local big = {}
  for i = 1, 100 do big[i] = i end
  H.match(pretty.format(big, { items = 5 }), "^{1, 2, 3, 4, 5, %.%.%.%(95 more%)}$")
  H.eq(pretty.format(print), "function: builtin")
  H.match(pretty.format(pretty.format), "^function: lua/lacos/pretty%.lua:%d+$")
  H.match(pretty.format(require("ffi").new("int[2]")), "^cdata<int %[2%]>: 0x%x+$")
  H.eq(pretty.format(setmetatable({}, { __tostring = function() return "<obj>" end })), "<obj>")
  H.eq(pretty.format({ 1, "a" }, { color = true }), "{\27[36m1\27[0m, \27[32m\"a\"\27[0m}")
  H.raises("unknown option 'colour'", pretty.format, 1, { colour = true })
end)

H.test("pretty: tensors show shape, dtype, device and values", function()
  local x = T.arange(4)
  H.eq(pretty.format(x), tostring(x))
  H.match(pretty.format(x), "^lacos%.tensor f32 cpu %(4%)\n%[0%.0000 1%.0000 2%.0000 3%.0000%]$")
  H.eq(pretty.format({ x = x }), "{x = lacos.tensor f32 cpu (4)}")
  local big = T.zeros({ 100, 100 })
  local s = pretty.format(big)
  H.truthy(#s < 400, "a big tensor prints truncated (" .. #s .. " chars)")
  H.match(s, "%.%.%.")
end)

-- ---------------------------------------------------------------- completion

H.test("complete: globals, keywords, fields after '.', methods after ':'", function()
  local env = setmetatable({ myvar = 1, myfunc = function() end, math = math, string = string,
                             obj = { size = 3, get = function() end, inner = { leaf = 1 } } }, { __index = _G })
  local list, append = complete.complete("math.flo", env)
  H.same(list, { "math.floor" })
  H.eq(append, "(", "a function gets '('")
  H.same((complete.complete("my", env)), { "myfunc", "myvar" })
  H.same((complete.complete("obj.", env)), { "obj.get", "obj.inner", "obj.size" })
  H.same((complete.complete("obj:", env)), { "obj:get" }, "':' lists functions only")
  H.same((complete.complete("obj.inner.l", env)), { "obj.inner.leaf" })
  list, append = complete.complete("fun", env)
  H.same(list, { "function" })
  H.eq(append, " ")
  H.same((complete.complete("nothing.here", env)), {})
  H.same((complete.complete("x + y", env)), {})
  H.same((complete.complete("1/math.flo", env)), { "1/math.floor" }, "after a division")
  H.same((complete.complete("'a'..myv", env)), { "'a'..myvar" }, "after a concatenation")
  H.same((complete.complete("s..obj.si", env)), { "s..obj.size" })
  local s = "abc"
  env.s = s
  H.same((complete.complete("s:up", env)), { "s:upper" })
end)

H.test("complete: metatable __index tables, lacos submodules, tensor methods", function()
  local base = { inherited = function() end }
  local env = { o = setmetatable({ own = 1 }, { __index = base }), lacos = require "lacos", x = T.zeros{2} }
  H.same((complete.complete("o.", env)), { "o.inherited", "o.own" })
  local l = complete.complete("lacos.te", env)
  H.same(l, { "lacos.tensor" })
  l = complete.complete("x:ma", env)
  H.same(l, { "x:matmul", "x:max", "x:maxdiff", "x:maximum" })
  l = complete.complete("x.sh", env)
  H.same(l, { "x.shape" })
end)

H.test("complete: file names inside strings", function()
  local dir = H.tmp .. "/compl"
  os.execute("mkdir -p " .. dir .. "/sub && touch " .. dir .. "/alpha.lua " .. dir .. "/alpine.txt " .. dir .. "/.hidden")
  local l, append = complete.complete('"' .. dir .. "/al")
  H.same(l, { '"' .. dir .. "/alpha.lua", '"' .. dir .. "/alpine.txt" })
  l, append = complete.complete("'" .. dir .. "/alph")
  H.same(l, { "'" .. dir .. "/alpha.lua" })
  H.eq(append, "'", "a single file closes the string")
  l, append = complete.complete('"' .. dir .. "/su")
  H.same(l, { '"' .. dir .. "/sub/" })
  H.eq(append, nil, "a directory gets its '/' and nothing more")
  H.same((complete.complete('"' .. dir .. "/")), { '"' .. dir .. "/alpha.lua", '"' .. dir .. "/alpine.txt", '"' .. dir .. "/sub/" }, "no dot files")
  H.same((complete.complete('"' .. dir .. "/.h")), { '"' .. dir .. "/.hidden" })
  H.same((complete.complete('"/no/such/dir/x')), {})
end)

-- ---------------------------------------------------------------- help

H.test("help: an engine function found in a group under one comment", function()
  local text = help.lookup("lacos_tensor_empty")
  H.match(text, "^lacos_tensor_empty  %(C, engine/lacos.h:%d+")
  H.match(text, "Creation%. The new tensor is contiguous")
  H.match(text, "\nint lacos_tensor_empty%(")
  text = help.lookup("lacos.engine.C.lacos_tensor_rand")
  H.match(text, "dist: 0 = uniform", "through the FFI namespace")
  H.match(text, "double seed, int dist, double a, double b%);", "the whole multi-line declaration")
  text = help.lookup("lacos_version")
  H.eq(select(2, text:gsub("\n", "")), 1, "a section marker is not documentation: " .. text)
end)

H.test("help: Lua functions, methods, builtins, bad names", function()
  local text = help.lookup("lacos.tensor.methods.matmul", { lacos = require "lacos" })
  H.match(text, "function methods%.matmul%(a, b%)")
  H.match(text, "engine calls: lacos_tensor_matmul")
  H.match(help.lookup("math.floor"), "built%-in function of LuaJIT .*#pdf%-math%.floor")
  H.eq(select(2, help.lookup("a..b")), "'a..b' is not a name (use ?a.b.c)")
  H.eq(select(2, help.lookup("")), "no name given")
  local env = { f = loadstring("return function() end")() }
  H.match(help.lookup("f", env), "no source file")
end)

H.done()
