-- httpd.lua: a loopback HTTP/1.1 server for the download tests, in LuaJIT
-- FFI over POSIX sockets (so `make test` needs no Python or extra package).
--
--   lacos run tests/lua/httpd.lua ROOT PORTFILE LOGFILE [IDLE_SECONDS]
--
-- Binds 127.0.0.1 on a free port, writes the port to PORTFILE, serves files
-- under ROOT one connection at a time (Connection: close) and logs
-- "METHOD PATH RANGE" per request to LOGFILE. It exits on GET /quit, on
-- SIGTERM/SIGINT, or after IDLE_SECONDS (default 60) without a request.
-- Test paths:
--   /FILE                  the file, honouring Range (206, or 416 past the end);
--                          a folder is served as its index.json
--   /norange/FILE          the file, always 200 (a server that ignores Range)
--   /cutonce/N/FILE        the first request for it sends N body bytes of the
--                          reply, then closes (a dropped connection); later
--                          requests are served normally
--   /redirect/PATH         302 to /PATH
--   /status/CODE/...       an empty reply with that status
local ffi = require "ffi"
local E = require "lacos.engine"

ffi.cdef [[
typedef unsigned int socklen_t;
struct lacos_sockaddr_in { uint16_t sin_family; uint16_t sin_port; uint32_t sin_addr; uint8_t zero[8]; };
struct lacos_pollfd { int fd; short events; short revents; };
int socket(int domain, int type, int protocol);
int setsockopt(int fd, int level, int name, const void *val, socklen_t len);
int bind(int fd, const void *addr, socklen_t len);
int listen(int fd, int backlog);
int accept(int fd, void *addr, socklen_t *len);
int getsockname(int fd, void *addr, socklen_t *len);
long recv(int fd, void *buf, size_t n, int flags);
long send(int fd, const void *buf, size_t n, int flags);
int close(int fd);
int poll(struct lacos_pollfd *fds, unsigned long n, int timeout);
uint16_t htons(uint16_t x);
uint16_t ntohs(uint16_t x);
]]
local C = ffi.C
local AF_INET, SOCK_STREAM, SOL_SOCKET, SO_REUSEADDR, POLLIN, MSG_NOSIGNAL = 2, 1, 1, 2, 1, 0x4000

local root, portfile, logfile, idle = arg[1], arg[2], arg[3], tonumber(arg[4] or "60")
assert(root and portfile and logfile, "usage: httpd.lua ROOT PORTFILE LOGFILE [IDLE_SECONDS]")

local srv = C.socket(AF_INET, SOCK_STREAM, 0)
assert(srv >= 0, "socket failed")
local one = ffi.new("int[1]", 1)
C.setsockopt(srv, SOL_SOCKET, SO_REUSEADDR, one, 4)
local addr = ffi.new("struct lacos_sockaddr_in")
addr.sin_family = AF_INET
addr.sin_port = 0
addr.sin_addr = 0x0100007f   -- 127.0.0.1 in network order on little-endian hosts
assert(ffi.abi("le"), "httpd.lua assumes a little-endian host")
assert(C.bind(srv, addr, ffi.sizeof(addr)) == 0, "bind failed")
assert(C.listen(srv, 16) == 0, "listen failed")
local len = ffi.new("socklen_t[1]", ffi.sizeof(addr))
C.getsockname(srv, addr, len)
local port = C.ntohs(addr.sin_port)
do
  local f = assert(io.open(portfile .. ".tmp", "w"))
  f:write(tostring(port), "\n")
  f:close()
  os.rename(portfile .. ".tmp", portfile)
end

local function log(line)
  local f = io.open(logfile, "a")
  if f then f:write(line, "\n") f:close() end
end

local function send_all(fd, s)
  local p, n = ffi.cast("const char*", s), #s
  local off = 0
  while off < n do
    local k = C.send(fd, p + off, n - off, MSG_NOSIGNAL)
    if k <= 0 then return false end
    off = off + k
  end
  return true
end

