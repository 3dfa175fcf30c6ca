-- lacos.sts: STS evaluation metrics and the rules for combining them.
--
--   local sts = lacos.sts
--   sts.cosine_scores(e1, e2)         -- (n) f64 tensor: cosine of row i of e1 and row i of e2
--   sts.spearman(pred, gold)          -- Spearman (average ranks for ties), in [-1, 1]
--   sts.pearson(pred, gold)
--   sts.evaluate(set, pred)           -- per-subset and aggregated scores x100
--   sts.evaluate_set(set, encode)     -- encode(list of sentences) -> (n, d) tensor
--   sts.run_suite("senteval", encode) -- the SentEval 7-task average (SimCSE protocol)
--   sts.run_suite("mteb_en", encode)  -- an MTEB-style English STS average
--
-- pred and gold may be Lua lists, 1-d tensors, or a double* cdata with n.
-- Correlations are computed in double by the engine (engine/sts.c) and equal
-- scipy.stats.spearmanr / pearsonr to 1e-9 (tests/fixtures/sts); a constant
-- input or a non-finite value gives NaN, as scipy does.
--
-- Aggregation over the subsets of a set (recorded with every score):
--   all   = one correlation over the concatenated subsets (SimCSE's STS12-16
--           numbers, MTEB's STS12-16 test sets, which are stored concatenated)
--   mean  = the unweighted mean of the per-subset correlations (SentEval "mean")
--   wmean = the mean weighted by subset size (SentEval "wmean")
local E = require "lacos.engine"
local util = require "lacos.util"
local ffi, C, check = E.ffi, E.C, E.check

local M = {}

-- ---------------------------------------------------------------- inputs

local dbl_ptr = ffi.typeof("double*")

-- Returns a double* view and n for a list, a tensor or (cdata, n).
local function as_doubles(x, n, what)
  if type(x) == "table" then
    local len = #x
    local a = ffi.new("double[?]", math.max(len, 1))
    for i = 1, len do
      local v = x[i]
      if type(v) ~= "number" then error(("%s: entry %d is a %s, not a number"):format(what, i, type(v)), 3) end
      a[i - 1] = v
    end
    return a, len
  end
  local T = require "lacos.tensor"
  if T.is_tensor(x) then
    local t = x.t
    local numel = tonumber(C.lacos_tensor_numel(t))
    if t.ndim ~= 1 and not (t.ndim == 2 and (t.shape[0] == 1 or t.shape[1] == 1)) then
      error(("%s: expected a 1-d tensor of scores, got %d-d"):format(what, t.ndim), 3)
    end
    local a = ffi.new("double[?]", math.max(numel, 1))
    check(C.lacos_tensor_read_f64(t, a, numel))
    return a, numel
  end
  if type(x) == "cdata" then
    if type(n) ~= "number" then error(what .. ": a cdata array needs its length n", 3) end
    return ffi.cast(dbl_ptr, x), n
  end
  error(("%s: expected a list of numbers, a 1-d tensor or a double array, got %s"):format(what, type(x)), 3)
end

local function pair_args(pred, gold, n, fname)
  local a, na = as_doubles(pred, n, fname .. " (predictions)")
  local b, nb = as_doubles(gold, n, fname .. " (gold)")
  if na ~= nb then error(("%s: %d predictions but %d gold scores"):format(fname, na, nb), 3) end
  return a, b, na
end

local out1 = ffi.new("double[1]")

function M.spearman(pred, gold, n)
  local a, b, m = pair_args(pred, gold, n, "lacos.sts.spearman")
  check(C.lacos_sts_spearman(out1, a, b, m))
  return out1[0]
end

function M.pearson(pred, gold, n)
  local a, b, m = pair_args(pred, gold, n, "lacos.sts.pearson")
  check(C.lacos_sts_pearson(out1, a, b, m))
  return out1[0]
end

-- Average ranks (1-based, ties share their mean rank) as a Lua list.
function M.rank(x, n)
  local a, m = as_doubles(x, n, "lacos.sts.rank")
  local r = ffi.new("double[?]", math.max(m, 1))
  check(C.lacos_sts_rank(r, a, m))
  local out = {}
  for i = 0, m - 1 do out[i + 1] = r[i] end
  return out
end

function M.cosine_scores(e1, e2)
  local T = require "lacos.tensor"
  if not T.is_tensor(e1) or not T.is_tensor(e2) then error("lacos.sts.cosine_scores: expected two (n, d) tensors", 2) end
  return T.make(C.lacos_sts_cosine, e1.t, e2.t)
end

-- ---------------------------------------------------------------- aggregation

local function x100(v) return v * 100 end

-- parts: list of { n = , spearman = , pearson = } (correlations in [-1, 1]),
-- each optionally with pred/gold (double arrays) for rule "all".
-- rule: "all", "mean" or "wmean". Returns { spearman = , pearson = } in [-1, 1].
function M.aggregate(parts, rule)
  if type(parts) ~= "table" or #parts == 0 then error("lacos.sts.aggregate: expected a non-empty list of subset results", 2) end
  if rule == "all" then
    local total = 0
    for i, p in ipairs(parts) do
      if not (p.pred and p.gold) then error(("lacos.sts.aggregate: rule 'all' needs pred and gold of every subset (subset %d lacks them)"):format(i), 2) end
      total = total + p.n
    end
    local a, b = ffi.new("double[?]", total), ffi.new("double[?]", total)
    local k = 0
    for _, p in ipairs(parts) do
      for i = 0, p.n - 1 do a[k], b[k] = p.pred[i], p.gold[i]; k = k + 1 end
    end
    local r = {}
    check(C.lacos_sts_spearman(out1, a, b, total)); r.spearman = out1[0]
    check(C.lacos_sts_pearson(out1, a, b, total)); r.pearson = out1[0]
    return r
  elseif rule == "mean" or rule == "wmean" then
    local s, p, w = 0, 0, 0
    for _, q in ipairs(parts) do
      local weight = rule == "wmean" and q.n or 1
      s = s + weight * q.spearman
      p = p + weight * q.pearson
      w = w + weight
    end
    return { spearman = s / w, pearson = p / w }
  end
  error(("lacos.sts.aggregate: rule must be all, mean or wmean, got '%s'"):format(tostring(rule)), 2)
end

-- Scores predictions against a pair set's gold scores. Returns (x100):
--   { n, spearman, pearson,                 -- over all pairs of the set = the "all" rule
--     subsets = { {name, lang1, lang2, mteb, n, spearman, pearson}, ... },
--     all = {spearman, pearson}, mean = {...}, wmean = {...},
--     aggregation = opts.aggregation or "all", main = the chosen rule's spearman,
--     metric = "cosine_spearman", dataset, split, text, digest }
-- A subset with fewer than 2 pairs gets NaN correlations.
function M.evaluate(set, pred, opts)
  opts = util.options(opts, { aggregation = "all", n = util.ANY }, "lacos.sts.evaluate")
  if type(set) ~= "table" or not set.recs then error("lacos.sts.evaluate: expected a lacos.data pair set", 2) end
  local a, na = as_doubles(pred, opts.n, "lacos.sts.evaluate (predictions)")
  if na ~= set.n then error(("lacos.sts.evaluate: %d predictions for %d pairs"):format(na, set.n), 2) end
  local gold, ng = set:score_array()
  for i = 0, ng - 1 do
    if gold[i] ~= gold[i] then error(("lacos.sts.evaluate: pair %d of %s has no gold score"):format(i + 1, set.id or "the set"), 2) end
  end
  M.check_gold(set)
  local res = { n = set.n, subsets = {}, dataset = set.id, split = set.split, text = set.text, aggregation = opts.aggregation,
                metric = "cosine_spearman", digest = set:digest() }
  local parts = {}
  for _, u in ipairs(set:subsets()) do
    local p = { name = u.name, lang1 = u.lang1, lang2 = u.lang2, mteb = u.mteb, n = u.count,
                pred = a + (u.first - 1), gold = gold + (u.first - 1) }
    if u.count >= 2 then
      check(C.lacos_sts_spearman(out1, p.pred, p.gold, u.count)); p.spearman = out1[0]
      check(C.lacos_sts_pearson(out1, p.pred, p.gold, u.count)); p.pearson = out1[0]
    else
      p.spearman, p.pearson = 0 / 0, 0 / 0
    end
    parts[#parts + 1] = p
    res.subsets[#res.subsets + 1] = { name = p.name, lang1 = p.lang1, lang2 = p.lang2, mteb = p.mteb, n = p.n,
                                      spearman = x100(p.spearman), pearson = x100(p.pearson) }
  end
  for _, rule in ipairs { "all", "mean", "wmean" } do
    local r = M.aggregate(parts, rule)
    res[rule] = { spearman = x100(r.spearman), pearson = x100(r.pearson) }
  end
  res.spearman, res.pearson = res.all.spearman, res.all.pearson
  if not res[opts.aggregation] then error("lacos.sts.evaluate: aggregation must be all, mean or wmean", 2) end
  res.main = res[opts.aggregation].spearman
  return res
end

-- Refuses gold scores that cannot rank anything: when every pair of the
-- set (or of one of its subsets of 2 pairs or more) has the same score,
-- Spearman's and Pearson's correlations are undefined, and a NaN recorded
-- as a result would pass for a number. The error names the set.
function M.check_gold(set)
  local gold = set:score_array()
  local name = set.source or (set.id and (set.id .. (set.split and ("/" .. set.split) or ""))) or "the set"
  local function constant(first, count)
    for i = first + 1, first + count - 1 do if gold[i] ~= gold[first] then return false end end
    return true
  end
  if set.n >= 2 and constant(0, set.n) then
    error(("%s: every gold score is %s: Spearman's correlation is undefined for constant scores (is the score column right?)")
      :format(name, ("%.17g"):format(gold[0])), 0)
  end
  for _, u in ipairs(set:subsets()) do
    if u.count >= 2 and u.count < set.n and constant(u.first - 1, u.count) then
      error(("%s: every gold score of subset %s is %s: Spearman's correlation is undefined for constant scores")
        :format(name, tostring(u.name), ("%.17g"):format(gold[u.first - 1])), 0)
    end
  end
end

-- The cosine similarity of each pair (s1[i], s2[i]), both columns embedded
-- in one encode(list) -> (2n, d) call: a sentence on both sides is encoded
-- once (Model:encode encodes a repeated sentence once), and the batches
-- fill with sentences of like length from either column.
function M.pair_cosines(s1, s2, encode)
  local n = #s1
  if #s2 ~= n then error(("lacos.sts.pair_cosines: %d first and %d second sentences"):format(n, #s2), 2) end
  local both = {}
  for i = 1, n do both[i] = s1[i]; both[n + i] = s2[i] end
  local e = encode(both)
  return M.cosine_scores(e:narrow(1, 1, n), e:narrow(1, n + 1, n))
end

-- Embeds both columns with encode(list of strings) -> (n, d) tensor and
-- scores the cosine similarities.
function M.evaluate_set(set, encode, opts)
  if type(encode) ~= "function" then error("lacos.sts.evaluate_set: encode must be a function(sentences) -> (n, d) tensor", 2) end
  if type(set) == "table" and set.recs then M.check_gold(set) end   -- before the costly embedding
  local cos = M.pair_cosines(set:sentences(1), set:sentences(2), encode)
  return M.evaluate(set, cos, opts)
end

-- ---------------------------------------------------------------- suites

-- Each task: the dataset id, load options, the aggregation rule. Scores are
-- cosine Spearman x100; the suite average is the plain mean over its tasks.
M.SUITES = {
  senteval = {
    title = "SentEval 7-task STS average, SimCSE protocol (STS12-16 concatenated, STSb test, SICK-R test; SentEval-tokenized text)",
    tasks = {
      { task = "STS12", data = "senteval-sts12", split = "test", aggregation = "all" },
      { task = "STS13", data = "senteval-sts13", split = "test", aggregation = "all" },
      { task = "STS14", data = "senteval-sts14", split = "test", aggregation = "all" },
      { task = "STS15", data = "senteval-sts15", split = "test", aggregation = "all" },
      { task = "STS16", data = "senteval-sts16", split = "test", aggregation = "all" },
      { task = "STSBenchmark", data = "senteval-stsb", split = "test", aggregation = "all" },
      { task = "SICK-R", data = "senteval-sick", split = "test", aggregation = "all" },
    },
  },
  senteval_raw = {
    title = "The SentEval 7 tasks on the raw (untokenized) text",
    tasks = {
      { task = "STS12", data = "sts12", split = "test", aggregation = "all" },
      { task = "STS13", data = "sts13", split = "test", aggregation = "all" },
      { task = "STS14", data = "sts14", split = "test", aggregation = "all" },
      { task = "STS15", data = "sts15", split = "test", aggregation = "all" },
      { task = "STS16", data = "sts16", split = "test", aggregation = "all" },
      { task = "STSBenchmark", data = "stsb", split = "test", aggregation = "all" },
      { task = "SICK-R", data = "sick", split = "test", aggregation = "all" },
    },
  },
  mteb_en = {
    title = "MTEB-style English STS average (raw text, test sets, cosine Spearman; SICK-R over all 9,927 pairs)",
    tasks = {
      { task = "STS12", data = "sts12", split = "test", aggregation = "all" },
      { task = "STS13", data = "sts13", split = "test", aggregation = "all" },
      { task = "STS14", data = "sts14", split = "test", aggregation = "all" },
      { task = "STS15", data = "sts15", split = "test", aggregation = "all" },
      { task = "STS16", data = "sts16", split = "test", aggregation = "all" },
      { task = "STS17 (en-en)", data = "sts17", split = "test", subset = "en-en", aggregation = "all" },
      { task = "STSBenchmark", data = "stsb", split = "test", aggregation = "all" },
      { task = "SICK-R", data = "sick", split = "all", aggregation = "all" },
    },
    not_included = { "BIOSSES", "STS22 (en)" },
  },
}

-- Runs every task of a suite: { suite, title, tasks = { {task, result}, ... },
-- average, not_included }. opts.data picks the data root.
function M.run_suite(name, encode, opts)
  opts = util.options(opts, { data = util.ANY }, "lacos.sts.run_suite")
  local suite = M.SUITES[name]
  if not suite then error(("lacos.sts.run_suite: unknown suite '%s' (senteval, senteval_raw, mteb_en)"):format(tostring(name)), 2) end
  local data = require "lacos.data"
  local out = { suite = name, title = suite.title, tasks = {}, not_included = suite.not_included }
  local sum = 0
  for _, t in ipairs(suite.tasks) do
    local set = data.load(t.data, { split = t.split, subset = t.subset, data = opts.data })
    local r = M.evaluate_set(set, encode, { aggregation = t.aggregation })
    r.task = t.task
    out.tasks[#out.tasks + 1] = r
    sum = sum + r.main
    set:free()
  end
  out.average = sum / #suite.tasks
  return out
end

-- The plain mean of main scores keyed by task name, checking the suite's
-- tasks are all there: M.average({STS12 = 70.1, ...}, "senteval").
function M.average(scores, name)
  local suite = M.SUITES[name]
  if not suite then error(("lacos.sts.average: unknown suite '%s'"):format(tostring(name)), 2) end
  local sum = 0
  for _, t in ipairs(suite.tasks) do
    local v = scores[t.task]
    if type(v) ~= "number" then error(("lacos.sts.average: no score for task %s of suite %s"):format(t.task, name), 2) end
    sum = sum + v
  end
  return sum / #suite.tasks
end

return M
