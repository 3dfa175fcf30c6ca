-- lacos.pairs: training examples, one kind per dataset, matching what a
-- loss consumes (its `columns`):
--   "pairs"     (anchor, positive[, hard negative])  MNRL: in-batch negatives
--   "scored"    (sentence1, sentence2, score)        CoSENT: any real score, higher = more similar
--   "labelled"  (premise, hypothesis, label)         the softmax classifier: label 0..k-1
--                                                    (entailment 0, neutral 1, contradiction 2)
--
--   local d = lacos.pairs.read("train.tsv")                          -- anchor TAB positive [TAB hard-negative]
--   local d = lacos.pairs.read("sts.tsv", {kind = "scored"})         -- sentence1 TAB sentence2 TAB score
--   local d = lacos.pairs.read("sts-train.csv", {kind = "scored", format = "stsb"})
--   local d = lacos.pairs.read("nli.tsv", {kind = "labelled"})       -- premise TAB hypothesis TAB label name
--   local d = lacos.pairs.from_list{{"a", "p"}, {"b", "q", "n"}}
--   local d = lacos.pairs.from_list({{"a", "b", 4.5}, {"c", "d", 0.5}}, {kind = "scored"})
--   local d = lacos.pairs.from_list({{"a", "b", "entailment"}, {"c", "d", 2}}, {kind = "labelled"})
--   d.kind, d:size(), d:get(i) -> s1, s2, negative-or-nil, score-or-label-or-nil,
--   d:target(i), d:take(n), d:has_negatives()
--
-- The pairs TSV is read here: UTF-8, one example per line; a trailing CR is
-- dropped, a UTF-8 BOM on the first line is dropped, blank lines are
-- skipped, and every other malformed line is an error naming file:line.
-- Scored and labelled files (and `format`, any lacos.data.read_pairs layout)
-- go through the engine's readers (engine/datasets.c), which report the
-- same way.
local util = require "lacos.util"
local M = {}
local Pairs = {}
Pairs.__index = Pairs

local KINDS = { pairs = true, scored = true, labelled = true }
M.KINDS = KINDS