local function read_request(fd)
  local buf = ffi.new("char[4096]")
  local got = {}
  local total = 0
  local pfd = ffi.new("struct lacos_pollfd[1]")
  pfd[0].fd, pfd[0].events = fd, POLLIN
  while true do
    if C.poll(pfd, 1, 5000) <= 0 then return nil end
    local k = C.recv(fd, buf, 4096, 0)
    if k <= 0 then return nil end
    got[#got + 1] = ffi.string(buf, k)
    total = total + k
    local s = table.concat(got)
    if s:find("\r\n\r\n", 1, true) then return s end
    if total > 65536 then return nil end
  end
end

local reasons = { [200] = "OK", [206] = "Partial Content", [302] = "Found", [404] = "Not Found",
                  [416] = "Range Not Satisfiable", [500] = "Internal Server Error", [403] = "Forbidden" }
local function head(code, headers)
  local t = { ("HTTP/1.1 %d %s"):format(code, reasons[code] or "Status") }
  for _, h in ipairs(headers or {}) do t[#t + 1] = h end
  t[#t + 1] = "Connection: close"
  return table.concat(t, "\r\n") .. "\r\n\r\n"
end

local cut_seen = {}

local function serve_file(fd, rel, range, opts)
  if rel:find("%.%.") then send_all(fd, head(403, { "Content-Length: 0" })) return end
  -- a path that is also a folder (the hub's tree/REV listing, with
  -- tree/REV/FOLDER listings below it) is served from its index.json
  local f = io.open(root .. "/" .. rel .. "/index.json", "rb") or io.open(root .. "/" .. rel, "rb")
  if not f then send_all(fd, head(404, { "Content-Length: 0" })) return end
  local size = f:seek("end")
  local first, last = 0, size - 1
  local code = 200
  if range and not opts.norange then
    local a, b = range:match("^bytes=(%d+)%-(%d*)$")
    if a then
      a = tonumber(a)
      if a >= size then
        f:close()
        send_all(fd, head(416, { "Content-Range: bytes */" .. size, "Content-Length: 0" }))
        return
      end
      first, last = a, (b ~= "" and math.min(tonumber(b), size - 1)) or size - 1
      code = 206
    end
  end
  local headers = { "Content-Length: " .. (last - first + 1), "Content-Type: application/octet-stream",
                    "Accept-Ranges: bytes" }
  if code == 206 then headers[#headers + 1] = ("Content-Range: bytes %d-%d/%d"):format(first, last, size) end
  if not send_all(fd, head(code, headers)) then f:close() return end
  f:seek("set", first)
  local left = last - first + 1
  local limit = opts.cut
  while left > 0 do
    local n = math.min(left, 65536)
    if limit then n = math.min(n, limit) end
    if n <= 0 then break end
    local chunk = f:read(n)
    if not chunk or not send_all(fd, chunk) then break end
    left = left - #chunk
    if limit then limit = limit - #chunk end
  end
  f:close()
end

local function handle(fd)
  local req = read_request(fd)
  if not req then return end
  local method, path = req:match("^(%u+) (%S+) HTTP/1%.%d\r\n")
  local range = req:match("\r\n[Rr]ange: *([^\r\n]+)")
  log(("%s %s %s"):format(method or "?", path or "?", range or "-"))
  if not path then send_all(fd, head(500, { "Content-Length: 0" })) return end
  if path == "/quit" then send_all(fd, head(200, { "Content-Length: 0" })) return "quit" end
  local code = path:match("^/status/(%d+)")
  if code then send_all(fd, head(tonumber(code), { "Content-Length: 0" })) return end
  local target = path:match("^/redirect(/.*)$")
  if target then send_all(fd, head(302, { "Location: " .. target, "Content-Length: 0" })) return end
  local rel = path:match("^/norange/(.+)$")
  if rel then return serve_file(fd, rel, range, { norange = true }) end
  local n, rest = path:match("^/cutonce/(%d+)/(.+)$")
  if n then
    if cut_seen[path] then return serve_file(fd, rest, range, {}) end
    cut_seen[path] = true
    return serve_file(fd, rest, range, { cut = tonumber(n) })
  end
  return serve_file(fd, path:sub(2), range, {})
end

local pfd = ffi.new("struct lacos_pollfd[1]")
pfd[0].fd, pfd[0].events = srv, POLLIN
local waited = 0
while true do
  if E.C.lacos_interrupt_pending() ~= 0 then break end
  local r = C.poll(pfd, 1, 200)
  if r > 0 then
    waited = 0
    local fd = C.accept(srv, nil, nil)
    if fd >= 0 then
      local ok, res = pcall(handle, fd)
      C.close(fd)
      if not ok then log("error: " .. tostring(res)) end
      if res == "quit" then break end
    end
  else
    waited = waited + 0.2
    if waited >= idle then break end
  end
end
C.close(srv)
