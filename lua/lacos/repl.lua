-- lacos.repl: the interactive read-eval-print loop (`lacos`, `lacos repl`,
-- `lacos -i script.lua`), modelled on torch's trepl.
--
-- Each statement is first tried as `return <statement>` so that expressions
-- print their values; a trailing ';' suppresses the printing. A chunk that
-- does not compile yet because it ends early (`function f()`, `{`) continues
-- on the next line. Results stay in `_` / `_LAST` (the first value) and in
-- `_RESULTS[i]` (the i-th result, the last 10 kept). Errors print their
-- message and a traceback of the user's frames, and the loop goes on.
-- Globals persist; after `lacos -i script.lua` the script's globals are there.
--
-- On a terminal: line editing, persistent history and tab completion through
-- libedit (lacos.edit), colour unless NO_COLOR is set, Ctrl-C clears the line
-- or cancels the running statement, Ctrl-D leaves. When stdin is not a
-- terminal it reads plain lines and prints only results (errors to stderr),
-- so it can be driven by a pipe; the exit status is then 1 if any statement
-- failed, else 0.
--
-- REPL lines that are not Lua:
--   ?name        help for a function or module (?lacos.tensor.zeros, ?lacos_tensor_matmul)
--   ?            this help
--   $ command    run a shell command
--   :time on|off print the wall and CPU time of each statement (lacos.repl.timing(true))
--   :quit        leave (also Ctrl-D, os.exit())
local ffi = require "ffi"
local pretty = require "lacos.pretty"
local util = require "lacos.util"   -- clocks and terminals come from the engine (engine/system.c)

local M = {}

M.prompt = "lacos> "
M.prompt2 = "  ...> "
M.keep_results = 10

local state = { timing = false }

-- Turns per-statement timing on or off; returns the setting.
function M.timing(on)
  if on ~= nil then state.timing = not not on end
  return state.timing
end

local function now() return util.clock() end

local function seconds(s)
  if s < 1e-3 then return ("%.1f us"):format(s * 1e6) end
  if s < 1 then return ("%.2f ms"):format(s * 1e3) end
  return ("%.3f s"):format(s)
end

-- ---------------------------------------------------------------- engine glue

local engine   -- lacos.engine (loaded by lacos.util already)
local function E()
  if engine == nil then
    local ok, e = pcall(require, "lacos.engine")
    engine = ok and e or false
  end
  return engine or nil
end

local function interrupt_pending()
  local e = E()
  return e and e.C.lacos_interrupt_pending() ~= 0
end

-- Re-arms the signal handling of the lacos executable after an interrupt
-- (a second Ctrl-C would otherwise exit); under plain luajit only the
-- engine's flag is cleared.
local function interrupt_reset()
  if not pcall(function() ffi.C.lacos_cli_signals_reset() end) then
    local e = E()
    if e then e.C.lacos_interrupt_clear() end
  end
end

local function is_interrupt(e)
  return type(e) == "string" and (e == "interrupted" or e:match("^[^\n]*interrupted") ~= nil)
end

-- ---------------------------------------------------------------- compile

local function pack(...) return { n = select("#", ...), ... } end

-- An error at the end of the input means the chunk may go on, except for an
-- unfinished quoted string (LuaJIT says "near '<eof>'" there too).
local function ends_early(err)
  return err:find("<eof>'?$") ~= nil and not err:find("unfinished string", 1, true)
end

-- compile(src) -> fn, "expr" | "stmt"; or nil, message, incomplete.
-- An expression is compiled as `return pack(<expr>\n)` rather than
-- `return <expr>` so that a call in it is not a tail call: its frame (and the
-- line of an error raised there) stays in tracebacks. fn takes pack as its
-- argument.
local PACK = "local __lacos_repl_pack = ...; return __lacos_repl_pack("
-- first_line: the input line the statement starts on (reading a pipe), so
-- that errors name that line of stdin rather than line 1 of the statement.
function M.compile(src, chunkname, first_line)
  chunkname = chunkname or "=stdin"
  local pad = first_line and first_line > 1 and ("\n"):rep(first_line - 1) or ""
  local expr = src:gsub("^%s*=", ""):gsub(";%s*$", "")   -- Lua 5.1's `=x` means `return x`
  local fn = loadstring(pad .. PACK .. expr .. "\n)", chunkname)
  if fn then return fn, "expr" end
  local err
  fn, err = loadstring(pad .. src, chunkname)
  if fn then return fn, "stmt" end
  return nil, err, ends_early(err)
