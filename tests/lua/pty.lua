-- pty: runs a program on a pseudo-terminal for tests, through the FFI
-- (posix_openpt + posix_spawn, so no fork of the LuaJIT process and no
-- external tool such as expect or script). The child gets the pty as its
-- controlling terminal (a new session opens the slave), a 80x24 window and
-- default signal dispositions. Every wait has a deadline; close() kills the
-- child if it is still running.
--
--   local P = require "pty"
--   local p = P.spawn({ "build/lacos" }, { HOME = "/tmp/x", TERM = "xterm" })
--   p:expect("lacos> ", 5)           -- waits until the screen shows it
--   p:send("1+1\r")
--   local status = p:wait(5)         -- exit status, or nil on timeout
--   p:close()
local ffi = require "ffi"
local bit = require "bit"

local function cdef(s) pcall(ffi.cdef, s) end
cdef "int posix_openpt(int flags);"
cdef "int grantpt(int fd);"
cdef "int unlockpt(int fd);"
cdef "char *ptsname(int fd);"
cdef "int close(int fd);"
cdef "long read(int fd, void *buf, size_t n);"
cdef "long write(int fd, const void *buf, size_t n);"
cdef "int ioctl(int fd, unsigned long req, ...);"
cdef "struct pollfd { int fd; short events; short revents; };"
cdef "int poll(struct pollfd *fds, unsigned long n, int timeout);"
cdef "int posix_spawn_file_actions_init(void *fa);"
cdef "int posix_spawn_file_actions_destroy(void *fa);"
cdef "int posix_spawn_file_actions_addopen(void *fa, int fd, const char *path, int oflag, unsigned int mode);"
cdef "int posix_spawn_file_actions_adddup2(void *fa, int fd, int newfd);"
cdef "int posix_spawnattr_init(void *a);"
cdef "int posix_spawnattr_destroy(void *a);"
cdef "int posix_spawnattr_setflags(void *a, short flags);"
cdef "int posix_spawnattr_setsigdefault(void *a, const void *set);"
cdef "int posix_spawnattr_setsigmask(void *a, const void *set);"
cdef "int sigemptyset(void *set);"
cdef "int sigfillset(void *set);"
cdef "int posix_spawn(int *pid, const char *path, const void *fa, const void *attr, char *const argv[], char *const envp[]);"
cdef "int waitpid(int pid, int *status, int options);"
cdef "int kill(int pid, int sig);"
cdef "extern char **environ;"
cdef "struct lacos_pty_winsize { unsigned short rows, cols, xpixel, ypixel; };"
cdef "struct lacos_pty_timespec { long sec; long nsec; };"
cdef "int clock_gettime(int clk, struct lacos_pty_timespec *ts);"
local C = ffi.C

local O_RDWR, O_NOCTTY, O_CLOEXEC = 2, 256, 524288
local POLLIN = 1
local POSIX_SPAWN_SETSIGDEF, POSIX_SPAWN_SETSIGMASK, POSIX_SPAWN_SETSID = 0x04, 0x08, 0x80
local TIOCSWINSZ = 0x5414
local WNOHANG = 1
local SIGKILL, SIGINT = 9, 2

local M = {}

local function now()
  local ts = ffi.new("struct lacos_pty_timespec")
  C.clock_gettime(1, ts)
  return tonumber(ts.sec) + tonumber(ts.nsec) * 1e-9
end
M.now = now

