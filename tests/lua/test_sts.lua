-- test_sts.lua: lacos.sts against scipy.stats on the fixtures written by
-- tests/reference/make_sts.py (tolerance 1e-9), the aggregation rules, the
-- cosine scores, and the suites' wiring to the registry. The real gold
-- scores are read from the shared datasets (LACOS_TEST_DATA) at test time:
-- the fixture holds only their digests and what scipy computed.
local H = require "harness"
local lacos = require "lacos"
local sts, data, T = lacos.sts, lacos.data, lacos.tensor
local json = require "lacos.json"
local ffi = require "ffi"

local fx = json.read(H.root .. "/tests/fixtures/sts/cases.json")
local function num(v) if v == json.null then return 0 / 0 end return v end
local function same_or_nan(a, b, tol, what)
  if b ~= b then
    if a == a then error(("%s: expected NaN (scipy), got %s"):format(what, tostring(a)), 2) end
    return
  end
  H.near(a, b, tol, what)
end

local function sha256_hex(fn, arg, len)
  local hex = ffi.new("char[65]")
  if len then assert(fn(arg, len, hex) == 0) elseif fn(arg, hex) ~= 0 then return nil end
  return ffi.string(hex)
end
-- sha256 of the values printed with %.17g, one per line (make_sts.py's digest).
local function values_sha256(v)
  local parts = {}
  for i = 1, #v do parts[i] = ("%.17g\n"):format(v[i]) end
  local s = table.concat(parts)
  return sha256_hex(lacos.engine.C.lacos_sha256_buffer, s, #s)
end

-- make_sts.py's predictions: minstd draws, exact in doubles.
local function minstd(seed, n)
  local out, s = {}, seed
  for i = 1, n do
    s = math.fmod(48271 * s, 2147483647)
    out[i] = s / 2147483647
  end
  return out
end
local function predictions(rule, gold)
  local x, n = {}, #gold
  if rule.kind == "uniform" then
    local u = minstd(rule.seed, n)
    for i = 1, n do x[i] = 2 * u[i] - 1 end
  elseif rule.kind == "gold+noise" then
    local u = minstd(rule.seed, 4 * n)
    for i = 1, n do
      local k = 4 * (i - 1)
      x[i] = gold[i] + rule.scale * ((((u[k + 1] + u[k + 2]) + u[k + 3]) + u[k + 4]) - 2)
    end
  else
    error("unknown prediction rule " .. tostring(rule.kind))
  end
  return x
end

H.test("Spearman, Pearson and average ranks equal scipy.stats to 1e-9", function()
  H.truthy(#fx.cases >= 13, "fixture cases")
  local worst = 0
  for _, c in ipairs(fx.cases) do
    local s, p = sts.spearman(c.x, c.y), sts.pearson(c.x, c.y)
    same_or_nan(s, num(c.spearman), 1e-9, c.name .. " spearman")
    same_or_nan(p, num(c.pearson), 1e-9, c.name .. " pearson")
    if s == s then worst = math.max(worst, math.abs(s - c.spearman), math.abs(p - c.pearson)) end
    H.same(sts.rank(c.x), c.rank_x, 0, c.name .. " ranks of x")
    H.same(sts.rank(c.y), c.rank_y, 0, c.name .. " ranks of y")
  end
  print(("# largest difference from scipy %s over %d cases: %.2e"):format(fx.scipy, #fx.cases, worst))
end)

H.test("real gold scores read by lacos.data: Spearman, Pearson and ranks equal scipy's", function()
  if not (H.data and H.exists(H.data .. "/sts/stsb/sts-test.csv")) then H.skip("LACOS_TEST_DATA is not there") end
  data.set_root(H.data)
  H.eq(#fx.real, 5, "real cases in the fixture")
  local worst = 0
  for _, c in ipairs(fx.real) do
    for _, f in ipairs(c.files) do
      local got = sha256_hex(lacos.engine.C.lacos_sha256_file, H.data .. "/" .. f.path)
      if got ~= f.sha256 then
        error(("%s/%s differs from the copy the fixture was made from (sha256 %s, expected %s)"):format(
          H.data, f.path, tostring(got), f.sha256))
      end
    end
    local s = data.load(c.source.dataset, { split = c.source.split, subset = c.source.subset })
    local gold = s:scores()
    H.eq(#gold, c.gold.n, c.name .. ": pairs")
    H.eq(values_sha256(gold), c.gold.sha256, c.name .. ": the gold scores lacos.data reads, against make_sts.py's")
    local x = predictions(c.predictions, gold)
    local sp, pr = sts.spearman(x, gold), sts.pearson(x, gold)
    H.near(sp, c.spearman, 1e-9, c.name .. " spearman")
    H.near(pr, c.pearson, 1e-9, c.name .. " pearson")
    worst = math.max(worst, math.abs(sp - c.spearman), math.abs(pr - c.pearson))
    H.eq(values_sha256(sts.rank(x)), c.rank_x_sha256, c.name .. ": ranks of the predictions")
    H.eq(values_sha256(sts.rank(gold)), c.rank_y_sha256, c.name .. ": ranks of the gold scores")
    -- and evaluate() on those predictions gives scipy's numbers x100
    local r = sts.evaluate(s, x)
    H.near(r.spearman, 100 * c.spearman, 1e-7, c.name)
    H.near(r.pearson, 100 * c.pearson, 1e-7, c.name)
  end
  print(("# largest difference from scipy over %d real gold sets: %.2e"):format(#fx.real, worst))
end)

H.test("inputs: lists, tensors, double arrays; errors", function()
  local x, y = { 1, 2, 3, 4 }, { 1, 3, 2, 4 }
  local v = sts.spearman(x, y)
  H.near(v, 0.8, 1e-15)
  H.near(sts.spearman(T.from(x, "f32"), T.from(y, "f64")), v, 1e-15)
  local a, b = lacos.engine.ffi.new("double[4]", x), lacos.engine.ffi.new("double[4]", y)
  H.near(sts.pearson(a, b, 4), sts.pearson(x, y), 1e-15)
  H.raises("3 predictions but 4 gold scores", sts.spearman, { 1, 2, 3 }, y)
  H.raises("entry 2 is a string", sts.pearson, { 1, "x", 3, 4 }, y)
  H.raises("needs at least 2 pairs", sts.spearman, { 1 }, { 2 })
  H.raises("needs its length n", sts.spearman, a, b)
  H.raises("expected a 1-d tensor", sts.spearman, T.zeros({ 2, 2 }), T.zeros({ 2, 2 }))
  local nan = sts.spearman({ 1, 0 / 0, 3 }, { 1, 2, 3 })
  H.truthy(nan ~= nan, "a NaN prediction gives NaN")
  H.raises("not finite", sts.rank, { 1, 0 / 0 })
end)

H.test("cosine_scores: row-wise cosine in double", function()
  local e1 = T.from({ { 1, 0, 0 }, { 0, 3, 4 }, { 0, 0, 0 }, { 1, 2, 3 } }, "f32")
  local e2 = T.from({ { 1, 1, 0 }, { 0, -3, -4 }, { 1, 1, 1 }, { 2, 4, 6 } }, "f32")
  local c = sts.cosine_scores(e1, e2)
  H.eq(c:type(), "f64")
  H.same(c:table(), { 1 / math.sqrt(2), -1, 0, 1 }, 1e-12)
  -- random embeddings against a Lua reference
  local a, b = T.randn({ 50, 64 }, { seed = 1 }), T.randn({ 50, 64 }, { seed = 2 })
  local got, ta, tb = sts.cosine_scores(a, b):table(), a:table(), b:table()
  for i = 1, 50 do
    local dot, na, nb = 0, 0, 0
    for j = 1, 64 do dot = dot + ta[i][j] * tb[i][j]; na = na + ta[i][j] ^ 2; nb = nb + tb[i][j] ^ 2 end
    H.near(got[i], dot / math.sqrt(na * nb), 1e-12, "row " .. i)
  end
  H.raises("shapes differ", sts.cosine_scores, a, T.randn({ 49, 64 }))
  H.raises("expected two (n, d) tensors", sts.cosine_scores, a, { 1, 2 })
end)

-- A set with three subsets written here: the aggregation rules.
local function three_subsets()
  local dir = H.tmp .. "/agg"
  os.execute("mkdir -p " .. dir)
  local set
  for k, rows in ipairs {
    { { "a", "b", 0 }, { "c", "d", 1 }, { "e", "f", 2 }, { "g", "h", 3 } },
    { { "i", "j", 5 }, { "k", "l", 4 }, { "m", "n", 1 } },
    { { "o", "p", 2 }, { "q", "r", 2.5 }, { "s", "t", 0.5 }, { "u", "v", 4 }, { "w", "x", 3 } },
  } do
    local lines = {}
    for _, r in ipairs(rows) do lines[#lines + 1] = table.concat(r, "\t") end
    H.write(dir .. "/s" .. k .. ".tsv", table.concat(lines, "\n") .. "\n")
  end
  H.write(dir .. "/registry.local.json", [[{"sets": [{"id": "agg", "kind": "sts", "format": {"reader": "tsv",
    "columns": {"s1": 1, "s2": 2, "score": 3}}, "default_split": "test", "splits": {"test": {"pairs": 12, "subsets": [
    {"name": "one", "file": "s1.tsv"}, {"name": "two", "file": "s2.tsv"}, {"name": "three", "file": "s3.tsv"}]}}}]}]])
  return data.load("agg", { data = dir })
end

H.test("evaluate: per-subset scores and the all / mean / wmean rules", function()
  local set = three_subsets()
  -- subset two is ranked perfectly but sits below the others: concatenating hurts it
  local pred = { 0.1, 0.3, 0.2, 0.9, -0.9, -0.95, -1.0, 0.5, 0.45, 0.55, 0.7, 0.6 }
  local r = sts.evaluate(set, pred)
  H.eq(r.n, 12); H.eq(#r.subsets, 3); H.eq(r.aggregation, "all"); H.eq(r.metric, "cosine_spearman")
  local gold = set:scores()
  local per, first = {}, 1
  for k, u in ipairs(set:subsets()) do
    local p, g = {}, {}
    for i = u.first, u.first + u.count - 1 do p[#p + 1] = pred[i]; g[#g + 1] = gold[i] end
    per[k] = { n = u.count, s = 100 * sts.spearman(p, g), p = 100 * sts.pearson(p, g) }
    H.near(r.subsets[k].spearman, per[k].s, 1e-12, u.name)
    H.near(r.subsets[k].pearson, per[k].p, 1e-12, u.name)
  end
  H.near(r.all.spearman, 100 * sts.spearman(pred, gold), 1e-12, "all = one correlation over the concatenation")
  H.near(r.spearman, r.all.spearman, 0)
  H.near(r.mean.spearman, (per[1].s + per[2].s + per[3].s) / 3, 1e-12, "mean")
  H.near(r.wmean.spearman, (4 * per[1].s + 3 * per[2].s + 5 * per[3].s) / 12, 1e-12, "wmean")
  H.near(r.wmean.pearson, (4 * per[1].p + 3 * per[2].p + 5 * per[3].p) / 12, 1e-12, "wmean pearson")
  print(("# all %.4f, mean %.4f, wmean %.4f"):format(r.all.spearman, r.mean.spearman, r.wmean.spearman))
  H.truthy(math.abs(r.all.spearman - r.mean.spearman) > 1 and math.abs(r.mean.spearman - r.wmean.spearman) > 0.1, "the rules differ on this data")
  H.near(sts.evaluate(set, pred, { aggregation = "wmean" }).main, r.wmean.spearman, 0)
  H.eq(#r.digest, 64)
  H.raises("11 predictions for 12 pairs", sts.evaluate, set, { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 })
  H.raises("unknown option 'rule'", sts.evaluate, set, pred, { rule = "all" })
  H.raises("rule must be all, mean or wmean", sts.aggregate, { { n = 2, spearman = 1, pearson = 1 } }, "median")
  H.raises("needs pred and gold", sts.aggregate, { { n = 2, spearman = 1, pearson = 1 } }, "all")
  -- an NLI set has no gold scores
  H.write(H.tmp .. "/nli.tsv", "a\tb\tentailment\nc\td\tneutral\n")
  H.raises("has no gold score", sts.evaluate, data.read_pairs(H.tmp .. "/nli.tsv", { format = "nli" }), { 1, 2 })
end)

H.test("constant gold scores (no Spearman defined) are an error naming the set, before any embedding", function()
  H.write(H.tmp .. "/const.tsv", "a\tb\t3\nc\td\t3\ne\tf\t3.0\n")
  local set = data.read_pairs(H.tmp .. "/const.tsv", { format = "generic" })
  H.raises("const.tsv: every gold score is 3: Spearman's correlation is undefined", sts.evaluate, set, { 0.1, 0.5, 0.9 })
  local encoded = false
  H.raises("const.tsv: every gold score is 3", sts.evaluate_set, set, function() encoded = true end)
  H.eq(encoded, false, "refused before the encoder ran")
  -- one subset of a registry set with every score equal: named
  local dir = H.tmp .. "/agg-const"
  os.execute("mkdir -p " .. dir)
  H.write(dir .. "/s1.tsv", "a\tb\t1\nc\td\t2\n")
  H.write(dir .. "/s2.tsv", "e\tf\t4\ng\th\t4\n")
  H.write(dir .. "/registry.local.json", [[{"sets": [{"id": "aggc", "kind": "sts", "format": {"reader": "tsv",
    "columns": {"s1": 1, "s2": 2, "score": 3}}, "default_split": "test", "splits": {"test": {"pairs": 4, "subsets": [
    {"name": "one", "file": "s1.tsv"}, {"name": "flat", "file": "s2.tsv"}]}}}]}]])
  local sub = data.load("aggc", { data = dir })
  H.raises("aggc/test: every gold score of subset flat is 4", sts.evaluate, sub, { 0.1, 0.2, 0.3, 0.4 })
  sub:free()
end)

H.test("evaluate_set and run_suite with an encoder", function()
  local set = three_subsets()
  -- a toy encoder: a bag of letters, so the scores are deterministic
  local function encode(list)
    local rows = {}
    for i, s in ipairs(list) do
      local v = {}
      for k = 1, 26 do v[k] = 0 end
      for ch in s:gmatch("%a") do local k = ch:lower():byte() - 96 v[k] = v[k] + 1 end
      v[(i % 26) + 1] = v[(i % 26) + 1] + 0.5
      rows[i] = v
    end
    return T.from(rows, "f32")
  end
  local r = sts.evaluate_set(set, encode)
  H.eq(r.n, 12)
  H.truthy(r.spearman == r.spearman, "a number")
  H.raises("encode must be a function", sts.evaluate_set, set, 42)
  -- the suites name registry sets and subsets that exist
  for name, suite in pairs(sts.SUITES) do
    for _, t in ipairs(suite.tasks) do
      local set_def = data.find(t.data)
      local sp = set_def.splits[t.split]
      H.truthy(sp, name .. ": " .. t.data .. " has split " .. t.split)
      if t.subset then data.select(set_def, { split = t.split, subset = t.subset }) end
    end
  end
  H.eq(#sts.SUITES.senteval.tasks, 7)
  H.near(sts.average({ STS12 = 1, STS13 = 2, STS14 = 3, STS15 = 4, STS16 = 5, STSBenchmark = 6, ["SICK-R"] = 7 }, "senteval"), 4, 0)
  H.raises("no score for task STS13", sts.average, { STS12 = 1 }, "senteval")
  H.raises("unknown suite 'glue'", sts.run_suite, "glue", encode)
  if not (H.data and H.exists(H.data .. "/sts/stsb/sts-test.csv")) then return end
  data.set_root(H.data)
  local t0 = os.clock()
  local res = sts.run_suite("mteb_en", encode)
  H.eq(#res.tasks, 8)
  H.eq(res.tasks[8].n, 9927, "MTEB SICK-R scores all 9,927 pairs")
  H.eq(res.tasks[6].n, 250, "STS17 en-en")
  local sum = 0
  for _, t in ipairs(res.tasks) do sum = sum + t.main end
  H.near(res.average, sum / 8, 1e-12)
  local se = sts.run_suite("senteval", encode)
  H.eq(se.tasks[1].n, 3108); H.eq(se.tasks[1].text, "senteval-tokenized"); H.eq(se.tasks[1].aggregation, "all")
  print(("# two suites with a toy encoder in %.2f s"):format(os.clock() - t0))
end)

-- Exit through lua_close so that finalizers free the engine memory the pair
-- sets hold (and cjson its buffer): LeakSanitizer under make SAN=1 cannot see
-- pointers kept only in the LuaJIT heap.
local exit = os.exit
os.exit = function(code) exit(code, true) end
H.done()
