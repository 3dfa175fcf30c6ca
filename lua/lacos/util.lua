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

local ffi = require "ffi"
pcall(ffi.cdef, "int isatty(int fd);")
function M.isatty(fd) return ffi.C.isatty(fd or 1) == 1 end

return M
