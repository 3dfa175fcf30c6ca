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

-- A parameter count as the README and the tables write it: 2.2M, 559M, 1.7B.
function M.params(n)
  if type(n) ~= "number" or n <= 0 then return "?" end
  if n >= 1e9 then return ("%.1fB"):format(n / 1e9) end
  if n >= 1e8 then return ("%.0fM"):format(n / 1e6) end
  if n >= 1e6 then return ("%.1fM"):format(n / 1e6) end
  if n >= 1e3 then return ("%.1fK"):format(n / 1e3) end
  return ("%d"):format(n)
end

-- A duration in seconds in human units: 850 ms, 12.3 s, 4 min 05 s, 2 h 03 min.
function M.duration(s)
  if type(s) ~= "number" or s ~= s then return "?" end
  if s < 1 then return ("%.0f ms"):format(s * 1000) end
  if s < 60 then return ("%.1f s"):format(s) end
  if s < 3600 then
    local m = math.floor(s / 60)
    return ("%d min %02d s"):format(m, math.floor(s - 60 * m))
  end
  local h = math.floor(s / 3600)
  return ("%d h %02d min"):format(h, math.floor((s - 3600 * h) / 60))
end

-- A whole number with thousands separators: 12,000.
function M.thousands(n)
  local s = ("%d"):format(n)
  local neg = s:sub(1, 1) == "-"
  if neg then s = s:sub(2) end
  s = s:reverse():gsub("(%d%d%d)", "%1,"):reverse():gsub("^,", "")
  return (neg and "-" or "") .. s
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
local KINDS = { [C.LACOS_PATH_NONE] = false, [C.LACOS_PATH_FILE] = "file", [C.LACOS_PATH_DIR] = "directory",
                [C.LACOS_PATH_OTHER] = "other" }
-- "file", "directory", "other", or false when nothing is there.
function M.path_kind(path) return KINDS[C.lacos_path_kind(path)] end
function M.exists(path) return C.lacos_path_kind(path) ~= C.LACOS_PATH_NONE end
function M.is_dir(path) return C.lacos_path_kind(path) == C.LACOS_PATH_DIR end

-- The absolute form of a path: the real path when it exists, else its
-- parent's joined with its name, else the working directory's.
function M.abspath(path)
  local buf = ffi.new("char *[1]")
  E.check(C.lacos_path_absolute(buf, path))
  local s = ffi.string(buf[0])
  C.lacos_text_free(buf[0])
  return s
end

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

