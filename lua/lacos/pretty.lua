-- lacos.pretty: readable text for any Lua value, as the REPL prints results.
--
-- Tables print with their array part first, then the other keys sorted
-- (numbers, strings, then the rest), on one line when they fit the width,
-- else one entry per line; tables already on the path print as <cycle>,
-- tables deeper than `depth` as {...} and entries past `items` as a count.
-- Strings are quoted with escapes, functions show where they are defined,
-- lacos tensors use their own tostring (shape, dtype, device, a truncated
-- view of the values; just the first line inside a table), other cdata
-- their ctype and address. Colour comes only when asked for.
--
--   pretty.format(v [, { color = false, depth = 5, items = 50, width = 80, strlen = 200 }])
--   pretty.color_default()   -- true when stdout is a terminal and NO_COLOR is unset
local ffi = require "ffi"

local M = {}

local COLORS = {
  string = "32", number = "36", boolean = "35", ["nil"] = "35",
  ["function"] = "33", cdata = "33", userdata = "33", thread = "33",
  tensor = "34", meta = "90",
}

local defaults = { color = false, depth = 5, items = 50, width = 80, strlen = 200 }

local KEYWORDS = {}
for w in ([[and break do else elseif end false for function goto if in local nil not or repeat return then true until while]]):gmatch("%S+") do
  KEYWORDS[w] = true
end
M.KEYWORDS = KEYWORDS

local function is_identifier(s)
  return type(s) == "string" and s:match("^[%a_][%w_]*$") ~= nil and not KEYWORDS[s]
end
M.is_identifier = is_identifier