end

-- ---------------------------------------------------------------- errors

-- The traceback of the user's frames only (not the REPL's, not lacos'
-- own), none when the error happened in the statement itself or is about
-- the user's input (util.user_traceback).
local function user_traceback(msg)
  local tb = require("lacos.util").user_traceback(msg, 3)
  return tb   -- not a tail call: the frame count above depends on this frame
end

local function error_text(e)
  if type(e) == "string" then return e end
  local mt = getmetatable(e)
  if type(mt) == "table" and mt.__tostring then
    local ok, s = pcall(tostring, e)
    if ok then return s end
  end
  if type(e) == "table" and type(e.message) == "string" then return e.message end
  return "(error object is a " .. type(e) .. " value: " .. pretty.format(e, { depth = 2, width = 1e9 }) .. ")"
end

local function handler(e)
  if is_interrupt(e) then return { interrupted = true } end
  return { message = user_traceback(error_text(e)) }
end

-- ---------------------------------------------------------------- output

local out = {
  color = false,
  write = function(s) io.stdout:write(s) end,
  err = function(s) io.stdout:flush() io.stderr:write(s) io.stderr:flush() end,
}

local function paint(code, s)
  if not out.color then return s end
  return "\27[" .. code .. "m" .. s .. "\27[0m"
end

-- Prints values as the REPL does (one per line when any spans lines, else tab-separated).
function M.print(...)
  local n = select("#", ...)
  local parts, multi = {}, false
  for i = 1, n do
    local s = pretty.format((select(i, ...)), { color = out.color })
    parts[i] = s
    if s:find("\n") then multi = true end
  end
  out.write(table.concat(parts, multi and "\n" or "\t") .. "\n")
end

-- ---------------------------------------------------------------- results

local results_count = 0
local function keep_result(v)
  results_count = results_count + 1
  local R = rawget(_G, "_RESULTS")
  if type(R) ~= "table" then R = {} rawset(_G, "_RESULTS", R) end
  R[results_count] = v
  R[results_count - M.keep_results] = nil   -- old results may hold big tensors
  rawset(_G, "_", v)
  rawset(_G, "_LAST", v)
end

-- ---------------------------------------------------------------- who()

local BASE_GLOBALS = {}
for w in ([[_G _VERSION arg assert bit collectgarbage coroutine debug dofile error gcinfo getfenv
  getmetatable io ipairs jit load loadfile loadstring math module newproxy next os package pairs
  pcall print rawequal rawget rawlen rawset require select setfenv setmetatable string table
  tonumber tostring type unpack xpcall ffi lacos who _ _LAST _RESULTS
  LACOS_HOME LACOS_LIB LACOS_EXE LACOS_ON_INTERRUPT]]):gmatch("%S+") do BASE_GLOBALS[w] = true end