-- A string as a gnuplot string literal that gnuplot takes as it is.
-- gnuplot substitutes `command` (runs it) and @macro on its command lines,
-- and interprets backslashes, inside double-quoted strings; inside single
-- quotes it does neither (gnuplot's "quote marks" and "substitution"
-- documentation), a quote being written twice. A command line ends at a
-- newline, so control characters go outside the quotes, each as a
-- double-quoted octal escape ("\012": no backquote, no @), concatenated
-- with gnuplot's string operator: 'a'."\012".'b'. Use it for every file
-- name, title and label given to gnuplot.
function M.gnuplot_string(s)
  s = tostring(s)
  local parts, plain = {}, {}
  local function flush()
    parts[#parts + 1] = "'" .. table.concat(plain):gsub("'", "''") .. "'"
    plain = {}
  end
  for i = 1, #s do
    local b = s:byte(i)
    if b < 32 or b == 127 then
      flush()
      parts[#parts + 1] = ('"\\%03o"'):format(b)
    else
      plain[#plain + 1] = string.char(b)
    end
  end
  flush()
  return table.concat(parts, ".")
end

-- A name from a file or a database, safe to print to a terminal: control
-- characters (ESC starts the terminal's escape sequences, CR rewrites the
-- line), DEL, the C1 controls and bytes that are not UTF-8 are shown as
-- escapes (\n, \t, \r, \x1b, \xc2\x9b), everything else as it is.
-- opts.newlines keeps "\n" (for multi-line text).
function M.printable(s, opts)
  s = tostring(s)
  local keep_nl = opts and opts.newlines
  local names = { [9] = "\\t", [10] = "\\n", [13] = "\\r" }
  local out, i, n = {}, 1, #s
  while i <= n do
    local b = s:byte(i)
    local len = b < 0x80 and 1 or (b >= 0xc2 and b <= 0xdf and 2) or (b >= 0xe0 and b <= 0xef and 3)
                or (b >= 0xf0 and b <= 0xf4 and 4) or 0
    local ok = len > 0 and i + len - 1 <= n
    for k = i + 1, i + len - 1 do
      if ok then local c = s:byte(k); ok = c >= 0x80 and c <= 0xbf end
    end
    if ok and len == 3 then
      local c = s:byte(i + 1)
      ok = not ((b == 0xe0 and c < 0xa0) or (b == 0xed and c > 0x9f))   -- overlong, surrogates
    elseif ok and len == 4 then
      local c = s:byte(i + 1)
      ok = not ((b == 0xf0 and c < 0x90) or (b == 0xf4 and c > 0x8f))
    end
    if ok and len == 2 and b == 0xc2 and s:byte(i + 1) <= 0x9f then ok = false end   -- C1 controls
    if ok and len == 1 and (b < 32 or b == 127) and not (keep_nl and b == 10) then ok = false end
    if ok then
      out[#out + 1] = s:sub(i, i + len - 1)
      i = i + len
    elseif len == 2 and b == 0xc2 and i + 1 <= n and s:byte(i + 1) >= 0x80 and s:byte(i + 1) <= 0x9f then
      out[#out + 1] = ("\\xc2\\x%02x"):format(s:byte(i + 1))
      i = i + 2
    else
      out[#out + 1] = names[b] or ("\\x%02x"):format(b)
      i = i + 1
    end
  end
  return table.concat(out)
end

-- A string made into one safe file-name component: '/' and control
-- characters become '_' (a name from a database must not reach other
-- directories: "../x"), and an empty or dot-only name gets a '_'.
function M.file_name(s)
  s = tostring(s):gsub("[%z\1-\31/\127]", "_")
  if s == "" or s:match("^%.+$") then s = "_" .. s end
  return s
end

-- Writes data (a string) to path atomically and checked (engine/fileio.c's
-- lacos_file_write: a temporary, fsync, rename): a full disk or any other
-- failure raises an error naming path and the cause and leaves path as it
-- was, never an empty or cut file. Every file lacos writes from Lua goes
-- through here.
function M.write_file(path, data)
  E.check(C.lacos_file_write(path, data, #data))
end

-- Directory locks (engine/system.c's lacos_dir_lock): held by this process
-- until released, re-entrant (a lock of a directory this process holds
-- already is counted, not taken twice). Returns the lock, with :release();
-- raises an error naming the holder's pid and host when another process
-- holds it. A lock that a dead process left is taken over, with a note on
-- stderr naming it.
local held_locks = {}
local Lock = {}
Lock.__index = Lock
function Lock:release()
  if self.released then return end
  self.released = true
  local h = held_locks[self.dir]
  if not h then return end
  h.count = h.count - 1
  if h.count == 0 then
    held_locks[self.dir] = nil
    C.lacos_dir_unlock(h.handle, self.dir)
  end
end
function M.lock_dir(dir, opts)
  local h = held_locks[dir]
  if not h then
    local handle, prev = ffi.new("int[1]"), ffi.new("char[512]")
    E.check(C.lacos_dir_lock(handle, dir, prev, 512))
    h = { handle = handle[0], count = 0 }
    held_locks[dir] = h
    local stale = ffi.string(prev)
    if stale ~= "" and not (opts and opts.quiet) then
      io.stderr:write(("lacos: %s: taking over the lock that %s left (that process is gone)\n"):format(M.printable(dir), M.printable(stale)))
    end
  end
  h.count = h.count + 1
  return setmetatable({ dir = dir }, Lock)
end

-- Builds an output directory whole (engine/fileio.c's lacos_dir_*): dir
-- must be new or empty, or replace set (then it is replaced whole); fill
-- (tmp) writes the files into a temporary sibling, which is renamed into
-- place when fill returns. On any error the temporary is removed, dir is
-- left as it was, and the error is raised again. force_hint names the
-- switch that replaces a non-empty dir, for the message that refuses it.
function M.build_dir(dir, replace, fill, force_hint)
  if C.lacos_dir_check_output(dir, replace and 1 or 0) ~= 0 then
    local msg = E.last_error()
    if force_hint and msg:find("not empty", 1, true) then msg = ("%s (%s replaces it)"):format(msg, force_hint) end
    error(msg, 0)
  end
  local buf = ffi.new("char[?]", 4352)
  E.check(C.lacos_dir_temp(buf, 4352, dir))
  local tmp = ffi.string(buf)
  local ok, err = pcall(fill, tmp)
  if ok then ok, err = pcall(function() E.check(C.lacos_dir_commit(tmp, dir, replace and 1 or 0)) end) end
  if not ok then
    C.lacos_dir_remove(tmp)
    error(err, 0)
  end
  return dir
end

-- Copies a file whole (the copy written as M.write_file does); errors name
-- the file and the cause.
function M.copy_file(src, dst)
  local f, err = io.open(src, "rb")
  if not f then error(("%s: %s"):format(src, err), 0) end
  local data, rerr = f:read("*a")
  f:close()
  if not data then error(("%s: %s"):format(src, tostring(rerr)), 0) end
  M.write_file(dst, data)
end

return M