local ESC = { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n", ["\t"] = "\\t", ["\r"] = "\\r", ["\0"] = "\\0" }

-- A Lua string literal for s (double-quoted; control bytes escaped, UTF-8 kept).
function M.quote(s, max)
  local cut = ""
  if max and #s > max then
    cut = ("...(%d more bytes)"):format(#s - max)
    s = s:sub(1, max)
  end
  s = s:gsub('[%c"\\]', function(c) return ESC[c] or ("\\%03d"):format(c:byte()) end)
  return '"' .. s .. '"' .. cut
end

local home_prefix
local function short_source(src)
  if src:sub(1, 1) == "@" then
    src = src:sub(2)
    home_prefix = home_prefix or ((rawget(_G, "LACOS_HOME") or "") .. "/")
    if #home_prefix > 1 and src:sub(1, #home_prefix) == home_prefix then src = src:sub(#home_prefix + 1) end
    return src
  end
  if src:sub(1, 1) == "=" then return src:sub(2) end
  return "[string]"
end

-- "function: builtin" or "function: lua/lacos/tensor.lua:97".
function M.function_name(f)
  local info = debug.getinfo(f, "S")
  if not info or info.what == "C" then return "function: builtin" end
  return ("function: %s:%d"):format(short_source(info.source), info.linedefined)
end

local tensor_ctype
local function is_tensor(v)
  if tensor_ctype == nil then
    local T = package.loaded["lacos.tensor"]
    if not T then return false end
    tensor_ctype = T.ctype or false
  end
  return tensor_ctype and ffi.istype(tensor_ctype, v)
end
M.is_tensor = is_tensor

local function paint(o, kind, s)
  if not o.color then return s end
  return "\27[" .. COLORS[kind] .. "m" .. s .. "\27[0m"
end

local TYPE_ORDER = { number = 1, string = 2, boolean = 3 }
local function key_less(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return (TYPE_ORDER[ta] or 9) < (TYPE_ORDER[tb] or 9) or
    ((TYPE_ORDER[ta] or 9) == (TYPE_ORDER[tb] or 9) and ta < tb) end
  if ta == "number" or ta == "string" then return a < b end
  if ta == "boolean" then return (not a) and b end
  return tostring(a) < tostring(b)
end

-- Splits a table into its array part (1..n without holes) and its other keys, sorted.
local function entries(t)
  local n = 0
  while rawget(t, n + 1) ~= nil do n = n + 1 end
  local keys = {}
  for k in pairs(t) do
    if not (type(k) == "number" and k >= 1 and k <= n and k == math.floor(k)) then keys[#keys + 1] = k end
  end
  -- Sorting a huge table would stall the REPL for a few entries shown.
  if #keys <= 20000 then table.sort(keys, key_less) end
  return n, keys
end

local format_value

local function scalar(v, o, nested)
  local tv = type(v)
  if tv == "string" then return paint(o, "string", M.quote(v, nested and o.strlen or nil)) end
  if tv == "number" or tv == "boolean" or tv == "nil" then return paint(o, tv, tostring(v)) end
  if tv == "function" then return paint(o, "function", M.function_name(v)) end
  if tv == "cdata" then
    if is_tensor(v) then
      local ok, s = pcall(tostring, v)
      if not ok then s = "lacos.tensor [" .. tostring(s) .. "]" end
      if nested then s = s:match("^[^\n]*") end
      return paint(o, "tensor", s)
    end
    return paint(o, "cdata", tostring(v))
  end
  return paint(o, tv, tostring(v))
end

local function key_text(k, o)
  if is_identifier(k) then return k end
  if type(k) == "string" then return "[" .. paint(o, "string", M.quote(k, o.strlen)) .. "]" end
  if type(k) == "table" then return "[" .. paint(o, "meta", tostring(k)) .. "]" end
  return "[" .. scalar(k, o, true) .. "]"
end

-- The visible length of s (colour escapes do not count).
local function width(s) return #(s:gsub("\27%[[%d;]*m", "")) end

local function table_text(t, o, depth, indent, path)
  local mt = getmetatable(t)
  if type(mt) == "table" and rawget(mt, "__tostring") then
    local ok, s = pcall(tostring, t)
    if ok and type(s) == "string" then return s end
  end
  if path[t] then return paint(o, "meta", "<cycle>") end
  local n, keys = entries(t)
  local total = n + #keys
  if total == 0 then return "{}" end
  if depth > o.depth then return paint(o, "meta", ("{...(%d %s)}"):format(total, total == 1 and "entry" or "entries")) end
  path[t] = true
  local parts, shown = {}, 0
  local inner = indent .. "  "
  for i = 1, n do
    if shown >= o.items then break end
    parts[#parts + 1] = format_value(t[i], o, depth + 1, inner, path)
    shown = shown + 1
  end
  for _, k in ipairs(keys) do
    if shown >= o.items then break end
    parts[#parts + 1] = key_text(k, o) .. " = " .. format_value(rawget(t, k), o, depth + 1, inner, path)
    shown = shown + 1
  end
  path[t] = nil
  if total > shown then parts[#parts + 1] = paint(o, "meta", ("...(%d more)"):format(total - shown)) end
  local one = "{" .. table.concat(parts, ", ") .. "}"
  if not one:find("\n") and #indent + width(one) <= o.width then return one end
  return "{\n" .. inner .. table.concat(parts, ",\n" .. inner) .. ",\n" .. indent .. "}"
end

format_value = function(v, o, depth, indent, path)
  if type(v) == "table" then return table_text(v, o, depth, indent, path) end
  return scalar(v, o, depth > 1)
end

local function options(opts)
  local o = {}
  for k, d in pairs(defaults) do o[k] = d end
  for k, v in pairs(opts or {}) do
    if defaults[k] == nil then error("pretty.format: unknown option '" .. tostring(k) .. "'", 3) end
    o[k] = v
  end
  return o
end

-- format(v [, opts]): the text of v as the REPL prints it (see the top of this file for opts).
function M.format(v, opts)
  local o = options(opts)
  return format_value(v, o, 1, "", {})
end

-- Whether the REPL should colour its output: stdout is a terminal, TERM is
-- not "dumb" and NO_COLOR is unset or empty (https://no-color.org).
function M.color_default()
  local nc = os.getenv("NO_COLOR")
  if nc and nc ~= "" then return false end
  if os.getenv("TERM") == "dumb" then return false end
  return require("lacos.util").isatty(1)
end

return M
