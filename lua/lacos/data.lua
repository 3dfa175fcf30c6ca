-- lacos.data: datasets for STS evaluation and NLI training.
--
--   local data = lacos.data
--   data.root()                          the data root: set_root(), LACOS_DATA, else <lacos>/datasets
--   data.registry()                      the registry: built-in datasets/registry.json plus
--                                        <root>/registry.local.json (user sets, same schema)
--   local s = data.load("stsb", { split = "test" })
--   s:size(); s:get(i) -> s1, s2, score, label; for i, s1, s2, score in s:iter() do ... end
--   data.load("sts17", { track = "ar-en" })        -- "track2", "ar-en" or the MTEB name "en-ar"
--   data.load("stsb-multi-mt", { split = "test", lang = "de" })
--   data.read_pairs("my.tsv", { format = "generic" })    -- sentence1 TAB sentence2 TAB score
--   data.read_pairs("x.csv", { format = "stsb", header = true })
--   data.nli_triplets("snli-infersent", { split = "dev" })  -- (anchor, positive, negative)
--   data.nli_pairs("snli-infersent", { split = "dev" })     -- (premise, hypothesis, label) for lacos.loss.softmax
--   data.load("stsb", { split = "train" }):to_pairs("scored")  -- (s1, s2, score) for lacos.loss.cosent
--   data.status("stsb"), data.pull("stsb")
--
-- Sets are read by the engine (engine/datasets.c) into one record array plus
-- a text arena; get(i) makes the Lua strings on demand. Sentences are
-- trimmed of leading/trailing whitespace unless trim = false (PITFALLS §15).
local E = require "lacos.engine"
local util = require "lacos.util"
local json = require "lacos.json"
local ffi, C, check = E.ffi, E.C, E.check

local M = {}

-- ---------------------------------------------------------------- paths

