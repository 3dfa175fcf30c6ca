-- lacos.engine: the FFI binding to liblacos. It reads the engine's one
-- preprocessor-free header (engine/lacos.h) into ffi.cdef once, loads the
-- shared library once, and turns status codes into Lua errors. Every other
-- module goes through here; none re-declares C.
local ffi = require "ffi"

local M = {}

local function read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

local function home()
  if LACOS_HOME then return LACOS_HOME end
  local env = os.getenv("LACOS_HOME")
  if env and env ~= "" then return env end
  -- Running under plain luajit from the source tree: this file is lua/lacos/engine.lua.
  local src = debug.getinfo(1, "S").source:gsub("^@", "")
  return (src:gsub("/?lua/lacos/engine%.lua$", ""):gsub("^$", "."))
end

M.home = home()
local header_path = M.home .. "/engine/lacos.h"
local header = read(header_path)
if not header then error("lacos: cannot read the engine header " .. header_path .. " (set LACOS_HOME)", 0) end
ffi.cdef(header)
M.header = header_path

local libpath = LACOS_LIB or os.getenv("LACOS_LIB")
if not libpath or libpath == "" then
  for _, p in ipairs { M.home .. "/build/liblacos.so", M.home .. "/../../lib/liblacos.so" } do
    if read(p) then libpath = p break end
  end
end
local ok, lib = pcall(ffi.load, libpath or "lacos")
if not ok then error("lacos: cannot load the engine library " .. tostring(libpath) .. ": " .. tostring(lib), 0) end
M.C = lib
M.ffi = ffi

local C = lib

function M.last_error()
  local msg = ffi.string(C.lacos_last_error())
  if msg == "" then msg = ffi.string(C.lacos_status_name(C.lacos_last_status())) end
  return msg
end

-- check(status): raises the engine's last error as a Lua error. The message
-- already names the file and cause, so no Lua position is prepended.
function M.check(status)
  if status ~= 0 then error(M.last_error(), 0) end
end

-- Pointers-to-pointer for out-parameters, reused (the FFI call copies them out
-- before we read, and nothing here is re-entrant).
local outs = {}
function M.out(ctype)
  local o = outs[ctype]
  if not o then o = ffi.new(ctype .. "[1]") outs[ctype] = o end
  return o
end

return M
