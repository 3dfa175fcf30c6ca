-- lacos.pairs: training examples as (anchor, positive[, negative]) rows.
--
--   local d = lacos.pairs.read("train.tsv")           -- anchor TAB positive [TAB hard-negative]
--   local d = lacos.pairs.from_list{{"a", "p"}, {"b", "q", "n"}}
--   d:size(), d:get(i) -> anchor, positive, negative-or-nil, d:take(n), d:has_negatives()
--
-- Files are UTF-8, one example per line; a trailing CR is dropped, a UTF-8
-- BOM on the first line is dropped, blank lines are skipped, and every other
-- malformed line is an error naming file:line.
local M = {}
local Pairs = {}
Pairs.__index = Pairs

local function new(rows, source)
  local neg = 0
  for _, r in ipairs(rows) do if r[3] then neg = neg + 1 end end
  if neg ~= 0 and neg ~= #rows then
    error(("%s: %d of %d examples have a hard negative; give one to every example or to none"):format(source, neg, #rows), 3)
  end
  return setmetatable({ rows = rows, source = source, negatives = neg > 0 }, Pairs)
end

function M.from_list(list, source)
  local rows = {}
  for i, r in ipairs(list) do
    if type(r) ~= "table" or type(r[1]) ~= "string" or type(r[2]) ~= "string" or (r[3] ~= nil and type(r[3]) ~= "string") then
      error(("%s: example %d must be {anchor, positive[, negative]} strings"):format(source or "pairs", i), 2)
    end
    rows[i] = { r[1], r[2], r[3] }
  end
  return new(rows, source or "pairs")
end

-- The byte offset (1-based) of the first byte that breaks UTF-8 in s, or
-- nil. Overlong forms, surrogates and code points past U+10FFFF are invalid
-- (the tokenizer refuses them too; caught here the error can name the line).
local function bad_utf8(s)
  if not s:find("[\128-\255]") then return nil end
  local i, n = 1, #s
  while i <= n do
    local c = s:byte(i)
    if c < 0x80 then i = i + 1
    else
      local len, lo, hi = 0, 0x80, 0xBF
      if c >= 0xC2 and c <= 0xDF then len = 2
      elseif c >= 0xE0 and c <= 0xEF then len = 3
        if c == 0xE0 then lo = 0xA0 elseif c == 0xED then hi = 0x9F end
      elseif c >= 0xF0 and c <= 0xF4 then len = 4
        if c == 0xF0 then lo = 0x90 elseif c == 0xF4 then hi = 0x8F end
      else return i end
      for k = 1, len - 1 do
        local b = s:byte(i + k)
        if not b then return i end
        if k == 1 then if b < lo or b > hi then return i + k end
        elseif b < 0x80 or b > 0xBF then return i + k end
      end
      i = i + len
    end
  end
  return nil
end
M.bad_utf8 = bad_utf8

function M.read(path, opts)
  opts = opts or {}
  local f, err = io.open(path, "rb")
  if not f then error(("%s: %s"):format(path, (err or "cannot open"):gsub("^[^:]*: ", "")), 0) end
  local rows, n = {}, 0
  local max_line = opts.max_line_bytes or 1048576
  for line in f:lines() do
    n = n + 1
    if #line > max_line then
      f:close()
      error(("%s:%d: line of %d bytes exceeds the limit of %d"):format(path, n, #line, max_line), 0)
    end
    if n == 1 then line = line:gsub("^\239\187\191", "") end
    line = line:gsub("\r$", "")
    if line:match("%S") then
      local fields = {}
      for field in (line .. "\t"):gmatch("([^\t]*)\t") do fields[#fields + 1] = field end
      if #fields < 2 or #fields > 3 then
        f:close()
        error(("%s:%d: expected 2 or 3 TAB-separated fields (anchor, positive[, negative]), found %d"):format(path, n, #fields), 0)
      end
      for k, v in ipairs(fields) do
        if v == "" then f:close(); error(("%s:%d: field %d is empty"):format(path, n, k), 0) end
        local at = bad_utf8(v)
        if at then
          f:close()
          -- byte offsets from 0, as the tokenizer counts them
          error(("%s:%d: field %d: invalid UTF-8 at byte %d (0x%02x)"):format(path, n, k, at - 1, v:byte(at) or 0), 0)
        end
      end
      rows[#rows + 1] = fields
    end
  end
  f:close()
  if #rows == 0 then error(("%s: no examples"):format(path), 0) end
  return new(rows, path)
end

function Pairs:size() return #self.rows end
function Pairs:has_negatives() return self.negatives end
function Pairs:get(i) local r = self.rows[i] return r[1], r[2], r[3] end
-- The first n examples (for data-amount sweeps).
function Pairs:take(n)
  if n >= #self.rows then return self end
  local rows = {}
  for i = 1, n do rows[i] = self.rows[i] end
  return setmetatable({ rows = rows, source = self.source, negatives = self.negatives }, Pairs)
end
-- A stable fingerprint of the contents (recorded with runs).
function Pairs:digest()
  local ffi = require "ffi"
  local E = require "lacos.engine"
  local parts = {}
  for i, r in ipairs(self.rows) do parts[i] = table.concat(r, "\t") end
  local s = table.concat(parts, "\n")
  local hex = ffi.new("char[65]")
  E.check(E.C.lacos_sha256_buffer(s, #s, hex))
  return ffi.string(hex)
end

return M