local function new(rows, source, kind, targets)
  local neg = 0
  for _, r in ipairs(rows) do if r[3] then neg = neg + 1 end end
  if neg ~= 0 and neg ~= #rows then
    error(("%s: %d of %d examples have a hard negative; give one to every example or to none"):format(source, neg, #rows), 3)
  end
  return setmetatable({ rows = rows, source = source, negatives = neg > 0, kind = kind or "pairs", targets = targets }, Pairs)
end

-- A label given as a name (entailment, neutral, contradiction, any case) or
-- a whole number >= 0; returns the number or nil.
local function label_value(v)
  if type(v) == "number" then
    if v >= 0 and v == math.floor(v) and v < 2 ^ 31 then return v end
    return nil
  end
  if type(v) == "string" then
    local names = require("lacos.data").LABEL_NAMES
    local low = v:lower()
    for k, name in pairs(names) do if name == low then return k end end
  end
  return nil
end

-- list: {s1, s2[, negative]} (pairs), {s1, s2, score} (scored) or {s1, s2,
-- label} (labelled). opts: {kind =, source =}, or the source name alone.
function M.from_list(list, opts)
  if type(opts) == "string" or opts == nil then opts = { source = opts } end
  if type(opts) ~= "table" then error("lacos.pairs.from_list: the second argument must be {kind =, source =} or a name", 2) end
  for k in pairs(opts) do
    if k ~= "kind" and k ~= "source" then error(("lacos.pairs.from_list: unknown option '%s' (valid: kind, source)"):format(tostring(k)), 2) end
  end
  local kind, source = opts.kind or "pairs", opts.source or "pairs"
  if not KINDS[kind] then
    error(("lacos.pairs.from_list: kind must be pairs, scored or labelled, got '%s'"):format(tostring(kind)), 2)
  end
  if type(list) ~= "table" then error("lacos.pairs.from_list: expected a list of examples", 2) end
  local rows, targets = {}, kind ~= "pairs" and {} or nil
  for i, r in ipairs(list) do
    if type(r) ~= "table" or type(r[1]) ~= "string" or type(r[2]) ~= "string" then
      error(("%s: example %d must start with two strings"):format(source, i), 2)
    end
    if kind == "pairs" then
      if r[3] ~= nil and type(r[3]) ~= "string" then
        error(("%s: example %d must be {anchor, positive[, negative]} strings"):format(source, i), 2)
      end
      rows[i] = { r[1], r[2], r[3] }
    elseif kind == "scored" then
      local y = r[3]
      if type(y) ~= "number" or y ~= y or y == math.huge or y == -math.huge then
        error(("%s: example %d must be {sentence1, sentence2, score} with a finite number as score, got %s"):format(
          source, i, type(y) == "number" and tostring(y) or type(y)), 2)
      end
      rows[i], targets[i] = { r[1], r[2] }, y
    else
      local y = label_value(r[3])
      if not y then
        error(("%s: example %d: label %s is not entailment, neutral, contradiction or a whole number >= 0"):format(
          source, i, type(r[3]) == "string" and ("'" .. r[3] .. "'") or tostring(r[3])), 2)
      end
      rows[i], targets[i] = { r[1], r[2] }, y
    end
  end
  return new(rows, source, kind, targets)
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

-- opts: kind (pairs, scored, labelled), header (the first line is a
-- header: skipped), format (a lacos.data.read_pairs layout such as stsb,
-- sick, allnli, jsonl, csv; defaults: the pairs TSV, "generic" for scored,
-- "nli" for labelled), labels (how a labelled file writes its labels: nli
-- names, int or binary), max_line_bytes.
function M.read(path, opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("lacos.pairs.read: options must be a table", 2) end
  for k in pairs(opts) do
    if not ({ kind = 1, header = 1, format = 1, labels = 1, max_line_bytes = 1 })[k] then
      error(("lacos.pairs.read: unknown option '%s' (valid: format, header, kind, labels, max_line_bytes)"):format(tostring(k)), 2)
    end
  end
  local kind = opts.kind or "pairs"
  if not KINDS[kind] then error(("lacos.pairs.read: kind must be pairs, scored or labelled, got '%s'"):format(tostring(kind)), 2) end
  if kind ~= "pairs" or opts.format ~= nil then
    local data = require "lacos.data"
    local fmt = opts.format or (kind == "scored" and "generic" or kind == "labelled" and "nli" or "pairs")
    local set = data.read_pairs(path, { format = fmt, header = opts.header, labels = opts.labels,
                                        max_line_bytes = opts.max_line_bytes })
    if kind == "pairs" then
      -- NLI pairs are not (anchor, positive) pairs: a contradiction would train as a positive
      for i = 0, set.n - 1 do
        if set.recs[i].label >= 0 then
          set:free()
          error(("%s: the %s layout holds labelled pairs (premise, hypothesis, label), not (anchor, positive) pairs; " ..
                 "they train the softmax classifier (kind = \"labelled\", lacos train --loss softmax), or make " ..
                 "triplets with lacos.data.nli_triplets")
                :format(path, fmt), 0)
        end
      end
    end
    local ok, d = pcall(set.to_pairs, set, kind)
    set:free()
    if not ok then error(d, 0) end
    return d
  end
  local f, err = io.open(path, "rb")
  if not f then error(("%s: %s"):format(path, (err or "cannot open"):gsub("^[^:]*: ", "")), 0) end
  local rows, n = {}, 0
  local max_line = opts.max_line_bytes or 1048576
  for line, seen in util.bounded_lines(f, max_line) do
    n = n + 1
    if not line then
      f:close()
      error(("%s:%d: line of more than %d bytes (%d read) exceeds the limit"):format(path, n, max_line, seen), 0)
    end
    if n == 1 then line = line:gsub("^\239\187\191", "") end
    line = line:gsub("\r$", "")
    if line:match("%S") and not (n == 1 and opts.header) then
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
-- s1, s2, the hard negative (pairs) and the score or label (scored, labelled).
function Pairs:get(i)
  local r = self.rows[i]
  return r[1], r[2], r[3], self.targets and self.targets[i] or nil
end
-- The score (scored) or label (labelled) of example i; nil for pairs.
function Pairs:target(i) return self.targets and self.targets[i] or nil end
-- The first n examples (for data-amount sweeps).
function Pairs:take(n)
  if n >= #self.rows then return self end
  local rows, targets = {}, self.targets and {} or nil
  for i = 1, n do
    rows[i] = self.rows[i]
    if targets then targets[i] = self.targets[i] end
  end
  return setmetatable({ rows = rows, source = self.source, negatives = self.negatives, kind = self.kind,
                        targets = targets }, Pairs)
end
-- What one example holds, for messages.
local DESCRIBE = {
  pairs = "(anchor, positive) pairs", scored = "scored pairs (sentence1, sentence2, score)",
  labelled = "labelled pairs (premise, hypothesis, label)",
}
function Pairs:describe()
  if self.kind == "pairs" and self.negatives then return "(anchor, positive, hard negative) triplets" end
  return DESCRIBE[self.kind]
end
M.DESCRIBE = DESCRIBE
-- A stable fingerprint of the contents (recorded with runs); a scored or
-- labelled set adds its kind and each example's score or label.
function Pairs:digest()
  local ffi = require "ffi"
  local E = require "lacos.engine"
  local parts = {}
  for i, r in ipairs(self.rows) do
    parts[i] = table.concat(r, "\t")
    if self.targets then parts[i] = parts[i] .. "\t" .. ("%.17g"):format(self.targets[i]) end
  end
  if self.kind ~= "pairs" then table.insert(parts, 1, self.kind) end
  local s = table.concat(parts, "\n")
  local hex = ffi.new("char[65]")
  E.check(E.C.lacos_sha256_buffer(s, #s, hex))
  return ffi.string(hex)
end

return M