-- who(): lists the user's globals (those neither Lua's nor the REPL's) with a short description.
function M.who()
  local names = {}
  for k in pairs(_G) do
    if type(k) == "string" and not BASE_GLOBALS[k] then names[#names + 1] = k end
  end
  table.sort(names)
  if #names == 0 then out.write("no user globals\n") return end
  local w = 0
  for _, k in ipairs(names) do if #k > w then w = #k end end
  for _, k in ipairs(names) do
    local s = pretty.format(rawget(_G, k), { depth = 2, items = 8, width = 1e9, strlen = 40 }):match("^[^\n]*")
    if #s > 70 then s = s:sub(1, 67) .. "..." end
    out.write(("  %-" .. w .. "s  %-8s %s\n"):format(k, type(rawget(_G, k)), s))
  end
end

-- ---------------------------------------------------------------- commands

M.help_text = [[
lacos REPL: type Lua; expressions print their value (a trailing ';' hides it).
  _, _LAST          the last result; _RESULTS[i] the i-th (the last 10 kept)
  ?name             help for a function or module: ?lacos.tensor.zeros, ?lacos_tensor_matmul
  ?                 this help
  who()             your globals
  $ command         run a shell command
  :time on|off      print the time each statement takes (also lacos.repl.timing(true))
  :quit             leave (also Ctrl-D or os.exit())
keys (on a terminal): Tab completes names, fields after '.', methods after ':' and file
  names inside strings; Up/Down and Ctrl-R search the history (kept in
  $XDG_STATE_HOME/lacos/history or ~/.lacos_history); Ctrl-C clears the line or stops
  the running statement (a second Ctrl-C while it runs exits); Ctrl-D leaves.
Unfinished statements continue on the next line (prompt "  ...>").]]

local function command(line)
  local c, rest = line:match("^:(%a+)%s*(.-)%s*$")
  if c == "time" then
    if rest == "on" then M.timing(true) elseif rest == "off" then M.timing(false)
    elseif rest ~= "" then out.err("usage: :time on|off\n") return false end
    out.write("timing is " .. (M.timing() and "on" or "off") .. "\n")
    return true
  elseif c == "quit" or c == "q" or c == "exit" then
    return "quit"
  elseif c == "help" then
    out.write(M.help_text .. "\n")
    return true
  elseif c == "who" then
    M.who()
    return true
  end
  out.err(("unknown REPL command :%s (try :time, :who, :help, :quit)\n"):format(c or line:sub(2)))
  return false
end

local function show_help(name)
  if name == "" then out.write(M.help_text .. "\n") return true end
  local text, err = require("lacos.help").lookup(name)
  if not text then out.err(err .. "\n") return false end
  out.write(text .. "\n")
  return true
end

local function shell(cmd)
  io.stdout:flush()
  local ok, how, code = os.execute(cmd)
  -- LuaJIT's os.execute returns the wait status as one number (5.1) or the 5.2 triple.
  local status = type(ok) == "number" and math.floor(ok / 256) or (ok and 0 or (code or 1))
  if status ~= 0 then out.err(("(exit status %d)\n"):format(status)) return false end
  return true
end

-- ---------------------------------------------------------------- evaluation

local function on_interrupt_raise() error("interrupted", 0) end
local function on_interrupt_quiet() end

-- Runs one complete chunk; returns true if it succeeded, false (and true
-- when an interrupt stopped it) if not.
local function notice(on) pcall(function() ffi.C.lacos_cli_interrupt_notice(on and 1 or 0) end) end

local function run(fn, kind, quiet)
  local t0, c0 = now(), os.clock()
  -- What is typed here runs in LuaJIT's interpreter, which checks for Ctrl-C
  -- at every instruction: a loop the JIT compiled would never see it. Code in
  -- modules keeps the compiler; if a statement is stuck there, the notice
  -- says that the next Ctrl-C quits.
  jit.off(fn, true)
  _G.LACOS_ON_INTERRUPT = on_interrupt_raise
  notice(true)
  local r = pack(xpcall(fn, handler, pack))
  notice(false)
  local ok = r[1]
  if ok and kind == "expr" then
    local v = r[2]
    r = { n = v.n + 1, true, unpack(v, 1, v.n) }
  end
  local t1, c1 = now(), os.clock()
  if ok and r.n > 1 then
    keep_result(r[2])
    if not quiet then
      -- Printing may be long (a big table): it can be interrupted too.
      local pok, perr = xpcall(function() M.print(unpack(r, 2, r.n)) end, handler)
      if not pok then ok, r[2] = false, perr end
    end
  end
  _G.LACOS_ON_INTERRUPT = on_interrupt_quiet
  if not ok then
    local e = r[2]
    -- a refused allocation: say which limit, after freeing the garbage
    if type(e) == "string" then e = require("lacos.cli").memory_message(e) or e end
    if type(e) == "table" and e.interrupted then out.err(paint("31", "interrupted") .. "\n")
    else out.err(paint("31", type(e) == "table" and e.message or tostring(e)) .. "\n") end
  end
  local interrupted = not ok and type(r[2]) == "table" and r[2].interrupted == true
  if interrupt_pending() or interrupted then interrupt_reset() end
  if state.timing then
    out.write(paint("90", ("(wall %s, cpu %s)"):format(seconds(t1 - t0), seconds(c1 - c0))) .. "\n")
  end
  return ok, interrupted
end

-- eval(src): evaluates a complete chunk as the REPL would, printing the
-- results; returns true on success, false on an error (and true when it was
-- an interrupt), nil and the message when the chunk is unfinished.
function M.eval(src, first_line)
  local quiet = src:match(";%s*$") ~= nil
  local fn, kind_or_err, incomplete = M.compile(src, nil, first_line)
  if not fn then
    if incomplete then return nil, kind_or_err end
    out.err(paint("31", kind_or_err) .. "\n")
    return false
  end
  return run(fn, kind_or_err, quiet)
end

-- ---------------------------------------------------------------- input

-- Plain lines through stdio. `prompt_to` is the file prompts go to (stderr
-- when stdout is redirected), nil for none.
local function plain_reader(prompt_to)
  return {
    read = function(prompt)
      if prompt_to then io.stdout:flush() prompt_to:write(prompt) prompt_to:flush() end
      local line, err, code = io.read("*l")
      if line == nil and err then
        E().C.lacos_stdin_clear_error()   -- clear the error so reading can go on
        if code == 4 then return nil, "interrupted" end   -- EINTR: Ctrl-C
        out.err("lacos: reading stdin: " .. tostring(err) .. "\n")
      end
      return line
    end,
    add = function() end,
  }
end

local function editing_reader()
  local edit = require "lacos.edit"
  local complete = require "lacos.complete"
  local ed, err = edit.open {
    name = "lacos",
    history = edit.history_path(),
    complete = function(text) return complete.complete(text) end,
  }
  if not ed then return nil, err end
  return {
    read = function(prompt) return ed:readline(prompt) end,
    add = function(line) ed:add_history(line) end,
  }
end

-- ---------------------------------------------------------------- the loop

-- start(opts): runs the REPL until end of input; returns the exit status.
-- opts.input = "tty" | "pipe" overrides the detection of a terminal on stdin.
function M.start(opts)
  opts = opts or {}
  local tty = util.isatty(0)
  if opts.input == "pipe" then tty = false elseif opts.input == "tty" then tty = true end
  out.color = tty and pretty.color_default()

  if rawget(_G, "lacos") == nil then
    local ok, l = pcall(require, "lacos")
    if ok then rawset(_G, "lacos", l) end
  end
  rawset(_G, "who", M.who)
  _G.LACOS_ON_INTERRUPT = on_interrupt_quiet

  local reader
  if tty then
    local why
    local term_out = util.isatty(1)
    if term_out then reader, why = editing_reader() end
    if not reader then
      if why then out.err("lacos: no line editing (libedit: " .. why .. "); reading plain lines\n") end
      reader = plain_reader(term_out and io.stdout or io.stderr)
    end
    local ok, lacos = pcall(require, "lacos")
    local banner = ("lacos %s REPL (%s). ? for help, Ctrl-D to leave.\n"):format(
      ok and lacos.version() or "?", jit and jit.version or _VERSION)
    if term_out then out.write(banner) else out.err(banner) end
  else
    reader = plain_reader(nil)
  end

  local failures = 0
  local buffer = nil
  local lineno, first_line = 0, nil   -- input lines read; where the pending statement starts
  while true do
    _G.LACOS_ON_INTERRUPT = on_interrupt_quiet
    local line, why = reader.read(buffer and M.prompt2 or M.prompt)
    if interrupt_pending() or why == "interrupted" then
      -- Ctrl-C at the prompt: drop the line (and any unfinished chunk).
      interrupt_reset()
      if not tty then out.err("interrupted\n") return 130 end
      out.write("\n")
      buffer = nil
      line = false
    end
    if line == nil then
      if buffer then
        local _, err = M.compile(buffer, nil, not tty and first_line or nil)
        out.err(paint("31", (err or "unfinished statement") .. " (at end of input)") .. "\n")
        failures = failures + 1
      end
      if tty then out.write("\n") end
      break
    end
    if line then
      lineno = lineno + 1
      if not buffer then first_line = lineno end
      reader.add(line)
      local ok = true
      if not buffer and line:match("^%s*%?") then
        ok = show_help(line:match("^%s*%?%s*(.-)%s*$"))
      elseif not buffer and line:match("^%s*%$") then
        ok = shell(line:match("^%s*%$%s*(.-)%s*$"))
      elseif not buffer and line:match("^:%a") then
        ok = command(line)
        if ok == "quit" then break end
      elseif not buffer and not line:find("%S") then
        ok = true
      else
        local src = buffer and (buffer .. "\n" .. line) or line
        local r, interrupted = M.eval(src, not tty and first_line or nil)
        if r == nil then buffer = src
        else buffer = nil ok = r end
        -- Reading a pipe, an interrupt stops everything (as it would a script).
        if interrupted == true and not tty then return 130 end
      end
      if ok == false then failures = failures + 1 end
    end
  end
  io.stdout:flush()
  if not tty and failures > 0 then return 1 end
  return 0
end
jit.off(M.start)

return M
