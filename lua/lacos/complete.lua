-- lacos.complete: tab completion for the REPL. Given the word before the
-- cursor it returns the words that can replace it:
--   bare names        globals and Lua keywords           ma      -> math
--   after '.'         fields of the table (with those its metatable's
--                     __index tables provide; lazily loaded submodules;
--                     tensor methods and properties)     math.fl -> math.floor
--   after ':'         the methods only                   x:su    -> x:sum
--   in a string       file names                         "tests/l -> "tests/lua/
-- and the character to append when there is just one: "(" after a function,
-- "/" is already part of a directory, the closing quote after a file.
-- Nothing here calls functions of the user's; it only indexes values.
local pretty = require "lacos.pretty"
local util = require "lacos.util"

local M = {}

-- Characters that end a name: operators, brackets, separators, quotes.
local SPLIT = "[%s%(%)%[%]{},;=%-+*/%%^#<>~&|\"']"

local KEYWORD_LIST = {}
for k in pairs(pretty.KEYWORDS) do KEYWORD_LIST[#KEYWORD_LIST + 1] = k end

local function safe_index(v, k)
  local ok, r = pcall(function() return v[k] end)
  if ok then return r end
end

-- The string keys a value offers for completion, as a set.
local function keys_of(v)
  local out = {}
  local tv = type(v)
  if tv == "table" then
    local seen = {}
    local t, hops = v, 0
    while type(t) == "table" and not seen[t] and hops < 8 do
      seen[t] = true
      for k in pairs(t) do if type(k) == "string" then out[k] = true end end
      local sub = t == package.loaded.lacos and t.submodules or rawget(t, "submodules")   -- lacos: submodules load on first index
      if type(sub) == "table" then for k in pairs(sub) do if type(k) == "string" then out[k] = true end end end
      local mt = getmetatable(t)
      t = type(mt) == "table" and rawget(mt, "__index") or nil
      hops = hops + 1
    end
  elseif tv == "string" then
    for k in pairs(string) do out[k] = true end
  elseif tv == "cdata" and pretty.is_tensor(v) then
    for k in pairs(require("lacos.tensor").methods) do out[k] = true end
    for _, k in ipairs { "dtype", "device", "ndim", "shape", "t" } do out[k] = true end
  end
  return out
end

local function sorted(set)
  local l = {}
  for k in pairs(set) do l[#l + 1] = k end
  table.sort(l)
  return l
end

-- ---------------------------------------------------------------- file names

local function list_dir(dir) return util.listdir(dir == "" and "." or dir) or {} end
local is_dir = util.is_dir

local function complete_path(quote, partial)
  local dir, base = partial:match("^(.*/)([^/]*)$")
  if not dir then dir, base = "", partial end
  local out = {}
  for _, n in ipairs(list_dir(dir)) do
    if n:sub(1, #base) == base and (base:sub(1, 1) == "." or n:sub(1, 1) ~= ".") then
      local full = dir .. n
      out[#out + 1] = quote .. full .. (is_dir(full) and "/" or "")
    end
  end
  local append = nil
  if #out == 1 and out[1]:sub(-1) ~= "/" then append = quote end
  return out, append
end

-- ---------------------------------------------------------------- names

-- complete(text [, env]) -> list of replacements for text, character to
-- append after a single match (or nil).
function M.complete(text, env)
  env = env or _G
  local q = text:match("^([\"'])")
  if q and not text:find(q, 2, true) then return complete_path(q, text:sub(2)) end
  -- Words reach here unbroken at operators (they occur in file names):
  -- complete what follows the last one and keep the rest.
  local pre, rest = text:match("^(.*" .. SPLIT .. ")(" .. SPLIT:gsub("^%[", "[^") .. "*)$")
  if not pre then pre, rest = text:match("^(.*%.%.)(.*)$") end
  if pre then
    local list, append = M.complete(rest, env)
    for i, w in ipairs(list) do list[i] = pre .. w end
    return list, append
  end

  local head, sep, partial = text:match("^(.-)([%.:])([%w_]*)$")
  local out = {}
  local value_of = {}
  if not head then
    if not text:match("^[%a_]?[%w_]*$") then return {} end
    partial = text
    for k in pairs(keys_of(env)) do
      if pretty.is_identifier(k) and k:sub(1, #partial) == partial then out[#out + 1] = k value_of[k] = rawget(env, k) end
    end
    for _, k in ipairs(KEYWORD_LIST) do
      if k:sub(1, #partial) == partial then out[#out + 1] = k end
    end
    table.sort(out)
  else
    -- head must be a plain dotted name: a or a.b.c
    if not head:match("^[%a_][%w_]*$") and not head:match("^[%a_][%w_]*[%w_%.]*[%w_]$") then return {} end
    if head:find("%.%.") then return {} end
    local v = env
    for part in head:gmatch("[^%.]+") do
      v = safe_index(v, part)
      if v == nil then return {} end
    end
    for _, k in ipairs(sorted(keys_of(v))) do
      if pretty.is_identifier(k) and k:sub(1, #partial) == partial and not k:match("^__") then
        -- Only methods after ':'; after '.' names are listed without indexing
        -- (which would load every lazily loaded submodule).
        if sep == ":" then
          local fv = safe_index(v, k)
          if type(fv) == "function" then out[#out + 1] = head .. sep .. k value_of[head .. sep .. k] = fv end
        else
          out[#out + 1] = head .. sep .. k
        end
      end
    end
    if sep == "." and #out == 1 then value_of[out[1]] = safe_index(v, out[1]:match("([%w_]+)$")) end
  end
  local append
  if #out == 1 then
    local v = value_of[out[1]]
    if type(v) == "function" then append = "("
    elseif pretty.KEYWORDS[out[1]] then append = " " end
  end
  return out, append
end

return M
