-- lacos.json: JSON for the Lua side through lua-cjson (Debian's lua-cjson),
-- plus a stable encoder (sorted keys, optional indentation) for files that
-- people read and diff and for canonical config hashes.
local ok, cjson = pcall(require, "cjson")
if not ok then
  error("lacos: the Lua module cjson is missing; install Debian's lua-cjson (make deps does)", 0)
end
local M = {}
M.null = cjson.null
cjson.encode_sparse_array(true)
cjson.encode_number_precision(14)   -- only used for scalars inside cjson; our encoder formats numbers itself
cjson.decode_invalid_numbers(false)

-- Decodes text; errors name `where` (a file name) and the position.
function M.decode(text, where)
  local ok2, v = pcall(cjson.decode, text)
  if not ok2 then
    local msg = tostring(v):gsub("^.-: ", "")
    -- cjson counts characters; people look for lines
    local at = tonumber(msg:match("at character (%d+)"))
    local line = at and type(text) == "string" and select(2, text:sub(1, at - 1):gsub("\n", "")) + 1
    error(("%s%s: invalid JSON: %s"):format(where or "(string)", line and (":" .. line) or "", msg), 0)
  end
  return v
end

function M.read(path)
  local f, err = io.open(path, "rb")
  if not f then error(("%s: %s"):format(path, err and err:gsub("^[^:]*: ", "") or "cannot open"), 0) end
  local s = f:read("*a")
  f:close()
  return M.decode(s, path)
end

local function is_array(t)
  local n = 0
  for k in pairs(t) do
    if type(k) ~= "number" or k < 1 or k % 1 ~= 0 then return false end
    n = n + 1
  end
  for i = 1, n do if t[i] == nil then return false end end
  return true, n
end

local function encode(v, indent, level, out)
  local tv = type(v)
  if tv == "table" and v ~= cjson.null then
    local arr, n = is_array(v)
    local nl = indent and ("\n" .. (" "):rep(indent * (level + 1))) or ""
    local close = indent and ("\n" .. (" "):rep(indent * level)) or ""
    if arr then
      if n == 0 then out[#out + 1] = "[]" return end
      out[#out + 1] = "["
      for i = 1, n do
        out[#out + 1] = (i > 1 and "," or "") .. nl
        encode(v[i], indent, level + 1, out)
      end
      out[#out + 1] = close .. "]"
    else
      local keys = {}
      for k in pairs(v) do
        if type(k) ~= "string" then error("json: object keys must be strings, got " .. type(k), 0) end
        keys[#keys + 1] = k
      end
      table.sort(keys)
      if #keys == 0 then out[#out + 1] = "{}" return end
      out[#out + 1] = "{"
      for i, k in ipairs(keys) do
        out[#out + 1] = (i > 1 and "," or "") .. nl .. cjson.encode(k) .. (indent and ": " or ":")
        encode(v[k], indent, level + 1, out)
      end
      out[#out + 1] = close .. "}"
    end
  elseif tv == "number" then
    if v ~= v or v == math.huge or v == -math.huge then error("json: cannot encode non-finite number " .. tostring(v), 0) end
    if v == math.floor(v) and math.abs(v) < 2 ^ 53 then out[#out + 1] = ("%d"):format(v)
    else
      local s = ("%.15g"):format(v)   -- the shortest form that reads back exactly
      if tonumber(s) ~= v then s = ("%.16g"):format(v) end
      if tonumber(s) ~= v then s = ("%.17g"):format(v) end
      out[#out + 1] = s
    end
  elseif tv == "string" or tv == "boolean" or v == nil or v == cjson.null then
    out[#out + 1] = cjson.encode(v)
  else
    error("json: cannot encode a " .. tv, 0)
  end
end

-- Stable encoding: keys sorted, integers without exponent, doubles in the
-- shortest form that reads back exactly. opts.indent = 2 for people.
function M.encode(v, opts)
  local out = {}
  encode(v, opts and opts.indent, 0, out)
  return table.concat(out)
end

-- Writes v as a JSON file, atomically and checked (lacos.util.write_file):
-- a failure raises an error naming path and leaves the old file in place.
function M.write(path, v, opts)
  require("lacos.util").write_file(path, M.encode(v, opts or { indent = 2 }) .. "\n")
end

return M