-- Renders terminal output as the screen would show it, without limits on
-- height or width: carriage return, newline, backspace, tab, the cursor
-- movements (CSI n A/B/C/D/G/H) and erasures (CSI K, CSI J) line editors use
-- to redraw; colours and other sequences are dropped. Returns the lines.
function M.render(s)
  local lines, row, col = { {} }, 1, 0
  local function line(r) lines[r] = lines[r] or {} return lines[r] end
  local i, n = 1, #s
  while i <= n do
    local c = s:sub(i, i)
    if c == "\27" then
      local params, final, stop = s:match("^%[([%d;?]*)([%a@])()", i + 1)
      if params then
        local a = tonumber(params:match("^%??(%d+)")) or 1
        if final == "A" then row = math.max(1, row - a)
        elseif final == "B" then row = row + a
        elseif final == "C" then col = col + a
        elseif final == "D" then col = math.max(0, col - a)
        elseif final == "G" then col = a - 1
        elseif final == "H" then
          local r, cc = params:match("^(%d*);?(%d*)$")
          row, col = tonumber(r) or 1, (tonumber(cc) or 1) - 1
        elseif final == "K" then
          local l = line(row)
          local mode = tonumber(params) or 0
          if mode == 0 then for k = col + 1, #l do l[k] = nil end
          elseif mode == 2 then lines[row] = {} end
        elseif final == "J" then
          local l = line(row)
          for k = col + 1, #l do l[k] = nil end
          for r = row + 1, #lines do lines[r] = nil end
        end
        i = stop
      else
        i = i + 2   -- a two-byte escape (ESC = and the like)
      end
    elseif c == "\r" then col = 0 i = i + 1
    elseif c == "\n" then row = row + 1 col = 0 i = i + 1
    elseif c == "\b" then col = math.max(0, col - 1) i = i + 1
    elseif c == "\t" then col = (math.floor(col / 8) + 1) * 8 i = i + 1
    elseif c:byte() < 32 or c:byte() == 127 then i = i + 1
    else
      local l = line(row)
      for k = #l + 1, col do l[k] = " " end
      l[col + 1] = c
      col = col + 1
      i = i + 1
    end
  end
  local out = {}
  for r = 1, math.max(row, #lines) do out[r] = table.concat(lines[r] or {}) end
  return out
end

-- The rendered screen as one string (lines joined with newlines).
function M.plain(s) return table.concat(M.render(s), "\n") end

local Pty = {}
Pty.__index = Pty

-- spawn(argv, env_overrides): argv[1] is the program path. env_overrides
-- entries replace (or, with value false, remove) variables of this process's
-- environment.
function M.spawn(argv, env)
  local master = C.posix_openpt(bit.bor(O_RDWR, O_NOCTTY, O_CLOEXEC))
  if master < 0 then return nil, "posix_openpt failed" end
  if C.grantpt(master) ~= 0 or C.unlockpt(master) ~= 0 then C.close(master) return nil, "grantpt/unlockpt failed" end
  local slave = ffi.string(C.ptsname(master))
  local ws = ffi.new("struct lacos_pty_winsize", 24, 80, 0, 0)
  C.ioctl(master, TIOCSWINSZ, ws)

  -- The environment: ours, with the overrides applied.
  local vars, order = {}, {}
  local i = 0
  while C.environ[i] ~= nil do
    local kv = ffi.string(C.environ[i])
    local k = kv:match("^([^=]*)=")
    if k and not vars[k] then vars[k] = kv order[#order + 1] = k end
    i = i + 1
  end
  for k, v in pairs(env or {}) do
    if not vars[k] then order[#order + 1] = k end
    vars[k] = v and (k .. "=" .. v) or false
  end
  local envs = {}
  for _, k in ipairs(order) do if vars[k] then envs[#envs + 1] = vars[k] end end
  local envp = ffi.new("char *[?]", #envs + 1)
  local keep = {}
  for j, s in ipairs(envs) do keep[j] = ffi.new("char[?]", #s + 1, s) envp[j - 1] = keep[j] end
  local argvp = ffi.new("char *[?]", #argv + 1)
  for j, s in ipairs(argv) do keep[#keep + 1] = ffi.new("char[?]", #s + 1, s) argvp[j - 1] = keep[#keep] end

  local fa = ffi.new("char[256]")
  local attr = ffi.new("char[512]")
  local sigs, none = ffi.new("char[256]"), ffi.new("char[256]")
  C.posix_spawn_file_actions_init(fa)
  C.posix_spawn_file_actions_addopen(fa, 0, slave, O_RDWR, 0)
  C.posix_spawn_file_actions_adddup2(fa, 0, 1)
  C.posix_spawn_file_actions_adddup2(fa, 0, 2)
  C.posix_spawnattr_init(attr)
  C.sigfillset(sigs)
  C.sigemptyset(none)
  C.posix_spawnattr_setsigdefault(attr, sigs)
  C.posix_spawnattr_setsigmask(attr, none)
  C.posix_spawnattr_setflags(attr, bit.bor(POSIX_SPAWN_SETSID, POSIX_SPAWN_SETSIGDEF, POSIX_SPAWN_SETSIGMASK))
  local pid = ffi.new("int[1]")
  local rc = C.posix_spawn(pid, argv[1], fa, attr, argvp, envp)
  C.posix_spawn_file_actions_destroy(fa)
  C.posix_spawnattr_destroy(attr)
  if rc ~= 0 then C.close(master) return nil, "posix_spawn failed for " .. argv[1] .. " (error " .. rc .. ")" end
  return setmetatable({ fd = master, pid = pid[0], out = "", mark = 1 }, Pty)
end

-- Reads what is available within `timeout` seconds; returns false at EOF
-- (the child closed the terminal).
function Pty:pump(timeout)
  if self.eof then return false end
  local pfd = ffi.new("struct pollfd[1]")
  pfd[0].fd, pfd[0].events = self.fd, POLLIN
  local n = C.poll(pfd, 1, math.max(0, math.floor(timeout * 1000)))
  if n <= 0 then return true end
  local buf = ffi.new("char[4096]")
  local got = C.read(self.fd, buf, 4096)
  if got <= 0 then self.eof = true return false end
  self.out = self.out .. ffi.string(buf, got)
  return true
end

-- The screen as text: all of it, or what follows the mark.
function Pty:text(all)
  local t = M.plain(self.out)
  return all and t or t:sub(self.mark)
end

-- Waits until the screen text after the mark contains `needle` (plain text; a
-- Lua pattern when `is_pattern`). On success moves the mark past the match
-- and returns true; on timeout or end of output returns false and the text
-- seen after the mark.
function Pty:expect(needle, timeout, is_pattern)
  local deadline = now() + (timeout or 5)
  while true do
    local text = M.plain(self.out)
    local s, e = text:find(needle, self.mark, not is_pattern)
    if s then
      self.mark = e + 1
      return true, text:sub(s, e)
    end
    local left = deadline - now()
    if left <= 0 or self.eof then return false, text:sub(self.mark) end
    self:pump(math.min(left, 0.2))
  end
end

-- Waits until the screen's last line (the one being edited) contains
-- `needle`; returns true, or false and that line. The mark does not move.
function Pty:expect_line(needle, timeout)
  local deadline = now() + (timeout or 5)
  while true do
    local lines = M.render(self.out)
    local last = lines[#lines] or ""
    if last:find(needle, 1, true) then return true, last end
    local left = deadline - now()
    if left <= 0 or self.eof then return false, last end
    self:pump(math.min(left, 0.2))
  end
end

-- Moves the mark to the end of the screen text.
function Pty:skip() self.mark = #M.plain(self.out) + 1 end

-- Reads output for `seconds` (lets the child settle before the next keys).
function Pty:settle(seconds)
  local deadline = now() + (seconds or 0.2)
  while now() < deadline and self:pump(deadline - now()) do end
end

function Pty:send(s)
  local w = C.write(self.fd, s, #s)
  return w == #s
end

-- Sends SIGINT to the child (as Ctrl-C would through the line discipline).
function Pty:interrupt() C.kill(self.pid, SIGINT) end

-- Waits for the child to exit; returns its exit status (128+signal when
-- killed), or nil on timeout.
function Pty:wait(timeout)
  if self.status then return self.status end
  local deadline = now() + (timeout or 5)
  local st = ffi.new("int[1]")
  while true do
    local r = C.waitpid(self.pid, st, WNOHANG)
    if r == self.pid then
      local s = st[0]
      if bit.band(s, 0x7f) == 0 then self.status = bit.band(bit.rshift(s, 8), 0xff)
      else self.status = 128 + bit.band(s, 0x7f) end
      self:pump(0)
      return self.status
    end
    if now() > deadline then return nil end
    self:pump(0.05)
  end
end

function Pty:close()
  if not self.status then
    C.kill(self.pid, SIGKILL)
    self:wait(2)
  end
  if self.fd >= 0 then C.close(self.fd) self.fd = -1 end
end

return M
