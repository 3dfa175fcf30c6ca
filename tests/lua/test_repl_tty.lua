-- The REPL on a pseudo-terminal (tests/lua/pty.lua: posix_openpt and
-- posix_spawn through the FFI), as a user at a terminal drives it: line
-- editing through libedit, tab completion, the history file, Ctrl-C at the
-- prompt and during a statement, Ctrl-D, colour, and the fallback to plain
-- lines when libedit cannot be loaded. Every wait has a deadline.
local H = require "harness"
local ok_pty, P = pcall(require, "pty")

local home = H.tmp .. "/repl_tty_home"
local state = home .. "/state"
os.execute("rm -rf " .. home .. " && mkdir -p " .. home)

local function exe()
  local l = H.lacos
  if l:sub(1, 1) ~= "/" then l = H.root .. "/" .. l end
  return l
end

local function env(extra)
  local e = { TERM = "xterm", HOME = home, XDG_STATE_HOME = state, NO_COLOR = "1",
              LACOS_HISTORY = false, LACOS_LIBEDIT = false, EDITRC = home .. "/editrc" }
  for k, v in pairs(extra or {}) do e[k] = v end
  return e
end

local function start(extra, args)
  if not ok_pty then H.skip("no pty driver: " .. tostring(P)) end
  local argv = { exe() }
  for _, a in ipairs(args or {}) do argv[#argv + 1] = a end
  local p, err = P.spawn(argv, env(extra))
  if not p then H.skip("cannot open a pseudo-terminal here: " .. tostring(err)) end
  local ok, seen = p:expect("lacos> ", 10)
  if not ok then p:close() error("no prompt; the terminal showed:\n" .. tostring(seen)) end
  p:settle(0.15)   -- let libedit switch the terminal to its editing mode
  return p
end

-- Sends keys, then waits for `want` on the screen.
local function step(p, keys, want, what, timeout)
  p:send(keys)
  local ok, seen = p:expect(want, timeout or 5)
  if not ok then error((what or want) .. ": not shown; the screen after the mark:\n" .. seen, 2) end
end

local function prompt(p)
  local ok, seen = p:expect("lacos> ", 5)
  if not ok then error("no new prompt; the screen after the mark:\n" .. seen, 2) end
  p:settle(0.15)
end

local function finish(p)
  p:send("\4")   -- Ctrl-D
  local st = p:wait(5)
  p:close()
  return st
end

H.test("tty: an expression prints its value; Ctrl-D leaves with status 0", function()
  local p = start()
  local ok, e = pcall(function()
    H.match(p:text(true), "^lacos [%d.]+ REPL")
    step(p, "6*7\r", "\n42\n", "the value")
    prompt(p)
    step(p, "s = 'multi'\r", "lacos> ", "an assignment")
    p:settle(0.15)
    step(p, "function f(x)\r", "  ...> ", "the continuation prompt")
    p:settle(0.1)
    step(p, "return x .. '!' end\r", "lacos> ", "the end of the definition")
    p:settle(0.15)
    step(p, "f(s)\r", '"multi!"', "the call")
    prompt(p)
  end)
  local st = finish(p)
  if not ok then error(e, 0) end
  H.eq(st, 0, "exit status after Ctrl-D")
end)

H.test("tty: tab completes a global's field and a common prefix", function()
  local p = start()
  local ok, e = pcall(function()
    step(p, "math.flo\t", "math.floor(", "math.flo<TAB> completed to math.floor(")
    step(p, "2.7)\r", "\n2\n", "the completed call's value")
    prompt(p)
    step(p, "zebra_one = 1; zebra_two = 2\r", "lacos> ", "two globals")
    p:settle(0.15)
    step(p, "zeb\t", "zebra_", "the common prefix")
    -- zebra_t alone would print nil: 2 shows that Tab completed zebra_two.
    step(p, "t\t\r", "\n2\n", "the unique completion's value")
    prompt(p)
  end)
  local st = finish(p)
  if not ok then error(e, 0) end
  H.eq(st, 0)
end)

H.test("tty: tab completes file names inside a string", function()
  local dir = H.tmp .. "/tty_files"
  os.execute("mkdir -p " .. dir .. "/subdir && touch " .. dir .. "/unique_name.txt")
  local p = start()
  local ok, e = pcall(function()
    local function line(keys, want, what)
      p:send(keys)
      local got, seen = p:expect_line(want, 5)
      if not got then error(what .. ": the line being edited is " .. seen, 2) end
    end
    line('f = io.open("' .. dir .. '/sub\t', '"' .. dir .. "/subdir/", "a directory")
    p:send("\21")   -- Ctrl-U clears the line
    p:settle(0.2)
    line('f = io.open("' .. dir .. '/uni\t', '"' .. dir .. '/unique_name.txt"', "a file, with the closing quote")
    p:skip()
    step(p, ")\r", "lacos> ")
    p:settle(0.15)
    step(p, "io.type(f)\r", '"file"', "the completed name opened")
    prompt(p)
  end)
  local st = finish(p)
  if not ok then error(e, 0) end
  H.eq(st, 0)
end)

H.test("tty: history goes to $XDG_STATE_HOME/lacos/history and comes back", function()
  local path = state .. "/lacos/history"
  os.remove(path)
  local p = start()
  local ok, e = pcall(function()
    step(p, "1+41\r", "\n42\n")
    prompt(p)
    step(p, "'second'\r", '"second"')
    prompt(p)
  end)
  local st = finish(p)
  if not ok then error(e, 0) end
  H.eq(st, 0)
  local h = H.read(path)
  H.truthy(h, "the history file exists at " .. path)
  H.match(h, "1%+41\n")
  H.match(h, "'second'\n")
  -- A new session recalls the last line with the Up arrow.
  p = start()
  ok, e = pcall(function()
    step(p, "\27[A", "'second'", "Up recalls the previous session's line")
    step(p, "\r", '"second"')
    prompt(p)
  end)
  st = finish(p)
  if not ok then error(e, 0) end
end)

H.test("tty: ~/.lacos_history without XDG_STATE_HOME; LACOS_HISTORY empty or unwritable", function()
  local path = home .. "/.lacos_history"
  os.remove(path)
  local p = start({ XDG_STATE_HOME = false })
  local ok, e = pcall(function()
    step(p, "2+2\r", "\n4\n")
    prompt(p)
  end)
  H.eq(finish(p), 0)
  if not ok then error(e, 0) end
  H.match(H.read(path) or "", "2%+2\n")
  -- LACOS_HISTORY="" keeps no history at all.
  os.remove(path)
  p = start({ XDG_STATE_HOME = home .. "/nohist", LACOS_HISTORY = "" })
  ok, e = pcall(function()
    step(p, "5+5\r", "\n10\n")
    prompt(p)
  end)
  H.eq(finish(p), 0)
  if not ok then error(e, 0) end
  H.truthy(not H.exists(path) and not H.exists(home .. "/nohist/lacos/history"), "no history file with LACOS_HISTORY empty")
  p = start({ LACOS_HISTORY = "/proc/no/such/dir/history" })
  ok, e = pcall(function()
    step(p, "3+3\r", "\n6\n")
    prompt(p)
  end)
  H.eq(finish(p), 0)
  if not ok then error(e, 0) end
end)

H.test("tty: Ctrl-C clears the line; Ctrl-C stops a running statement", function()
  local p = start()
  local ok, e = pcall(function()
    step(p, "abandoned", "abandoned")
    p:settle(0.2)
    p:send("\3")           -- Ctrl-C through the terminal's line discipline
    prompt(p)
    step(p, "1+2\r", "\n3\n", "the REPL goes on after Ctrl-C at the prompt")
    prompt(p)
    step(p, "n = 0; while true do n = n + 1; os.time() end\r", "end")
    p:settle(0.5)
    p:send("\3")
    local got, seen = p:expect("interrupted", 5)
    if not got then error("the running statement was not interrupted:\n" .. seen) end
    prompt(p)
    step(p, "n > 0\r", "true", "the statement ran until interrupted")
    prompt(p)
    -- A second interrupt later must not exit (the handler was re-armed).
    p:send("\3")
    prompt(p)
    step(p, "'alive'\r", '"alive"')
    prompt(p)
  end)
  local st = finish(p)
  if not ok then error(e, 0) end
  H.eq(st, 0)
end)

H.test("tty: Ctrl-C stops a loop with no call in it (one the JIT would compile)", function()
  local p = start()
  local ok, e = pcall(function()
    step(p, "n = 0; while true do n = n + 1 end\r", "end")
    p:settle(1.0)   -- long enough for LuaJIT to compile the loop, were it allowed to
    p:send("\3")
    local got, seen = p:expect("interrupted", 5)
    if not got then error("the loop was not interrupted:\n" .. seen) end
    prompt(p)
    step(p, "function spin() local k = 0 while true do k = k + 1 end end\r", "end")
    prompt(p)
    step(p, "spin()\r", "spin()")
    p:settle(1.0)
    p:send("\3")
    got, seen = p:expect("interrupted", 5)
    if not got then error("a function defined at the prompt was not interrupted:\n" .. seen) end
    prompt(p)
    step(p, "n > 1000\r", "true", "the session goes on")
    prompt(p)
  end)
  local st = finish(p)
  if not ok then error(e, 0) end
  H.eq(st, 0)
end)

H.test("tty: a first Ctrl-C that cannot stop compiled code says the next one quits", function()
  local p = start()
  local ok, e = pcall(function()
    -- a chunk made at run time is not the statement's own code: the JIT compiles it
    step(p, "f = loadstring('local k = 0 while true do k = k + 1 end'); f()\r", "f()")
    p:settle(1.0)
    p:send("\3")
    local got, seen = p:expect("press Ctrl-C again to quit lacos", 10)
    if not got then error("no notice after the first Ctrl-C:\n" .. seen) end
    p:send("\3")
  end)
  local st = p:wait(5)
  p:close()
  if not ok then error(e, 0) end
  H.eq(st, 130, "the second Ctrl-C quits")
end)

H.test("tty: lacos embed on a terminal says what it expects; Ctrl-D with nothing typed is refused", function()
  if not ok_pty then H.skip("no pty driver: " .. tostring(P)) end
  local model = home .. "/embed-model"
  local rc, _, err = H.sh(("%q model random tiny-xs --out %q"):format(exe(), model))
  H.eq(rc, 0, err)
  local function embed(keys, want)
    local p, perr = P.spawn({ exe(), "embed", "--model", model, "--out", home .. "/e.npy" }, env())
    if not p then H.skip("cannot open a pseudo-terminal here: " .. tostring(perr)) end
    local got, seen = p:expect("one per line; Ctrl-D ends the input", 10)
    if not got then p:close() error("no word about the input on the terminal:\n" .. seen) end
    p:settle(0.2)
    p:send(keys)
    got, seen = p:expect(want, 10)
    local st = p:wait(5)
    p:close()
    if not got then error(("not shown: %s; the screen:\n%s"):format(want, seen)) end
    return st
  end
  H.eq(embed("a cat\r\4", "wrote 1 x 64 embeddings"), 0)
  H.eq(embed("\4", "stdin: no sentences to embed"), 1)
end)

H.test("tty: ~/.editrc lines for lacos apply (the application name is lacos)", function()
  local rc = H.write(home .. "/editrc.apps", "lacos:bind -s ^T '\"from editrc\"'\nother:bind -s ^Y '\"not ours\"'\n")
  local p = start({ EDITRC = rc })
  local ok, e = pcall(function()
    step(p, "\20\r", '\n"from editrc"\n', "the key bound for lacos")
    prompt(p)
    step(p, "'x'\25\r", '\n"x"\n', "a key bound for another program does nothing")
    prompt(p)
  end)
  local st = finish(p)
  if not ok then error(e, 0) end
  H.eq(st, 0)
end)

H.test("tty: UTF-8 text typed at the prompt arrives intact", function()
  local p = start({ LANG = false, LC_ALL = false, LC_CTYPE = false })
  local ok, e = pcall(function()
    step(p, "s = 'h\195\169llo \226\130\172'\r", "lacos> ")
    p:settle(0.15)
    p:send("#s, s\r")
    local got, seen = p:expect('10%s+"h\195\169llo \226\130\172"', 5, true)
    if not got then error("the string and its byte length: not shown:\n" .. seen) end
    prompt(p)
  end)
  local st = finish(p)
  if not ok then error(e, 0) end
  H.eq(st, 0)
end)

H.test("tty: Ctrl-C at a continuation prompt drops the unfinished statement", function()
  local p = start()
  local ok, e = pcall(function()
    step(p, "function g()\r", "  ...> ")
    p:settle(0.2)
    p:send("\3")
    prompt(p)
    step(p, "g\r", "\nnil\n", "g was never defined")
    prompt(p)
  end)
  local st = finish(p)
  if not ok then error(e, 0) end
  H.eq(st, 0)
end)

H.test("tty: errors show in red and values in colour unless NO_COLOR", function()
  local p = start({ NO_COLOR = false })
  local ok, e = pcall(function()
    step(p, "12345\r", "12345\n")
    prompt(p)
    H.truthy(p.out:find("\27%[36m12345\27%[0m"), "the number is coloured")
    step(p, "error('bad')\r", "bad")
    prompt(p)
    H.truthy(p.out:find("\27%[31mstdin:1: bad"), "the error is red")
  end)
  finish(p)
  if not ok then error(e, 0) end
end)

H.test("tty: without libedit a one-line notice, then plain lines still work", function()
  local p = start({ LACOS_LIBEDIT = home .. "/no-such-libedit.so" })
  local ok, e = pcall(function()
    H.match(p:text(true), "no line editing %(libedit: [^\n]*%); reading plain lines")
    step(p, "5*5\r", "\n25\n")
    prompt(p)
  end)
  local st = finish(p)
  if not ok then error(e, 0) end
  H.eq(st, 0)
end)

H.test("tty: lacos -i script.lua opens the REPL with the script's globals", function()
  local s = H.write(H.tmp .. "/repl_tty_script.lua", "answer = 40 + 2\n")
  local p = start(nil, { "-i", s })
  local ok, e = pcall(function()
    step(p, "answer\r", "\n42\n")
    prompt(p)
  end)
  local st = finish(p)
  if not ok then error(e, 0) end
  H.eq(st, 0)
end)

H.done()
