-- lacos.util: small helpers shared by the Lua modules: option tables that
-- reject unknown keys, human-readable sizes, a TTY check.
local M = {}

M.REQUIRED = setmetatable({}, { __tostring = function() return "<required>" end })

local function sorted_keys(t)
  local ks = {}
  for k in pairs(t) do ks[#ks + 1] = tostring(k) end
  table.sort(ks)
  return ks
end

-- Validates an options table against defaults: unknown keys and type
-- mismatches raise an error naming `where`; missing keys take the default;
-- keys whose default is M.REQUIRED must be given. Defaults of nil type
-- are written as false for booleans. Returns a new table.
function M.options(opts, defaults, where, level)
  level = (level or 2) + 1
  if opts ~= nil and type(opts) ~= "table" then
    error(("%s: options must be a table, got %s"):format(where, type(opts)), level)
  end
  opts = opts or {}
  local out = {}
  for k, v in pairs(opts) do
    local d = defaults[k]
    if v == M.REQUIRED or v == M.ANY then
      -- the markers describe defaults; as a value one would leak into the result (found by fuzz_lua)
      error(("%s: option '%s' is given the %s marker instead of a value"):format(where, tostring(k), tostring(v)), level)
    end
    if d == nil then
      error(("%s: unknown option '%s' (valid: %s)"):format(where, tostring(k), table.concat(sorted_keys(defaults), ", ")), level)
    end
    if d ~= M.REQUIRED and d ~= M.ANY and type(d) ~= type(v) and not (type(d) == "boolean" and v == nil) then
      error(("%s: option '%s' must be a %s, got %s"):format(where, k, type(d), type(v)), level)
    end
    out[k] = v
  end
  for k, d in pairs(defaults) do
    if out[k] == nil then
      if d == M.REQUIRED then error(("%s: option '%s' is required"):format(where, k), level) end
      if d ~= M.ANY then out[k] = d end
    end
  end
  return out
end
-- A default that accepts any type (and may stay nil).
M.ANY = setmetatable({}, { __tostring = function() return "<any>" end })

function M.bytes(n)
  local units = { "B", "KiB", "MiB", "GiB", "TiB" }
  local i = 1
  while n >= 1024 and i < #units do n = n / 1024; i = i + 1 end
  return i == 1 and ("%d B"):format(n) or ("%.1f %s"):format(n, units[i])
end

-- Does the message start with a position in Lua code ("x.lua:12:",
-- "(command line):1:", "stdin:3:")? Errors about the user's input (raised by
-- the engine or by validation) start with the data file's name instead.
function M.lua_position(msg)
  return type(msg) == "string" and (msg:match("^[^\n]-%.lua:%d+:") or msg:match("^%(command line%):%d+:")
    or msg:match("^stdin:%d+:") or msg:match("^%[string [^\n]-%]:%d+:")) ~= nil
end