local root_override
-- Sets the data root for this process (the commands' --data DIR).
function M.set_root(dir) root_override = dir end

function M.root(dir)
  if dir then return dir end
  if root_override then return root_override end
  local env = os.getenv("LACOS_DATA")
  if env and env ~= "" then return env end
  return E.home .. "/datasets"
end

local function join(a, b) return (a:gsub("/+$", "")) .. "/" .. b end
M.join = join

local function file_size(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local ok, size = pcall(f.seek, f, "end")
  f:close()
  if not ok then return nil end
  return size
end
M.file_size = file_size

local function sha256_file(path)
  local hex = ffi.new("char[65]")
  check(C.lacos_sha256_file(path, hex))
  return ffi.string(hex)
end
M.sha256_file = sha256_file

-- Runs a helper program (tar, unzip, gzip) with an argument vector, never a
-- shell; its error output is kept for the message.
local function run(argv, what, stdout)
  local errfile = os.tmpname()
  local code = util.run(argv, { stdout = stdout, stderr = errfile })
  local f = io.open(errfile, "rb")
  local err = f and f:read("*a") or ""
  if f then f:close() end
  os.remove(errfile)
  if code ~= 0 then
    error(("%s failed (%s exited with status %d)%s"):format(what, argv[1], code,
      err ~= "" and (": " .. err:gsub("%s+$", "")) or ""), 0)
  end
end

local mkdir_p = util.mkdir_p
local function remove_tree(dir) check(C.lacos_dir_remove(dir)) end
local function dirname(path) return path:match("^(.*)/[^/]*$") or "." end

-- ---------------------------------------------------------------- registry

local KINDS = { sts = true, nli = true, pairs = true, bitext = true }
local READERS = { tsv = true, csv = true, gold = true, lines = true, jsonl = true }
local ARCHIVES = { ["tar.gz"] = true, zip = true, gz = true }

local function check_set(s, where)
  local function bad(msg, ...) error(("%s: set '%s': %s"):format(where, tostring(s.id), msg:format(...)), 0) end
  if type(s.id) ~= "string" or not s.id:match("^[%w][%w._-]*$") then
    error(("%s: every set needs an id of letters, digits, '.', '_' or '-' (got %s)"):format(where, tostring(s.id)), 0)
  end
  if not KINDS[s.kind] then bad("kind must be sts, nli, pairs or bitext, got %s", tostring(s.kind)) end
  if type(s.format) ~= "table" or not READERS[s.format.reader] then
    bad("format.reader must be one of tsv, csv, gold, lines, jsonl")
  end
  if type(s.splits) ~= "table" or next(s.splits) == nil then bad("needs splits") end
  for name, sp in pairs(s.splits) do
    if type(sp.subsets) ~= "table" or #sp.subsets == 0 then bad("split '%s' has no subsets", name) end
    local fmt = sp.format or s.format
    for i, sub in ipairs(sp.subsets) do
      if fmt.reader == "gold" and (type(sub.input) ~= "string" or type(sub.gold) ~= "string") then
        bad("split '%s' subset %d needs input and gold files", name, i)
      elseif fmt.reader == "lines" and (type(sub.files) ~= "table" or #sub.files < 2) then
        bad("split '%s' subset %d needs files = {sentence1 file, sentence2 file[, labels file]}", name, i)
      elseif fmt.reader ~= "gold" and fmt.reader ~= "lines" and type(sub.file) ~= "string" then
        bad("split '%s' subset %d needs a file", name, i)
      end
    end
  end
  s.files = s.files or {}
  s.download = s.download or {}
  s.languages = s.languages or {}
  for _, d in ipairs(s.download) do
    if type(d.url) ~= "string" then bad("a download entry has no url") end
    if d.archive and d.archive ~= json.null and not ARCHIVES[d.archive] then bad("unknown archive type %s", tostring(d.archive)) end
    if (not d.archive or d.archive == "gz") and type(d.path) ~= "string" then bad("download %s needs a path", d.url) end
    if (d.archive == "tar.gz" or d.archive == "zip") and type(d.members) ~= "table" then bad("archive %s needs members", d.url) end
  end
end

local function nn(v) if v == json.null then return nil end return v end

local function read_registry(path, origin, into)
  local reg = json.read(path)
  if type(reg) ~= "table" or type(reg.sets) ~= "table" then error(path .. ": expected an object with a \"sets\" array", 0) end
  for _, s in ipairs(reg.sets) do
    check_set(s, path)
    s.origin = origin
    s.registry = path
    if into.by_id[s.id] then
      for i, t in ipairs(into.sets) do if t.id == s.id then into.sets[i] = s end end
    else
      into.sets[#into.sets + 1] = s
    end
    into.by_id[s.id] = s
  end
end

-- The registry: { sets = {...}, by_id = {...}, root = dir, files = {...} }.
function M.registry(root)
  root = M.root(root)
  local reg = { sets = {}, by_id = {}, root = root, files = {} }
  local builtin = E.home .. "/datasets/registry.json"
  read_registry(builtin, "builtin", reg)
  reg.files[#reg.files + 1] = builtin
  local loc = join(root, "registry.local.json")
  if file_size(loc) then
    read_registry(loc, "local", reg)
    reg.files[#reg.files + 1] = loc
  end
  return reg
end

function M.find(id, root)
  local reg = M.registry(root)
  local s = reg.by_id[id]
  if not s then
    local ids = {}
    for _, t in ipairs(reg.sets) do ids[#ids + 1] = t.id end
    error(("unknown dataset '%s' (known: %s)"):format(tostring(id), table.concat(ids, ", ")), 0)
  end
  return s, reg
end

-- ---------------------------------------------------------------- pair sets

local PairSet = {}
PairSet.__index = PairSet
M.PairSet = PairSet

local LABEL_NAMES = { [0] = "entailment", [1] = "neutral", [2] = "contradiction" }
M.LABEL_NAMES = LABEL_NAMES

local function wrap(ptr, meta)
  local s = setmetatable(meta or {}, PairSet)
  s.ptr = ffi.gc(ptr, C.lacos_pairset_free)
  s:_refresh()
  return s
end

function PairSet:_refresh()
  self.n = C.lacos_pairset_size(self.ptr)
  self.recs = C.lacos_pairset_pairs(self.ptr)
  local ns = C.lacos_pairset_subset_count(self.ptr)
  local subs = C.lacos_pairset_subsets(self.ptr)
  local list = {}
  for k = 0, ns - 1 do
    local u = subs[k]
    list[k + 1] = { name = ffi.string(u.name), lang1 = ffi.string(u.lang1), lang2 = ffi.string(u.lang2),
                    source = ffi.string(u.source), first = u.first + 1, count = u.count, lines = u.lines,
                    skipped = u.skipped }
  end
  self._subsets = list
end

local function rec(self, i)
  if not self.ptr then error("pair set was freed", 3) end
  if type(i) ~= "number" or i < 1 or i > self.n or i ~= math.floor(i) then
    error(("pair index %s out of range 1..%d"):format(tostring(i), self.n), 3)
  end
  return self.recs[i - 1]
end

function PairSet:size() return self.n end
-- s1, s2, score (nil when the set has none), label (nil when none).
function PairSet:get(i)
  local r = rec(self, i)
  local score = r.score
  if score ~= score then score = nil end
  return ffi.string(r.s1, r.len1), ffi.string(r.s2, r.len2), score, r.label >= 0 and r.label or nil
end
-- anchor, positive, negative (nil when none).
function PairSet:triplet(i)
  local r = rec(self, i)
  return ffi.string(r.s1, r.len1), ffi.string(r.s2, r.len2), r.s3 ~= nil and ffi.string(r.s3, r.len3) or nil
end
function PairSet:score(i) local s = rec(self, i).score if s ~= s then return nil end return s end
function PairSet:label(i) local l = rec(self, i).label if l < 0 then return nil end return l end
function PairSet:label_name(i) local l = rec(self, i).label return LABEL_NAMES[l] end
function PairSet:line(i) return rec(self, i).line end
function PairSet:subset_of(i) return self._subsets[rec(self, i).subset + 1] end
-- Languages of columns 1 and 2 of pair i ("" when unknown).
function PairSet:languages(i) local u = self:subset_of(i) return u.lang1, u.lang2 end
function PairSet:has_negatives() return self.n > 0 and self.recs[0].s3 ~= nil end
-- One table per pair (convenient, not for hot loops).
function PairSet:pair(i)
  local s1, s2, score, label = self:get(i)
  local r = self.recs[i - 1]
  local u = self._subsets[r.subset + 1]
  return { s1 = s1, s2 = s2, s3 = r.s3 ~= nil and ffi.string(r.s3, r.len3) or nil, score = score, label = label,
           subset = u.name, lang1 = u.lang1, lang2 = u.lang2, line = r.line }
end

function PairSet:iter()
  local i = 0
  return function()
    i = i + 1
    if i > self.n then return nil end
    return i, self:get(i)
  end
end

-- All sentences of column k (1, 2 or 3) as a Lua list, optionally pairs first..last.
function PairSet:sentences(k, first, last)
  k = k or 1
  first, last = first or 1, last or self.n
  local out = {}
  for i = first, last do
    local r = rec(self, i)
    if k == 1 then out[#out + 1] = ffi.string(r.s1, r.len1)
    elseif k == 2 then out[#out + 1] = ffi.string(r.s2, r.len2)
    elseif k == 3 then out[#out + 1] = r.s3 ~= nil and ffi.string(r.s3, r.len3) or nil
    else error("sentences: column must be 1, 2 or 3", 2) end
  end
  return out
end

-- Gold scores as a Lua list (NaN where the set has none).
function PairSet:scores()
  local out = {}
  for i = 0, self.n - 1 do out[i + 1] = self.recs[i].score end
  return out
end
-- Gold scores as a double array (cdata) and its length, for lacos.sts.
function PairSet:score_array()
  local a = ffi.new("double[?]", math.max(self.n, 1))
  for i = 0, self.n - 1 do a[i] = self.recs[i].score end
  return a, self.n
end
function PairSet:labels()
  local out = {}
  for i = 0, self.n - 1 do out[i + 1] = self.recs[i].label end
  return out
end

-- {name, lang1, lang2, source, first, count, lines, skipped} per subset (first is 1-based).
function PairSet:subsets() return self._subsets end

-- SHA-256 of the records: the content revision to store with a score.
function PairSet:digest()
  local hex = ffi.new("char[65]")
  check(C.lacos_pairset_sha256(self.ptr, hex))
  return ffi.string(hex)
end
function PairSet:text_bytes() return C.lacos_pairset_text_bytes(self.ptr) end

-- Training examples {{anchor, positive[, negative]}, ...} (the layout of lacos.pairs).
function PairSet:rows()
  local rows = {}
  for i = 0, self.n - 1 do
    local r = self.recs[i]
    rows[i + 1] = { ffi.string(r.s1, r.len1), ffi.string(r.s2, r.len2), r.s3 ~= nil and ffi.string(r.s3, r.len3) or nil }
  end
  return rows
end
-- The same as a lacos.pairs dataset of the given kind: "pairs" (default:
-- columns 1, 2 and any 3 as anchor, positive, hard negative), "scored"
-- (every pair needs a score) or "labelled" (every pair needs a label).
function PairSet:to_pairs(kind)
  local ok, P = pcall(require, "lacos.pairs")
  if not ok or not P.from_list then error("lacos.pairs is not available", 2) end
  kind = kind or "pairs"
  if not P.KINDS[kind] then error(("to_pairs: kind must be pairs, scored or labelled, got '%s'"):format(tostring(kind)), 2) end
  local name = self.source or self.id or "pairs"
  if kind == "pairs" then return P.from_list(self:rows(), { source = name }) end
  local rows = {}
  for i = 0, self.n - 1 do
    local r = self.recs[i]
    local y
    if kind == "scored" then y = r.score if y ~= y then y = nil end
    else y = r.label >= 0 and r.label or nil end
    if y == nil then
      local u = self._subsets[r.subset + 1]
      error(("%s:%d: pair %d has no %s; a %s set needs one on every pair"):format(
        u.source ~= "" and u.source or name, tonumber(r.line), i + 1, kind == "scored" and "score" or "label",
        kind), 2)
    end
    rows[i + 1] = { ffi.string(r.s1, r.len1), ffi.string(r.s2, r.len2), y }
  end
  if #rows == 0 then error(("%s: no pairs"):format(name), 2) end
  return P.from_list(rows, { kind = kind, source = name })
end

function PairSet:free()
  if self.ptr then
    C.lacos_pairset_free(ffi.gc(self.ptr, nil))
    self.ptr, self.recs, self.n = nil, nil, 0
  end
end

function PairSet:__tostring()
  return ("lacos pair set %s%s: %d pairs in %d subsets"):format(self.id or "", self.split and ("/" .. self.split) or "",
    self.n, #self._subsets)
end

-- ---------------------------------------------------------------- reading

local LABEL_KINDS = { none = C.LACOS_LABELS_NONE, nli = C.LACOS_LABELS_NLI, binary = C.LACOS_LABELS_BINARY,
                      int = C.LACOS_LABELS_INT }

-- Splits a header line into column names (TAB, or CSV with simple quoting).
local function header_names(path, reader)
  local f, err = io.open(path, "rb")
  if not f then error(("%s: %s"):format(path, (err or "cannot open"):gsub("^[^:]*: ", "")), 0) end
  local line = f:read("*l") or ""
  f:close()
  line = line:gsub("^\239\187\191", ""):gsub("\r$", "")
  local names = {}
  if reader == "csv" then
    for field in (line .. ","):gmatch("([^,]*),") do names[#names + 1] = (field:gsub('^"(.*)"$', "%1")) end
  else
    for field in (line .. "\t"):gmatch("([^\t]*)\t") do names[#names + 1] = field end
  end
  return names
end

local function resolve_column(v, key, path, fmt, names_cache)
  if v == nil or v == json.null then return 0 end
  if type(v) == "number" then
    if v < 1 or v > 64 or v ~= math.floor(v) then error(("%s: column %s = %s must be a whole number 1..64"):format(path, key, tostring(v)), 0) end
    return v
  end
  if type(v) ~= "string" then error(("%s: column %s must be a number or a header name"):format(path, key), 0) end
  if not fmt.header or fmt.header == 0 then error(("%s: column %s is named ('%s') but the format has no header line"):format(path, key, v), 0) end
  names_cache.names = names_cache.names or header_names(path, fmt.reader)
  for i, n in ipairs(names_cache.names) do if n == v then return i end end
  error(("%s:1: the header has no column '%s' (it has: %s)"):format(path, v, table.concat(names_cache.names, ", ")), 0)
end

local spec_ct = ffi.typeof("lacos_read_spec")

-- Builds the engine's read spec from a format table; `keep` holds the Lua
-- strings the spec points to until the read call returns.
local function make_spec(fmt, sub, path, opts, keep)
  local spec = spec_ct()
  C.lacos_read_spec_init(spec)
  local function str(v)
    if v == nil or v == json.null then return nil end
    keep[#keep + 1] = v
    return v
  end
  spec.subset = str(sub.name)
  spec.lang1 = str(sub.lang1 or "")
  spec.lang2 = str(sub.lang2 or sub.lang1 or "")
  local header = fmt.header
  if header == true then header = 1 elseif header == false or header == nil then header = 0 end
  spec.header = header
  local cols = fmt.columns or {}
  local cache = {}
  local f2 = { header = header, reader = fmt.reader }
  spec.col_s1 = resolve_column(cols.s1, "s1", path, f2, cache)
  spec.col_s2 = resolve_column(cols.s2, "s2", path, f2, cache)
  spec.col_s3 = resolve_column(cols.s3, "s3", path, f2, cache)
  spec.col_score = resolve_column(cols.score, "score", path, f2, cache)
  spec.col_label = resolve_column(cols.label, "label", path, f2, cache)
  if sub.filter then
    spec.filter_col = resolve_column(cols.split, "split", path, f2, cache)
    if spec.filter_col == 0 then error(("%s: subset %s filters on a split column the format does not map"):format(path, tostring(sub.name)), 0) end
    spec.filter_value = str(sub.filter)
  end
  local lk = fmt.labels or "none"
  if fmt.reader ~= "lines" and spec.col_label == 0 and fmt.reader ~= "jsonl" then lk = "none" end
  if not LABEL_KINDS[lk] then error(("%s: labels must be nli, binary or int, got %s"):format(path, tostring(lk)), 0) end
  spec.label_kind = LABEL_KINDS[lk]
  spec.min_fields = fmt.min_fields or 0
  spec.max_fields = fmt.max_fields or 0
  spec.skip_unlabeled = fmt.skip_unlabeled and 1 or 0
  spec.skip_blank = (opts.skip_blank or fmt.skip_blank) and 1 or 0
  spec.allow_empty = (opts.allow_empty or fmt.allow_empty) and 1 or 0
  spec.truncate_input = sub.truncate_input and 1 or 0
  spec.trim = opts.trim == false and 0 or 1
  if fmt.score_range and fmt.score_range ~= json.null then
    spec.score_min, spec.score_max = fmt.score_range[1], fmt.score_range[2]
  end
  if opts.max_line_bytes then spec.max_line_bytes = opts.max_line_bytes end
  if opts.max_file_bytes then spec.max_file_bytes = opts.max_file_bytes end
  if fmt.reader == "jsonl" then
    local k = fmt.keys or {}
    spec.key_s1 = str(k.s1 or "sentence1")
    spec.key_s2 = str(k.s2 or "sentence2")
    spec.key_s3 = str(k.s3)
    spec.key_label = str(k.label or (lk ~= "none" and "gold_label" or nil))
    spec.key_score = str(k.score)
  end
  return spec
end

-- Reads one subset into the engine set `ptr`, paths relative to root (or absolute).
local function read_into(ptr, fmt, sub, root, opts)
  local function p(rel)
    if rel:sub(1, 1) == "/" or not root then return rel end
    return join(root, rel)
  end
  local keep = {}
  local r = fmt.reader
  if r == "gold" then
    local input, gold = p(sub.input), p(sub.gold)
    check(C.lacos_pairset_read_gold(ptr, input, gold, make_spec(fmt, sub, input, opts, keep)))
  elseif r == "lines" then
    local a, b, l = p(sub.files[1]), p(sub.files[2]), sub.files[3] and p(sub.files[3]) or nil
    local f = fmt
    if l and (not fmt.labels or fmt.labels == "none") then f = setmetatable({ labels = "nli" }, { __index = fmt }) end
    check(C.lacos_pairset_read_lines(ptr, a, b, l, make_spec(f, sub, a, opts, keep)))
  else
    local path = p(sub.file)
    local spec = make_spec(fmt, sub, path, opts, keep)
    local fn = ({ tsv = C.lacos_pairset_read_tsv, csv = C.lacos_pairset_read_csv, jsonl = C.lacos_pairset_read_jsonl })[r]
    check(fn(ptr, path, spec))
  end
  return keep
end

local function new_ptr()
  local o = E.out("lacos_pairset*")
  check(C.lacos_pairset_new(o))
  return o[0]
end

-- Built-in formats for read_pairs (any STSb-format file in any language,
-- the generic "s1 TAB s2 TAB score" file, and the other published layouts).
M.FORMATS = {
  stsb = { reader = "tsv", columns = { s1 = 6, s2 = 7, score = 5 }, min_fields = 7, score_range = { 0, 5 } },
  generic = { reader = "tsv", columns = { s1 = 1, s2 = 2, score = 3 }, min_fields = 3, max_fields = 3 },
  sick = { reader = "tsv", header = 1, columns = { s1 = 2, s2 = 3, score = 4, label = 5 }, labels = "nli", min_fields = 5,
           score_range = { 1, 5 } },
  csv = { reader = "csv", columns = { s1 = 1, s2 = 2, score = 3 }, min_fields = 3 },
  nli = { reader = "tsv", columns = { s1 = 1, s2 = 2, label = 3 }, labels = "nli", min_fields = 3 },
  pairs = { reader = "tsv", columns = { s1 = 1, s2 = 2 }, min_fields = 2, max_fields = 2 },
  triplets = { reader = "tsv", columns = { s1 = 1, s2 = 2, s3 = 3 }, min_fields = 3, max_fields = 3 },
  jsonl = { reader = "jsonl", keys = { s1 = "sentence1", s2 = "sentence2", label = "gold_label" }, labels = "nli",
            skip_unlabeled = true },
  allnli = { reader = "tsv", header = 1, columns = { s1 = "sentence1", s2 = "sentence2", label = "label" }, labels = "nli",
             min_fields = 6 },
  simcse = { reader = "csv", header = 1, columns = { s1 = "sent0", s2 = "sent1", s3 = "hard_neg" }, min_fields = 3 },
  gold = { reader = "gold", columns = { s1 = 1, s2 = 2 }, min_fields = 2 },
  lines = { reader = "lines" },
}

local read_defaults = {
  format = "generic", header = util.ANY, columns = util.ANY, labels = util.ANY, score_range = util.ANY,
  min_fields = util.ANY, max_fields = util.ANY, subset = util.ANY, lang = util.ANY, lang1 = util.ANY, lang2 = util.ANY,
  gold = util.ANY, path2 = util.ANY, labels_file = util.ANY, keys = util.ANY, trim = true, skip_blank = false,
  allow_empty = false, skip_unlabeled = util.ANY, truncate_input = false, max_line_bytes = util.ANY,
  max_file_bytes = util.ANY, filter = util.ANY,
}

local function split_lang(lang)
  if lang == nil then return nil, nil end
  if type(lang) ~= "string" then error("lang must be a string such as \"de\" or \"en-de\"", 3) end
  local a, b = lang:match("^([%w_]+)%-([%w_]+)$")
  if a then return a, b end
  return lang, lang
end

-- Reads a file by path. opts.format picks a layout (stsb, generic, sick, csv,
-- nli, pairs, triplets, jsonl, allnli, simcse, gold, lines); header,
-- columns (numbers or header names), labels, score_range, min/max_fields
-- override it. format = "gold" needs opts.gold; "lines" needs opts.path2
-- (and optionally opts.labels_file). header = "auto" skips the first line
-- only when its score field is not a number.
function M.read_pairs(path, opts)
  if type(path) ~= "string" then error("lacos.data.read_pairs: path must be a string", 2) end
  opts = util.options(opts, read_defaults, "lacos.data.read_pairs")
  local base = M.FORMATS[opts.format]
  if not base then
    local names = {}
    for k in pairs(M.FORMATS) do names[#names + 1] = k end
    table.sort(names)
    error(("lacos.data.read_pairs: unknown format '%s' (use %s)"):format(tostring(opts.format), table.concat(names, ", ")), 2)
  end
  local fmt = {}
  for k, v in pairs(base) do fmt[k] = v end
  if opts.header ~= nil then
    if opts.header == "auto" then
      local cols = opts.columns or fmt.columns
      fmt.header = 0
      if cols and type(cols.score) == "number" and fmt.reader ~= "jsonl" then
        local names = header_names(path, fmt.reader)
        local v = names[cols.score]
        if v and not tonumber(v) then fmt.header = 1 end
      end
    elseif type(opts.header) == "boolean" then fmt.header = opts.header and 1 or 0
    elseif type(opts.header) == "number" and opts.header >= 0 and opts.header == math.floor(opts.header) then fmt.header = opts.header
    else error("lacos.data.read_pairs: header must be true, false, a line count or \"auto\"", 2) end
  end
  if opts.columns ~= nil then
    if type(opts.columns) ~= "table" then error("lacos.data.read_pairs: columns must be a table {s1=, s2=, score=, label=, s3=}", 2) end
    for k in pairs(opts.columns) do
      if not ({ s1 = 1, s2 = 1, s3 = 1, score = 1, label = 1, split = 1 })[k] then
        error(("lacos.data.read_pairs: unknown column key '%s' (s1, s2, s3, score, label, split)"):format(tostring(k)), 2)
      end
    end
    local cols = {}
    for k, v in pairs(opts.columns) do cols[k] = v end
    fmt.columns = cols
    if opts.min_fields == nil then fmt.min_fields = nil end
    if opts.max_fields == nil then fmt.max_fields = nil end
  end
  for _, k in ipairs { "labels", "score_range", "min_fields", "max_fields", "keys", "skip_unlabeled" } do
    if opts[k] ~= nil then fmt[k] = opts[k] end
  end
  if fmt.score_range ~= nil and fmt.score_range ~= false and (type(fmt.score_range) ~= "table" or #fmt.score_range ~= 2) then
    error("lacos.data.read_pairs: score_range must be {low, high} or false", 2)
  end
  if fmt.score_range == false then fmt.score_range = nil end
  local l1, l2 = split_lang(opts.lang)
  local sub = { name = opts.subset, lang1 = opts.lang1 or l1, lang2 = opts.lang2 or l2, filter = opts.filter,
                truncate_input = opts.truncate_input }
  if fmt.reader == "gold" then
    if type(opts.gold) ~= "string" then error("lacos.data.read_pairs: format gold needs gold = PATH", 2) end
    sub.input, sub.gold = path, opts.gold
  elseif fmt.reader == "lines" then
    if type(opts.path2) ~= "string" then error("lacos.data.read_pairs: format lines needs path2 = PATH", 2) end
    sub.files = { path, opts.path2, opts.labels_file }
  else
    sub.file = path
  end
  if sub.filter and not (fmt.columns and fmt.columns.split) then error("lacos.data.read_pairs: filter needs columns.split", 2) end
  local ptr = new_ptr()
  local set = setmetatable({}, PairSet)
  set.ptr = ffi.gc(ptr, C.lacos_pairset_free)
  read_into(ptr, fmt, sub, nil, opts)
  set:_refresh()
  set.source, set.format = path, opts.format
  return set
end

-- ---------------------------------------------------------------- registry sets

local function matches(sub, want)
  if sub.name == want or sub.mteb == want then return true end
  for _, a in ipairs(sub.aliases or {}) do if a == want then return true end end
  return false
end

local function subset_names(list)
  local out = {}
  for _, s in ipairs(list) do
    local extra = {}
    for _, a in ipairs(s.aliases or {}) do extra[#extra + 1] = a end
    out[#out + 1] = s.name .. (#extra > 0 and (" (" .. table.concat(extra, ", ") .. ")") or "")
  end
  return table.concat(out, ", ")
end

local load_defaults = {
  split = util.ANY, subset = util.ANY, track = util.ANY, lang = util.ANY, data = util.ANY, trim = true,
  max_line_bytes = util.ANY, max_file_bytes = util.ANY,
}

-- Selects the subsets of a split: subset/track (names, aliases, MTEB names;
-- a string or a list) and lang ("de" matches either column's language,
-- "en-de" both in that order).
function M.select(set, opts)
  opts = opts or {}
  local split = opts.split or set.default_split
  local sp = set.splits[split]
  if not sp then
    local names = {}
    for k in pairs(set.splits) do names[#names + 1] = k end
    table.sort(names)
    error(("%s: no split '%s' (splits: %s)"):format(set.id, tostring(split), table.concat(names, ", ")), 0)
  end
  local chosen = {}
  local want = opts.subset or opts.track
  if want ~= nil and type(want) ~= "string" and type(want) ~= "table" then error(set.id .. ": subset must be a name or a list of names", 0) end
  if type(want) == "string" then want = { want } end
  local l1, l2 = split_lang(opts.lang)
  local pair_lang = opts.lang and opts.lang:find("-", 1, true)
  for _, sub in ipairs(sp.subsets) do
    local ok = true
    if want then
      ok = false
      for _, w in ipairs(want) do if matches(sub, w) then ok = true end end
    end
    if ok and l1 then
      local a, b = sub.lang1 or "", sub.lang2 or sub.lang1 or ""
      if pair_lang then ok = (a == l1 and b == l2) else ok = (a == l1 or b == l1) end
    end
    if ok then chosen[#chosen + 1] = sub end
  end
  if want then
    for _, w in ipairs(want) do
      local found = false
      for _, sub in ipairs(sp.subsets) do if matches(sub, w) then found = true end end
      if not found then error(("%s/%s: no subset '%s' (subsets: %s)"):format(set.id, split, w, subset_names(sp.subsets)), 0) end
    end
  end
  if #chosen == 0 then
    error(("%s/%s: no subset matches lang '%s' (subsets: %s)"):format(set.id, split, tostring(opts.lang), subset_names(sp.subsets)), 0)
  end
  return chosen, split, sp
end

local function missing_files(set, subs, root)
  local missing = {}
  for _, sub in ipairs(subs) do
    for _, rel in ipairs(sub.files or { sub.file, sub.input, sub.gold }) do
      if rel and not file_size(join(root, rel)) then missing[#missing + 1] = rel end
    end
  end
  return missing
end

-- Loads a registry set (or a split/subset of it) as one pair set.
function M.load(id, opts)
  if type(id) ~= "string" then error("lacos.data.load: dataset id must be a string", 2) end
  opts = util.options(opts, load_defaults, "lacos.data.load")
  local root = M.root(opts.data)
  local set = M.find(id, root)
  local subs, split, sp = M.select(set, opts)
  local missing = missing_files(set, subs, root)
  if #missing > 0 then
    error(("%s: %d file(s) missing under %s, e.g. %s (run `lacos data pull %s`%s)"):format(id, #missing, root, missing[1], id,
      (set.download and #set.download > 0) and "" or "; the registry has no download address for it"), 0)
  end
  local fmt = sp.format or set.format
  local ptr = new_ptr()
  local ps = setmetatable({}, PairSet)
  ps.ptr = ffi.gc(ptr, C.lacos_pairset_free)
  for _, sub in ipairs(subs) do read_into(ptr, fmt, sub, root, opts) end
  ps:_refresh()
  ps.id, ps.split, ps.kind, ps.root = id, split, set.kind, root
  ps.text = set.derived_from and "senteval-tokenized" or "raw"
  ps.trimmed = opts.trim ~= false
  -- MTEB names of the subsets that have one
  for k, sub in ipairs(subs) do ps._subsets[k].mteb = sub.mteb end
  return ps
end

-- ---------------------------------------------------------------- NLI -> training examples

local MODES = { premise = C.LACOS_TRIPLETS_PREMISE, sbert = C.LACOS_TRIPLETS_SBERT, entailment = C.LACOS_PAIRS_ENTAILMENT }

-- src: a pair set with NLI labels, or a registry id (loaded with opts.split,
-- opts.lang, opts.data). mode:
--   "premise" (default): one (premise, entailed, contradicting) triplet per
--      premise that has both, in first-appearance order (SimCSE-style);
--   "sbert": sentence-transformers' AllNLI recipe (training_nli_v2.py): each
--      sentence collects entailment/contradiction partners in both
--      directions and yields (s, e, c) and (e', s, c');
--   "entailment": every entailment pair (premise, hypothesis), no negative
--      (= all-nli "pair").
-- seed: nil picks the first partner in file order; a number picks uniformly
-- among the distinct partners with that seed (reproducible).
function M.nli_triplets(src, opts)
  opts = util.options(opts, { mode = "premise", seed = util.ANY, split = util.ANY, lang = util.ANY, subset = util.ANY,
                              data = util.ANY }, "lacos.data.nli_triplets")
  local mode = MODES[opts.mode]
  if not mode then error(("lacos.data.nli_triplets: mode must be premise, sbert or entailment, got '%s'"):format(tostring(opts.mode)), 2) end
  if opts.seed ~= nil and (type(opts.seed) ~= "number" or opts.seed < 0 or opts.seed ~= math.floor(opts.seed)) then
    error("lacos.data.nli_triplets: seed must be a non-negative whole number", 2)
  end
  if type(src) == "string" then
    src = M.load(src, { split = opts.split, lang = opts.lang, subset = opts.subset, data = opts.data })
  elseif getmetatable(src) ~= PairSet then
    error("lacos.data.nli_triplets: expected a pair set or a dataset id", 2)
  end
  local o = E.out("lacos_pairset*")
  check(C.lacos_pairset_nli_triplets(o, src.ptr, mode, opts.seed or -1))
  local t = wrap(o[0], { id = (src.id or "pairs") .. ":" .. opts.mode, split = src.split, kind = "training" })
  return t
end

-- Labelled (premise, hypothesis, label) training pairs for the softmax
-- classifier (lacos.loss.softmax; entailment 0, neutral 1, contradiction 2)
-- from a pair set with NLI labels or a registry id (loaded with opts.split,
-- opts.lang, opts.subset, opts.data); a lacos.pairs dataset of kind
-- "labelled". Pairs without a gold label are an error naming their line.
function M.nli_pairs(src, opts)
  opts = util.options(opts, { split = util.ANY, lang = util.ANY, subset = util.ANY, data = util.ANY }, "lacos.data.nli_pairs")
  local loaded = false
  if type(src) == "string" then
    src = M.load(src, { split = opts.split, lang = opts.lang, subset = opts.subset, data = opts.data })
    loaded = true
  elseif getmetatable(src) ~= PairSet then
    error("lacos.data.nli_pairs: expected a pair set or a dataset id", 2)
  end
  local ok, d = pcall(src.to_pairs, src, "labelled")
  if loaded then src:free() end
  if not ok then error(d, 2) end
  return d
end

-- ---------------------------------------------------------------- presence and verification

-- Status of a set under root: { state = present|partial|missing|corrupt,
-- present = n, total = n, missing = {paths}, wrong_size = {paths},
-- bad_hash = {paths} }. verify = true also checks every known sha256.
function M.status(set, opts)
  opts = opts or {}
  if type(set) == "string" then set = M.find(set, opts.data) end
  local root = M.root(opts.data)
  local st = { present = 0, total = #set.files, missing = {}, wrong_size = {}, bad_hash = {}, unverified = 0 }
  for _, f in ipairs(set.files) do
    local size = file_size(join(root, f.path))
    if not size then st.missing[#st.missing + 1] = f.path
    elseif nn(f.bytes) and size ~= f.bytes then st.wrong_size[#st.wrong_size + 1] = f.path
    else
      st.present = st.present + 1
      if opts.verify then
        if nn(f.sha256) then
          if sha256_file(join(root, f.path)) ~= f.sha256 then st.bad_hash[#st.bad_hash + 1] = f.path end
        else
          st.unverified = st.unverified + 1
        end
      end
    end
  end
  if #st.bad_hash > 0 or #st.wrong_size > 0 then st.state = "corrupt"
  elseif st.present == st.total and st.total > 0 then st.state = "present"
  elseif st.present == 0 then st.state = "missing"
  else st.state = "partial" end
  return st
end

-- Pairs per split as the registry states them (verified counts, or the
-- upstream-reported ones for sets not checked here).
function M.pair_counts(set)
  local names = {}
  for k in pairs(set.splits) do names[#names + 1] = k end
  table.sort(names)
  local out = {}
  for _, k in ipairs(names) do
    local sp = set.splits[k]
    out[#out + 1] = { split = k, pairs = nn(sp.pairs) or nn(sp.pairs_reported), reported = sp.pairs == nil }
  end
  return out
end

-- ---------------------------------------------------------------- downloads

-- The address of a data-root file on a mirror: a mirror (LACOS_DATA_MIRROR)
-- serves a data root's layout, so <mirror>/<path> is the file at <path> under
-- the root (each path segment percent-encoded where URLs need it).
local function mirror_url(mirror, path)
  local enc = path:gsub("[^%w%-._~/]", function(c) return ("%%%02X"):format(c:byte()) end)
  return (mirror:gsub("/+$", "")) .. "/" .. enc
end
M.mirror_url = mirror_url

local function download(url, dest, bytes, sha, progress)
  local o = ffi.new("lacos_download_options")
  C.lacos_download_options_init(o)
  if progress == false then o.progress = 0 elseif progress == true then o.progress = 2 end
  local hex = ffi.new("char[65]")
  local got = ffi.new("double[1]")
  local st = C.lacos_download(url, dest, bytes or -1, sha, o, hex, got)
  return st, ffi.string(hex), got[0]
end
M.download = function(url, dest, opts)
  opts = util.options(opts, { bytes = util.ANY, sha256 = util.ANY, progress = util.ANY }, "lacos.data.download")
  local st, hex, bytes = download(url, dest, opts.bytes, opts.sha256, opts.progress)
  check(st)
  return hex, bytes
end

local function install_file(src, dest, f)
  if f and nn(f.bytes) and file_size(src) ~= f.bytes then
    error(("%s: %s bytes, the registry says %s"):format(f.path, tostring(file_size(src)), tostring(f.bytes)), 0)
  end
  if f and nn(f.sha256) then
    local h = sha256_file(src)
    if h ~= f.sha256 then error(("%s: sha256 %s, the registry says %s"):format(f.path, h, f.sha256), 0) end
  end
  mkdir_p(dirname(dest))
  local ok, err = os.rename(src, dest)
  if not ok then error(("%s: cannot move into place: %s"):format(dest, tostring(err)), 0) end
end

local pull_defaults = {
  data = util.ANY, url = util.ANY, sha256 = util.ANY, no_verify = false, force = false, mirror = util.ANY,
  progress = util.ANY, log = util.ANY,
}

-- Removes the staging folders of a pull when they are empty (nothing
-- arrived; a partial download keeps its .part file, and its folders, for a resume).
local function drop_empty_staging(root, id)
  for _, d in ipairs { join(root, ".lacos/staging/" .. id), join(root, ".lacos/staging"), join(root, ".lacos") } do os.remove(d) end
end

-- Downloads url into staged (a verified earlier download is reused; a
-- partial one resumed) and says how what arrived was checked: "sha256"
-- against expected, "member sha256" when the archive's members are checked
-- once unpacked, or, with --no-verify, not at all (without it an unchecked
-- file is an error naming its hash). Returns sha256 hex, bytes, verified.
local function fetch_checked(id, url, staged, bytes, expected, members_checked, root, opts, log)
  local hex, got
  if expected and file_size(staged) and sha256_file(staged) == expected then
    hex, got = expected, file_size(staged)
    log(("%s: reusing the verified download %s"):format(id, staged))
  else
    log(("%s: fetching %s"):format(id, url))
    local st
    st, hex, got = download(url, staged, bytes, expected, opts.progress)
    if st ~= 0 then
      local msg = E.last_error()
      -- nothing arrived: leave no empty staging folders behind (a partial
      -- download stays in its .part file, and the folders with it, to resume)
      drop_empty_staging(root, id)
      error(id .. ": " .. msg, 0)
    end
  end
  local verified = expected and "sha256" or members_checked and "member sha256" or nil
  if not verified then
    if not opts.no_verify then
      error(("%s: no sha256 is known for %s, so what arrived cannot be checked.\n" ..
             "  It has %d bytes and sha256 %s (kept in %s).\n" ..
             "  If that matches a hash you trust, run again with --sha256 %s; or accept it unchecked with --no-verify.")
            :format(id, url, got, hex, staged, hex), 0)
    end
    verified = "none (--no-verify)"
    log(("%s: accepted without verification: %s bytes, sha256 %s"):format(id, tostring(got), hex))
  end
  return hex, got, verified
end

-- A pull from a mirror of a data root: every file of the set's file table
-- from <mirror>/<path>, each checked against the table's size and sha256.
local function pull_from_mirror(id, set, root, mirror, opts, log, record)
  local work = join(root, ".lacos/staging/" .. id)
  local sha_override = opts.sha256 and opts.sha256:lower()
  if sha_override and #set.files ~= 1 then
    error(("%s: --sha256 applies to sets of one file; this one has %d"):format(id, #set.files), 0)
  end
  for k, f in ipairs(set.files) do
    local dest = join(root, f.path)
    local url = mirror_url(mirror, f.path)
    local size = file_size(dest)
    if not opts.force and size and (not nn(f.bytes) or size == f.bytes) then
      record.sources[#record.sources + 1] = { url = url, skipped = "already present" }
    else
      local expected = sha_override or nn(f.sha256)
      mkdir_p(work)
      local staged = join(work, ("%d-%s"):format(k, f.path:match("([^/]+)$") or "file"))
      local hex, got, verified = fetch_checked(id, url, staged, nn(f.bytes), expected, false, root, opts, log)
      install_file(staged, dest, f)
      record.sources[#record.sources + 1] = { url = url, sha256 = hex, bytes = got, verified = verified }
    end
  end
  os.remove(work)
  os.remove(join(root, ".lacos/staging"))   -- both only when empty
  return record
end

-- Downloads a set's files from its registry addresses (or opts.url when the
-- set has one download), checks them, unpacks archives (tar, unzip, gzip),
-- installs them under the data root and records what was fetched in
-- <root>/.lacos/pulled/<id>.json. Returns that record. With a mirror
-- (opts.mirror, else $LACOS_DATA_MIRROR; not with opts.url) every file of
-- the set comes from <mirror>/<path in the data root> instead.
function M.pull(id, opts)
  opts = util.options(opts, pull_defaults, "lacos.data.pull")
  local root = M.root(opts.data)
  local set = M.find(id, root)
  local log = opts.log or function(msg) io.stderr:write(msg, "\n") end
  if #set.download == 0 then error(("%s: the registry has no download address for it"):format(id), 0) end
  if (opts.url or opts.sha256) and #set.download ~= 1 then
    error(("%s: --url and --sha256 apply to sets with one download; this one has %d"):format(id, #set.download), 0)
  end
  if opts.sha256 and not tostring(opts.sha256):match("^%x+$") then error("--sha256 must be 64 hex digits", 0) end
  if opts.sha256 and #opts.sha256 ~= 64 then error("--sha256 must be 64 hex digits", 0) end
  local sha_override = opts.sha256 and opts.sha256:lower()
  local mirror = opts.mirror or os.getenv("LACOS_DATA_MIRROR")
  local by_path = {}
  for _, f in ipairs(set.files) do by_path[f.path] = f end
  local work = join(root, ".lacos/staging/" .. id)
  local record = { id = id, root = root, time = os.date("!%Y-%m-%dT%H:%M:%SZ"), registry = set.registry, sources = {} }

  if mirror and mirror ~= "" and not opts.url then
    pull_from_mirror(id, set, root, mirror, opts, log, record)
    return M.finish_pull(set, root, record)
  end

  local function present(paths)
    for _, p in ipairs(paths) do
      local f = by_path[p]
      local size = file_size(join(root, p))
      if not size or (f and nn(f.bytes) and size ~= f.bytes) then return false end
    end
    return true
  end

  for k, d in ipairs(set.download) do
    local archive = nn(d.archive)
    local targets = {}
    if archive == "tar.gz" or archive == "zip" then
      for _, dst in pairs(d.members) do targets[#targets + 1] = dst end
      table.sort(targets)
    else
      targets[1] = d.path
    end
    local url = opts.url or d.url
    if not opts.force and present(targets) then
      record.sources[#record.sources + 1] = { url = url, skipped = "already present" }
    else
      -- what the fetched bytes can be checked against
      local expected = sha_override or nn(d.sha256)
      local bytes = nil
      if not archive and by_path[d.path] then
        expected = expected or nn(by_path[d.path].sha256)
        bytes = nn(by_path[d.path].bytes)
      end
      local members_checked = false
      if archive == "tar.gz" or archive == "zip" then
        members_checked = true
        for _, dst in pairs(d.members) do if not (by_path[dst] and nn(by_path[dst].sha256)) then members_checked = false end end
      elseif archive == "gz" then
        members_checked = by_path[d.path] and nn(by_path[d.path].sha256) ~= nil
      end
      mkdir_p(work)
      local staged = join(work, ("%d-%s"):format(k, (d.url:match("([^/]+)$") or "download")))
      local hex, got, verified = fetch_checked(id, url, staged, bytes, expected, members_checked, root, opts, log)
      -- unpack and install
      if archive == "tar.gz" or archive == "zip" then
        local dir = join(work, ("%d-unpacked"):format(k))
        remove_tree(dir)
        mkdir_p(dir)
        if archive == "tar.gz" then
          run({ "tar", "-xzf", util.arg_path(staged), "-C", util.arg_path(dir) }, "unpacking " .. staged .. " with tar")
        else
          run({ "unzip", "-q", "-o", util.arg_path(staged), "-d", util.arg_path(dir) }, "unpacking " .. staged .. " with unzip")
        end
        for member, dst in pairs(d.members) do
          local src = join(dir, member)
          if not file_size(src) then error(("%s: %s has no member %s"):format(id, url, member), 0) end
          install_file(src, join(root, dst), by_path[dst])
        end
        remove_tree(dir)
        os.remove(staged)
      elseif archive == "gz" then
        local tmp = join(work, ("%d-unpacked"):format(k))
        run({ "gzip", "-dc", util.arg_path(staged) }, "unpacking " .. staged .. " with gzip", tmp)
        install_file(tmp, join(root, d.path), by_path[d.path])
        os.remove(staged)
      else
        install_file(staged, join(root, d.path), by_path[d.path])
      end
      record.sources[#record.sources + 1] = { url = url, sha256 = hex, bytes = got, verified = verified, archive = archive }
    end
  end
  os.remove(work)   -- only succeeds when empty
  os.remove(join(root, ".lacos/staging"))
  return M.finish_pull(set, root, record)
end

-- Records a pull in <root>/.lacos/pulled/<id>.json with the set's state.
function M.finish_pull(set, root, record)
  local id = set.id
  local st = M.status(set, { data = root })
  record.state = st.state
  record.files = {}
  for _, f in ipairs(set.files) do record.files[#record.files + 1] = f.path end
  mkdir_p(join(root, ".lacos/pulled"))
  json.write(join(root, ".lacos/pulled/" .. id .. ".json"), record)
  return record
end

return M