-- msg with the traceback a user can act on, for an error handler (level: 1
-- for the handler's caller). A bug in the user's code (a message that
-- starts with a position in Lua code) gets the frames of the user's code
-- only (not lacos' own Lua files, not C), up to the xpcall that ran it;
-- when it happened in the chunk itself there are none worth showing unless
-- opts.chunk asks for them (scripts and -e: "file:line: message" and a
-- traceback, as luajit prints; the REPL's statement is one line already).
-- An error that names no Lua position (about the user's input: the
-- engine's, a missing file, a corrupted database, a shape mismatch, or
-- lacos' own raised at level 0) is its message and, with opts.where, the
-- line of the user's code that led to it. A bug inside lacos keeps every
-- frame; LACOS_DEBUG=1 keeps every frame always.
function M.user_traceback(msg, level, opts)
  local debug_on = os.getenv("LACOS_DEBUG") and os.getenv("LACOS_DEBUG") ~= ""
  local home = rawget(_G, "LACOS_HOME")
  home = home and (home .. "/lua/") or nil
  local positioned = M.lua_position(msg)
  local in_lacos = debug_on or (home and msg:sub(1, #home) == home)
  local frames, interesting, first_user = {}, false, nil
  for line in debug.traceback("", (level or 1) + 1):gmatch("[^\n]+") do
    if line:find("in function 'xpcall'", 1, true) then break end
    local internal = line:find("^%s*%[C%]") or (home and line:find(home, 1, true))
    if not line:find("^stack traceback:") and (in_lacos or not internal) then
      frames[#frames + 1] = line
      if not internal then first_user = first_user or line:match("^%s*(.-:%d+):") end
      if not line:find("in main chunk") and not internal then interesting = true end
    end
  end
  if debug_on then return msg .. "\nstack traceback:\n" .. table.concat(frames, "\n") end
  if not positioned then
    if opts and opts.where and first_user then return ("%s\n  (at %s)"):format(msg, first_user) end
    return msg
  end
  if not interesting and not (opts and opts.chunk and #frames > 0) then return msg end
  return msg .. "\nstack traceback:\n" .. table.concat(frames, "\n")
end

local E = require "lacos.engine"
local ffi, C = E.ffi, E.C

function M.isatty(fd) return C.lacos_terminal_is(fd or 1) == 1 end

-- Seconds on the monotonic clock (durations), CPU seconds of this process,
-- seconds since the epoch.
function M.clock() return C.lacos_clock_monotonic() end
function M.cpu_clock() return C.lacos_clock_process() end
function M.wall_clock() return C.lacos_clock_wall() end

-- Files, directories and programs, never through a shell (engine/system.c):
-- a name from a user, a file or a database is only ever a name.
local KINDS = { [0] = false, "file", "directory", "other" }
-- "file", "directory", "other", or false when nothing is there.
function M.path_kind(path) return KINDS[C.lacos_path_kind(path)] end
function M.exists(path) return C.lacos_path_kind(path) ~= 0 end
function M.is_dir(path) return C.lacos_path_kind(path) == 2 end

-- Creates dir and its parents; errors name the directory and the cause.
function M.mkdir_p(dir) E.check(C.lacos_dir_make(dir)) end

-- The sorted names in dir (not "." and ".."); nil and the message when it
-- cannot be listed.
function M.listdir(dir)
  local buf, bytes = ffi.new("char *[1]"), ffi.new("double[1]")
  if C.lacos_dir_names(buf, bytes, dir) ~= 0 then return nil, E.last_error() end
  local all = ffi.string(buf[0], bytes[0])
  C.lacos_text_free(buf[0])
  local names = {}
  for name in all:gmatch("([^%z]*)%z") do names[#names + 1] = name end
  return names
end

-- path made absolute against the current directory (not resolved).
function M.absolute(path)
  local buf = ffi.new("char *[1]")
  E.check(C.lacos_path_absolute(buf, path))
  local s = ffi.string(buf[0])
  C.lacos_text_free(buf[0])
  return s
end

-- Sleeps `seconds`; returns true when an interrupt (Ctrl-C, SIGTERM) cut it short.
function M.sleep(seconds) return C.lacos_sleep(seconds) ~= 0 end

-- Runs argv like M.run and returns its exit status, stdout and stderr
-- (through temporary files, removed after).
function M.capture(argv, opts)
  local out, err = os.tmpname(), os.tmpname()
  local ok, status = pcall(M.run, argv, { stdin = opts and opts.stdin or "/dev/null", stdout = out, stderr = err })
  local function slurp(p)
    local f = io.open(p, "rb")
    local s = f and f:read("*a") or ""
    if f then f:close() end
    os.remove(p)
    return s
  end
  local o, e = slurp(out), slurp(err)
  if not ok then error(status, 0) end
  return status, o, e
end

-- A path as a program's argument: one that starts with '-' would read as an
-- option, so it gets a "./" in front.
function M.arg_path(p) return (p:sub(1, 1) == "-") and ("./" .. p) or p end

-- Runs argv[1] with the arguments argv[2..] (argv[1] looked up in PATH) and
-- waits; opts.stdin, opts.stdout, opts.stderr name files to read from or
-- write to. Returns the exit status (128 + signal when killed); raises an
-- error when the program cannot be started.
function M.run(argv, opts)
  opts = opts or {}
  local n = #argv
  local cargv = ffi.new("const char *[?]", n + 1)
  local keep = {}   -- the strings must outlive the call
  for i = 1, n do keep[i] = tostring(argv[i]); cargv[i - 1] = keep[i] end
  local code = ffi.new("int[1]")
  E.check(C.lacos_process_run(code, cargv, opts.stdin, opts.stdout, opts.stderr))
  local status = code[0]
  keep = nil
  return status
end

-- The lines of an open file, each without its "\n", never holding more than
-- about max_bytes of one line: f:lines() reads a 1 GB line whole before
-- anyone can look at its length. A line longer than max_bytes yields false
-- and the number of its bytes seen (more than max_bytes); the caller stops.
function M.bounded_lines(f, max_bytes)
  local buf, pos, eof = "", 1, false
  return function()
    while true do
      local nl = buf:find("\n", pos, true)
      if nl then
        local line = buf:sub(pos, nl - 1)
        pos = nl + 1
        if #line > max_bytes then return false, #line end
        return line
      end
      local rest = #buf - pos + 1
      if rest > max_bytes then return false, rest end
      if eof then
        if rest == 0 then return nil end
        local line = buf:sub(pos)
        buf, pos = "", 1
        return line
      end
      local chunk = f:read(65536)
      if chunk then buf, pos = buf:sub(pos) .. chunk, 1 else eof = true end
    end
  end
end

-- Copies a file whole; errors name the file and the cause.
function M.copy_file(src, dst)
  local f, err = io.open(src, "rb")
  if not f then error(("%s: %s"):format(src, err), 0) end
  local data = f:read("*a")
  f:close()
  local g, err2 = io.open(dst, "wb")
  if not g then error(("%s: %s"):format(dst, err2), 0) end
  local ok, err3 = g:write(data)
  g:close()
  if not ok then error(("%s: %s"):format(dst, err3), 0) end
end

return M
