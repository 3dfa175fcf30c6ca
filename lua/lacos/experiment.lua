-- lacos.experiment: what the scripts in experiments/ share — finding the
-- BLOOM checkpoints (or falling back to the synthetic ladder), the training
-- pairs, the STS evaluation of a point, and one sweep point end to end
-- (train LoRA, save the adapter, evaluate, log everything).
local lacos = require "lacos"
local ffi = require "ffi"
local util = require "lacos.util"

local M = {}

M.REAL = { "bloom-560m", "bloom-1b1", "bloom-1b7", "bloom-3b", "bloom-7b1" }
M.SYNTHETIC = { "tiny-xs", "tiny-s", "tiny-m", "tiny-l" }

local exists = util.exists

-- The synthetic models' tokenizer: trained with the `tokenizers` library on
-- the shared data, configured exactly like BLOOM's (datasets/tokenizers/).
function M.synthetic_tokenizer()
  return lacos.engine.home .. "/datasets/tokenizers/bloomlike-32k.json"
end

-- Data root: --data / LACOS_DATA / datasets/ when it holds the STS files,
-- else the ../shared/datasets next to the lacos tree (this project's layout);
-- as an absolute path, so the runs record where the data was wherever the
-- sweep ran from.
local function data_root(dir)
  if dir then return dir end
  local env = os.getenv("LACOS_DATA")
  if env and env ~= "" then return env end
  local home = lacos.engine.home
  if exists(home .. "/datasets/sts/stsb/sts-test.csv") then return home .. "/datasets" end
  local shared = home .. "/../shared/datasets"
  if exists(shared .. "/sts/stsb/sts-test.csv") then return shared end
  return home .. "/datasets"
end
function M.data_root(dir) return util.abspath(data_root(dir)) end

-- A models directory (--models) as an absolute path: where a sweep found
-- its checkpoints, whatever directory it ran from.
function M.models_dir(dir) return util.abspath(dir or "models") end

-- Models to sweep: the released checkpoints present under dir, or (none
-- present, or synthetic forced) the random-weight ladder.
function M.models(dir, opts)
  opts = opts or {}
  local found = {}
  if not opts.synthetic then
    for _, name in ipairs(opts.names or M.REAL) do
      if exists(("%s/%s/config.json"):format(dir, name)) then found[#found + 1] = name end
    end
  end
  if #found > 0 then return found, false end
  return opts.synthetic_names or M.SYNTHETIC, true
end

-- The config a point's model has: a shape lacos knows (the synthetic
-- ladder), else the checkpoint's config.json (a released BLOOM, a BERT
-- baseline), as lacos.bloom.config gives it.
function M.model_config(point)
  if point.synthetic then return lacos.bloom.config(point.model) end
  return lacos.bloom.config(point.models_dir .. "/" .. point.model .. "/config.json")
end

-- "bloom" or "bert": what a point's model is, without loading its weights.
function M.model_family(point)
  if point.synthetic then return "bloom" end
  local f = io.open(point.models_dir .. "/" .. point.model .. "/config.json", "rb")
  if not f then return "bloom" end
  local text = f:read("*a")
  f:close()
  local ok, cfg = pcall(require("lacos.json").decode, text)
  return (ok and type(cfg) == "table" and cfg.model_type == "bert") and "bert" or "bloom"
end

local model_cache = { key = nil, model = nil }
-- The model of a point, kept across consecutive points of the same model.
function M.model(point)
  local key = table.concat({ point.model, tostring(point.synthetic), point.models_dir or "", point.quant or "int8",
                             tostring(point.threshold or 0), table.concat(point.int8_skip or {}, ",") }, "|")
  if model_cache.key == key then
    model_cache.model:remove_lora()
    return model_cache.model
  end
  if model_cache.model then model_cache.model:free(); model_cache.model = nil; collectgarbage() end
  local m
  if point.synthetic then
    m = lacos.bloom.random(point.model, { seed = point.model_seed or 1, quant = point.quant or "int8",
                                          tokenizer = M.synthetic_tokenizer(), int8_skip = point.int8_skip })
  else
    m = lacos.bloom.load(point.models_dir .. "/" .. point.model, { quant = point.quant or "int8",
                                                                 threshold = point.threshold or 0, cache = true,
                                                                 int8_skip = point.int8_skip })
  end
  model_cache.key, model_cache.model = key, m
  return m
end

-- A dataset's state under root (present, partial, missing, corrupt): the
-- registry entries are read once, the files looked at every time (a REPL
-- user may pull the data between two checks).
local set_cache = {}
local function data_state(id, root)
  local key = root .. "|" .. id
  if set_cache[key] == nil then
    local ok, set = pcall(lacos.data.find, id, root)
    set_cache[key] = ok and set or false
  end
  if not set_cache[key] then return "unknown to the registry" end
  local ok, st = pcall(lacos.data.status, set_cache[key], { data = root })
  return ok and st.state or "unreadable"
end

-- The set a point trains on: AllNLI when present (the paper's data; it is
-- English, so it replaces the SNLI stand-in, never XNLI), else the stand-in.
function M.training_set(root, which)
  which = which or "nli"
  if which == "nli" and data_state("allnli", root) == "present" then return "allnli" end
  return which == "xnli" and "xnli-dev" or "snli-infersent"
end

-- Training pairs: AllNLI's entailment pairs when present (the paper's data),
-- else the NLI stand-ins in the data root (SNLI dev + test as
-- premise/entailment/contradiction triplets). Cached per process.
local pairs_cache = {}
function M.training_pairs(root, which)
  which = which or "nli"
  local key = root .. "|" .. which
  if pairs_cache[key] then return pairs_cache[key].data, pairs_cache[key].source end
  local data = lacos.data
  local id = M.training_set(root, which)
  local set, source
  if id == "allnli" then
    set, source = data.nli_triplets("allnli", { data = root, mode = "entailment" }), "allnli (SNLI + MultiNLI entailment pairs)"
  elseif id == "xnli-dev" then
    set = data.nli_triplets("xnli-dev", { data = root, mode = "premise", seed = 0 })
    source = "xnli-dev (15 languages; premise/entailment/contradiction triplets) — a stand-in"
  else
    local dev = data.nli_triplets("snli-infersent", { data = root, split = "dev", mode = "premise" })
    local test = data.nli_triplets("snli-infersent", { data = root, split = "test", mode = "premise" })
    local rows = dev:rows()
    for _, r in ipairs(test:rows()) do rows[#rows + 1] = r end
    dev:free(); test:free()
    pairs_cache[key] = { data = lacos.pairs.from_list(rows, "snli-infersent dev+test"), source = "snli-infersent dev+test triplets — a stand-in for AllNLI" }
    return pairs_cache[key].data, pairs_cache[key].source
  end
  local p = set:to_pairs()
  set:free()
  pairs_cache[key] = { data = p, source = source }
  return p, source
end

-- The evaluation tasks: dataset id, split, subsets/languages logged one row each.
M.EVAL = {
  english = {
    { task = "STS12", data = "sts12" }, { task = "STS13", data = "sts13" }, { task = "STS14", data = "sts14" },
    { task = "STS15", data = "sts15" }, { task = "STS16", data = "sts16" },
    { task = "STSBenchmark", data = "stsb" }, { task = "SICK-R", data = "sick" },
  },
  multilingual = {
    { task = "STS17", data = "sts17", per_subset = true },
    { task = "stsb-multi-mt", data = "stsb-multi-mt", per_subset = true },
  },
}

-- Evaluates `model` on the task lists, logging every score into run (if
-- given). limit > 0 keeps the first `limit` pairs of each set/subset (the
-- synthetic ladder's time budget). Returns { [task_key] = spearman x100 }.
function M.evaluate(model, run, opts)
  opts = util.options(opts, { root = util.REQUIRED, tasks = util.REQUIRED, pooling = "weightedmean", limit = 0,
                              batch = 64, label = util.ANY, quiet = true }, "experiment.evaluate")
  local sts, data = lacos.sts, lacos.data
  local scores = {}
  local function encode(list) return model:encode(list, { pooling = opts.pooling, batch = opts.batch, max_length = 256,
                                                         truncation = true, force = true }) end
  local clock = require("lacos.train").clock
  for _, group in ipairs(opts.tasks) do
    for _, t in ipairs(M.EVAL[group]) do
      local t0, pairs_done, parts = clock(), 0, {}
      local set = data.load(t.data, { split = "test", data = opts.root })
      local units = {}
      if t.per_subset then
        for _, u in ipairs(set:subsets()) do units[#units + 1] = u end
      else
        units[1] = false
      end
      for _, u in ipairs(units) do
        local sub = set
        if u then sub = data.load(t.data, { split = "test", subset = u.name, data = opts.root }) end
        local n = sub:size()
        local s1, s2 = sub:sentences(1), sub:sentences(2)
        local gold = sub:scores()
        if opts.limit > 0 and n > opts.limit then
          local a, b, g = {}, {}, {}
          for i = 1, opts.limit do a[i], b[i], g[i] = s1[i], s2[i], gold[i] end
          s1, s2, gold, n = a, b, g, opts.limit
        end
        local cos = sts.pair_cosines(s1, s2, encode)
        local pred = cos:to("f64"):table()
        local sp, pe = sts.spearman(pred, gold, n), sts.pearson(pred, gold, n)
        local lang = u and (u.lang2 and u.lang2 ~= u.lang1 and (u.lang1 .. "-" .. u.lang2) or u.lang1) or "en"
        local key = t.task .. (lang ~= "en" and (" " .. lang) or "")
        scores[key] = 100 * sp
        parts[#parts + 1] = u and ("%s %.2f"):format(lang, 100 * sp) or ("%.2f"):format(100 * sp)
        if run then
          run:sts { dataset = t.task, language = lang, split = "test", n = n, spearman = sp, pearson = pe,
                    pooling = opts.pooling, text_variant = "raw", aggregation = "all", similarity = "cosine",
                    model = opts.label, quantisation = model:quantisation(), dataset_sha256 = sub:digest() }
        end
        pairs_done = pairs_done + n
        if u then sub:free() end
      end
      set:free()
      local took = clock() - t0
      -- the task's wall time, loading included (MTEB's evaluation_time)
      if run then run:timing { phase = "sts:" .. t.task, n_items = pairs_done, avg_ns = took * 1e9, repetitions = 1 } end
      if not opts.quiet then
        io.stderr:write(("lacos: eval %s: Spearman x100 %s (%d pairs%s, %.1f s)\n"):format(t.task, table.concat(parts, ", "),
          pairs_done, #units > 1 and (", %d subsets"):format(#units) or "", took))
      end
    end
  end
  return scores
end

-- The recipe of the paper's experiment as experiments/scale.lua runs it on
-- the released checkpoints (the README's: LoRA r 8, alpha 16 on
-- query_key_value, dropout 0.05; lr 2e-4, one epoch, batches of 32). The
-- synthetic ladder trains otherwise; every trained point records how its
-- recipe compares (param `recipe`).
M.PAPER_RECIPE = { r = 8, alpha = 16, targets = { "query_key_value" }, dropout = 0.05, lr = 2e-4, epochs = 1, batch_size = 32 }
local RECIPE_KEYS = { "r", "alpha", "targets", "dropout", "lr", "epochs" }

-- "the paper's recipe", or what differs from it: "not the paper's recipe:
-- lr 0.005 (paper 0.0002), targets all (paper query_key_value), ...".
function M.recipe_note(point)
  local function show(v) if type(v) == "table" then return table.concat(v, ",") end return tostring(v) end
  local diffs = {}
  for _, k in ipairs(RECIPE_KEYS) do
    local mine = point[k]
    if mine == nil then mine = ({ r = 8, alpha = 16, targets = { "query_key_value" }, dropout = 0.05, lr = 2e-4, epochs = 1 })[k] end   -- run_point's defaults
    if show(mine) ~= show(M.PAPER_RECIPE[k]) then
      diffs[#diffs + 1] = ("%s %s (paper %s)"):format(k, show(mine), show(M.PAPER_RECIPE[k]))
    end
  end
  if #diffs == 0 then return "the paper's recipe" end
  return "not the paper's recipe: " .. table.concat(diffs, ", ")
end

-- One sweep point: LoRA training on the first `pairs` pairs (0 = the
-- untrained model), the adapter saved in ctx.dir/adapter, evaluation logged.
function M.run_point(point, ctx)
  local m = M.model(point)
  local run = ctx.run
  local train_pairs, source = M.training_pairs(point.data_root, point.train_data)
  local n = point.pairs == "all" and train_pairs:size() or math.min(point.pairs, train_pairs:size())
  -- the point's own values are already params (from its config); these are derived
  -- (the model's own pooling unless the point names one: a sentence-transformers
  -- directory's, else weightedmean)
  local pooling = point.pooling or m:pooling()
  local family = m:family()
  run:params { model_params = lacos.engine.C.lacos_bloom_config_params(M.model_config(point)), n_pairs = n,
               training_data = source, family = family, pooling = point.pooling == nil and pooling or nil }
  if n > 0 then
    -- the recipe as trained: the defaults below too, not only what the point set
    local effective = { recipe = M.recipe_note(point) }
    local targets = point.targets or lacos.bloom.default_targets[family]
    for k, v in pairs { r = 8, alpha = 16, dropout = 0.05, targets = targets, lr = 2e-4, epochs = 1, batch_size = 16,
                        max_length = 64 } do
      if point[k] == nil then effective[k] = v end
    end
    run:params(effective)
    m:add_lora { r = point.r or 8, alpha = point.alpha or 16, dropout = point.dropout or 0.05,
                 targets = targets, seed = point.seed or 1 }
    local result = lacos.train {
      model = m, data = train_pairs:take(n), batch_size = point.batch_size or 16, epochs = point.epochs or 1, lr = point.lr or 2e-4,
      warmup = 0.1, seed = point.seed or 1, pooling = pooling, max_length = point.max_length or 64,
      checkpoint_dir = ctx.dir .. "/checkpoints", checkpoint_every = point.checkpoint_every or 50, run = run,
      fast_backward = true, mini_batch = point.mini_batch,   -- checkpointing: lacos.train's default for the size
      -- output settings come from the sweep's execution, never from the point (they must not change its identity)
      quiet = ctx.quiet or false, print_every = ctx.log_every,
    }
    if result.status ~= "done" then return result end
    -- with several ranks, rank 0 alone saves the adapter and evaluates (the others hold a null run)
    if run.null then return { status = "done" } end
    m:save_lora(ctx.dir .. "/adapter", { pooling = pooling, base_model = point.model })
    run:artifact { path = ctx.dir .. "/adapter", kind = "adapter" }
  end
  if run.null then return { status = "done" } end
  local scores = M.evaluate(m, run, { root = point.data_root, tasks = point.eval or { "english", "multilingual" },
                       pooling = pooling, limit = point.eval_limit or 0,
                       label = point.model .. (point.synthetic and " (synthetic)" or ""), quiet = ctx.quiet or false })
  return { status = "done", scores = scores, headline = M.headline(scores) }
end

-- The scores a point's summary line names: STSBenchmark, SICK-R and the
-- mean of the English sets, the mean over STS17's tracks and over
-- stsb-multi-mt's languages (Spearman x100), those that were evaluated.
function M.headline(scores)
  local parts = {}
  local function mean(match)
    local sum, n = 0, 0
    for k, v in pairs(scores) do if match(k) then sum, n = sum + v, n + 1 end end
    return n > 0 and sum / n or nil, n
  end
  if scores["STSBenchmark"] then parts[#parts + 1] = ("STSBenchmark %.2f"):format(scores["STSBenchmark"]) end
  if scores["SICK-R"] then parts[#parts + 1] = ("SICK-R %.2f"):format(scores["SICK-R"]) end
  local english = {}
  for _, t in ipairs(M.EVAL.english) do english[t.task] = true end
  local en, n_en = mean(function(k) return english[k] end)
  if en and n_en > 2 then parts[#parts + 1] = ("English mean %.2f"):format(en) end
  local s17, n17 = mean(function(k) return k == "STS17" or k:match("^STS17 ") end)
  if s17 then parts[#parts + 1] = ("STS17 mean %.2f (%d)"):format(s17, n17) end
  local mt, nmt = mean(function(k) return k == "stsb-multi-mt" or k:match("^stsb%-multi%-mt ") end)
  if mt then parts[#parts + 1] = ("stsb-multi-mt mean %.2f (%d)"):format(mt, nmt) end
  return table.concat(parts, ", ")
end

-- ---------------------------------------------------------------- data a point needs

-- The registry sets a point reads: its evaluation sets, and its training
-- set when it trains.
function M.data_needed(point)
  local ids, seen = {}, {}
  local function add(id) if not seen[id] then seen[id] = true; ids[#ids + 1] = id end end
  for _, group in ipairs(point.eval or { "english", "multilingual" }) do
    for _, t in ipairs(M.EVAL[group] or {}) do add(t.data) end
  end
  if point.pairs ~= 0 then add(M.training_set(point.data_root, point.train_data)) end
  return ids
end

-- Downloads the registry sets `ids` that are not all there under root
-- (lacos.data.pull: sha256-checked, resumed after a dropped connection,
-- with a progress bar on a terminal; LACOS_DATA_MIRROR points it at a
-- mirror of a data root). `who` names the caller in messages. On failure
-- raises one message naming the ways out; nothing is left behind but the
-- files that arrived whole and a partial download to resume.
function M.fetch_data(root, ids, who)
  local missing = {}
  for _, id in ipairs(ids) do
    if data_state(id, root) ~= "present" then missing[#missing + 1] = id end
  end
  if #missing == 0 then return 0 end
  local mirror = os.getenv("LACOS_DATA_MIRROR")
  io.stderr:write(("%s: fetching %d dataset%s into %s from %s: %s\n"):format(who, #missing, #missing == 1 and "" or "s",
    root, (mirror and mirror ~= "") and ("the mirror " .. mirror) or "their registry addresses", table.concat(missing, ", ")))
  local E = lacos.engine
  -- bytes of the set under root, its partial downloads included: a retry is worth it while this grows
  local function arrived(id)
    local set, n = lacos.data.find(id, root), 0
    for _, f in ipairs(set.files) do n = n + (lacos.data.file_size(lacos.data.join(root, f.path)) or 0) end
    local staging = lacos.data.join(root, ".lacos/staging/" .. id)
    for _, name in ipairs(util.listdir(staging) or {}) do n = n + (lacos.data.file_size(lacos.data.join(staging, name)) or 0) end
    return n
  end
  for _, id in ipairs(missing) do
    local tries = 0
    while true do
      local before = arrived(id)
      local ok, err = pcall(lacos.data.pull, id, { data = root })
      if ok then break end
      if E.C.lacos_interrupt_pending() ~= 0 then error("interrupted", 0) end
      tries = tries + 1
      -- a dropped connection leaves a .part file: go on from where it stopped while bytes keep coming
      local staging = lacos.data.join(root, ".lacos/staging/" .. id)
      local partial = false
      for _, n in ipairs(util.listdir(staging) or {}) do if n:match("%.part$") then partial = true end end
      if not (partial and arrived(id) > before and tries < 100) then
        for _, d in ipairs { staging, lacos.data.join(root, ".lacos/staging"), lacos.data.join(root, ".lacos") } do os.remove(d) end
        error(("%s: the data it needs is not all under %s (%s), and downloading it failed:\n  %s\n" ..
               "  Use data you already have with --data DIR or LACOS_DATA=DIR (a data root: lacos data list --data DIR " ..
               "shows what it holds),\n  or a mirror that serves a data root's files with LACOS_DATA_MIRROR=URL " ..
               "(e.g. http://host:8000 over a copy of one)%s"):format(who, root, table.concat(missing, ", "),
               tostring(err):gsub("\n", "\n  "), partial and "; running again resumes the partial download" or ""), 0)
      end
      io.stderr:write(("%s: %s: the download stopped (%s); resuming\n"):format(who, id, (tostring(err):match("[^\n]*"))))
    end
    set_cache[root .. "|" .. id] = nil
  end
  return #missing
end

-- ---------------------------------------------------------------- validation

local function show(v)
  if type(v) == "string" then return ("%q"):format(v) end
  if type(v) == "table" then
    local ok, text = pcall(require("lacos.json").encode, v)
    return ok and text or "a table"
  end
  return tostring(v)
end

local function is_whole(v) return type(v) == "number" and v == v and v ~= math.huge and v ~= -math.huge and v == math.floor(v) end

local function whole_at_least(min)
  return function(v) if not (is_whole(v) and v >= min) then return ("must be a whole number >= %d"):format(min) end end
end
local function one_of(...)
  local list = { ... }
  return function(v)
    for _, c in ipairs(list) do if v == c then return nil end end
    return "must be one of " .. table.concat(list, ", ")
  end
end
local function of_type(t) return function(v) if type(v) ~= t then return "must be a " .. t end end end
local function list_of(check, what)
  return function(v)
    if type(v) ~= "table" or #v == 0 then return "must be a non-empty list of " .. what end
    for k in pairs(v) do if not is_whole(k) or k < 1 or k > #v then return "must be a list of " .. what end end
    for _, x in ipairs(v) do
      local err = check(x)
      if err then return ("has %s, which %s"):format(show(x), err) end
    end
  end
end

-- What a point of run_point may hold, each with its check. Anything else is
-- refused: a misspelt option would otherwise be ignored and the point run
-- with the default, which no one would notice in the results.
M.POINT_OPTIONS = {
  model = of_type("string"),
  synthetic = of_type("boolean"),
  models_dir = of_type("string"),
  data_root = of_type("string"),
  train_data = one_of("nli", "xnli"),
  pairs = function(v) if v ~= "all" and not (is_whole(v) and v >= 0) then return 'must be a whole number >= 0 or "all"' end end,
  seed = whole_at_least(0),
  model_seed = whole_at_least(0),
  quant = one_of("int8", "f32"),
  -- (whether the patterns name linears of the point's model, the engine says at load)
  int8_skip = list_of(function(x) if type(x) ~= "string" or x == "" then return "is not a module-name pattern" end end,
                      "module-name patterns"),
  threshold = function(v) if type(v) ~= "number" or not (v >= 0) or v == math.huge then return "must be a number >= 0" end end,
  r = whole_at_least(1),
  alpha = function(v) if type(v) ~= "number" or not (v > 0) or v == math.huge then return "must be a number > 0" end end,
  dropout = function(v) if type(v) ~= "number" or not (v >= 0 and v < 1) then return "must be a number in [0, 1)" end end,
  -- (either family's names here; validate_point checks them against the point's model)
  targets = list_of(function(x)
    local bloom = lacos.bloom
    if type(x) ~= "string" or not (bloom.targets[x] or bloom.target_presets[x] or bloom.bert_targets[x]
                                   or bloom.bert_target_presets[x]) then
      return "is not a LoRA target (BLOOM: query_key_value, dense, dense_h_to_4h, dense_4h_to_h, attn, mlp, all; " ..
             "BERT: query, key, value, dense, qkv, attn, mlp, all)"
    end
  end, "LoRA targets"),
  lr = function(v) if type(v) ~= "number" or not (v > 0) or v == math.huge then return "must be a number > 0" end end,
  epochs = whole_at_least(1),
  batch_size = whole_at_least(2),   -- in-batch negatives need a second pair
  mini_batch = whole_at_least(1),
  max_length = whole_at_least(2),
  pooling = one_of(unpack(lacos.bloom.pooling_list)),
  eval = list_of(function(x) if M.EVAL[x] == nil then return "is not an evaluation group (english, multilingual)" end end,
                 "evaluation groups"),
  eval_limit = whole_at_least(0),
  checkpoint_every = whole_at_least(1),
  -- a reference model evaluated beside the sweep (recorded as the param
  -- `baseline`: lacos results scale/plot show it as its own row and line)
  baseline = of_type("boolean"),
}
local REQUIRED = { "model", "pairs", "data_root" }

-- Checks one point without loading anything: every option known and of the
-- right kind, the model there (a checkpoint, or a shape lacos can generate),
-- the datasets it evaluates on and trains with present under data_root.
-- Raises with one problem per line, each naming the option.
function M.validate_point(p)
  if type(p) ~= "table" then error("a point must be a table of options, got " .. type(p), 0) end
  local problems = {}
  local function bad(fmt, ...) problems[#problems + 1] = fmt:format(...) end
  local names = {}
  for k in pairs(M.POINT_OPTIONS) do names[#names + 1] = k end
  table.sort(names)
  local keys = {}
  for k in pairs(p) do keys[#keys + 1] = tostring(k) end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local check = M.POINT_OPTIONS[k]
    if not check then
      local guess = require("lacos.args").suggest(k, names)
      bad("unknown option '%s'%s (known: %s)", k, guess and (" (did you mean '%s'?)"):format(guess) or "", table.concat(names, ", "))
    else
      local err = check(p[k])
      if err then bad("option '%s' %s, got %s", k, err, show(p[k])) end
    end
  end
  for _, k in ipairs(REQUIRED) do
    if p[k] == nil then bad("option '%s' is required", k) end
  end
  if #problems == 0 then
    if p.synthetic then
      local known = lacos.bloom.config_names()
      local found = false
      for _, n in ipairs(known) do if n == p.model then found = true end end
      if not found then bad("option 'model': no model shape '%s' (known: %s)", p.model, table.concat(known, ", ")) end
    elseif type(p.models_dir) ~= "string" then
      bad("option 'models_dir' is required for a released checkpoint (or set synthetic = true)")
    elseif not exists(p.models_dir .. "/" .. p.model .. "/config.json") then
      bad("option 'model': no checkpoint %s/%s (lacos pull bigscience/%s)", p.models_dir, p.model, p.model)
    end
    if #problems == 0 and p.targets then
      local family = M.model_family(p)
      local ok, err = pcall(lacos.bloom.target_bits, p.targets, family)
      if not ok then bad("option 'targets': %s", tostring(err):gsub("^[^:]*:%d+: ", "")) end
    end
    -- the skip list against the model's linears (and its quant), as the load will judge it
    if #problems == 0 and p.int8_skip then
      local ok, err = pcall(M.memory_weights, p)
      if not ok then bad("option 'int8_skip': %s", tostring(err):gsub("^[^:]*:%d+: ", "")) end
    end
    -- what it evaluates on, and (one line apart: not every point trains) what it trains with
    local eval_sets = {}
    for _, group in ipairs(p.eval or { "english", "multilingual" }) do
      for _, t in ipairs(M.EVAL[group]) do eval_sets[#eval_sets + 1] = t.data end
    end
    local train_sets = p.pairs ~= 0 and { M.training_set(p.data_root, p.train_data) } or {}
    for _, needed in ipairs { { eval_sets, "evaluation" }, { train_sets, "training" } } do
      local absent, ids = {}, {}
      for _, id in ipairs(needed[1]) do
        local state = data_state(id, p.data_root)
        if state ~= "present" then absent[#absent + 1] = ("%s (%s)"):format(id, state); ids[#ids + 1] = id end
      end
      if #absent > 0 then
        bad("option 'data_root': the %s data is not all there under %s: %s (lacos data list --data %s; lacos data pull %s)",
            needed[2], p.data_root, table.concat(absent, ", "), p.data_root, #ids == 1 and ids[1] or "NAME")
      end
    end
  end
  if #problems > 0 then error(table.concat(problems, "\n"), 0) end
  return true
end

-- ---------------------------------------------------------------- estimates

-- The tokenizer a point's model uses (for the token counts of --dry-run).
local function C_params(cfg) return lacos.engine.C.lacos_bloom_config_params(cfg) end

local function tokenizer_path(point)
  if point.synthetic then return M.synthetic_tokenizer() end
  return point.models_dir .. "/" .. point.model .. "/tokenizer.json"
end

-- Mean tokens per training sentence (truncated at max_length), counted with
-- the point's tokenizer on the first sentences of its training data.
local length_cache = {}
local function training_tokens_per_sentence(point, data)
  local max_length = point.max_length or 64
  local key = table.concat({ tokenizer_path(point), point.data_root, point.train_data or "nli", max_length }, "|")
  if length_cache[key] then return length_cache[key] end
  local texts = {}
  for i = 1, math.min(data:size(), 1000) do
    local a, b, c = data:get(i)
    texts[#texts + 1] = a
    texts[#texts + 1] = b
    if c then texts[#texts + 1] = c end
  end
  local per = 20   -- only when the tokenizer cannot be read
  local ok, tok = pcall(lacos.tokenizer.load, tokenizer_path(point))
  if ok and #texts > 0 then
    local ids = tok:encode_list(texts)
    local sum = 0
    for _, t in ipairs(ids) do sum = sum + math.min(#t, max_length) end
    per = sum / #ids
    tok:free()
  end
  length_cache[key] = per
  return per
end

-- Tokens the evaluation encodes: the STS sentences run_point evaluates (the
-- first eval_limit pairs of each set or subset), counted with the point's
-- tokenizer. Encoding sorts sentences by length, so padding adds little.
local eval_cache = {}
local function eval_tokens(point)
  local groups = point.eval or { "english", "multilingual" }
  local limit = point.eval_limit or 0
  local key = table.concat({ tokenizer_path(point), point.data_root, table.concat(groups, ","), limit }, "|")
  if eval_cache[key] then return eval_cache[key] end
  local ok, tok = pcall(lacos.tokenizer.load, tokenizer_path(point))
  local data = lacos.data
  local n = 0
  for _, group in ipairs(groups) do
    for _, t in ipairs(M.EVAL[group]) do
      local set = data.load(t.data, { split = "test", data = point.data_root })
      local units = {}
      if t.per_subset then for _, u in ipairs(set:subsets()) do units[#units + 1] = u.name end else units[1] = false end
      for _, u in ipairs(units) do
        local sub = u and data.load(t.data, { split = "test", subset = u, data = point.data_root }) or set
        local count = sub:size()
        if limit > 0 and count > limit then count = limit end
        local texts = {}
        for col = 1, 2 do
          local s = sub:sentences(col)
          for i = 1, count do texts[#texts + 1] = s[i] end
        end
        if ok then
          for _, ids in ipairs(tok:encode_list(texts)) do n = n + math.min(#ids, 256) end
        else
          n = n + 20 * #texts
        end
        if u then sub:free() end
      end
      set:free()
    end
  end
  if ok then tok:free() end
  eval_cache[key] = n
  return n
end

-- Seconds per token of an encode of a model of this shape, measured here
-- and now: the median of three encodes of a batch shaped like the STS ones
-- (64 sentences of 16 tokens) by a random-weight model of the shape. Shapes
-- above tiny-l would take long to generate: their time is tiny-l's scaled by
-- the matmul work per token, which is what dominates them.
local speed_cache = {}
local function seconds_per_token(point)
  local bloom = lacos.bloom
  local cfg = M.model_config(point)
  local function work(c) return 24 * c.n_layer * c.hidden_size ^ 2 end
  local model_name = point.synthetic and point.model or (point.models_dir .. "/" .. point.model .. "/config.json")
  local measured = model_name
  if C_params(cfg) > C_params(bloom.config("tiny-l")) then measured = "tiny-l" end
  if not speed_cache[measured] then
    local clock = require("lacos.train").clock
    local ids = lacos.tensor.rand({ 64, 16 }, { seed = 1, lo = 4, hi = 1000 }):to("i32")
    local mask = lacos.tensor.ones({ 64, 16 }, "i32")
    local m = bloom.random(measured, { seed = 1, quant = "int8" })
    m:encode_ids(ids, mask, { pooling = "mean" })
    local times = {}
    for k = 1, 3 do
      local t0 = clock()
      m:encode_ids(ids, mask, { pooling = "mean" })
      times[k] = clock() - t0
    end
    table.sort(times)
    m:free(); ids:free(); mask:free()
    speed_cache[measured] = times[2] / 1024
  end
  local per = speed_cache[measured]
  if measured ~= model_name then per = per * work(cfg) / work(bloom.config(measured)) end
  return per
end

-- How much a training token costs next to an encoded one: the forward, the
-- backward through the frozen int8 layers (input gradients, the LoRA
-- products, quantising the gradients) and the optimizer, measured on the
-- synthetic ladder (tests/lua/test_sweep.lua prints estimate and measurement
-- side by side); activation checkpointing adds one more forward.
M.COST = { train_factor = 4, checkpoint_extra = 1 }

-- Time and memory estimates for --dry-run. Memory: weights + the memory
-- planner's activations for one step. Time: (training tokens x epochs x
-- the training factor + evaluation tokens) x the seconds per token of this
-- model measured now. Returns { bytes, seconds, train_seconds, eval_seconds,
-- examples, epochs }.
-- Peak memory of a point: the weights + the memory planner's activations
-- of one training step (what estimate() reports as bytes), without
-- measuring any speed. For a Slurm job's memory request.
-- The bytes of a point's linears, each in its format (int8, or f32 where
-- int8_skip keeps it), and of its small f32 parameters, as the engine will
-- allocate them (the embedding table apart). Raises the engine's message on
-- a skip list that does not fit the model.
function M.memory_weights(point)
  local C = lacos.engine.C
  local o = ffi.new("lacos_bloom_options")
  C.lacos_bloom_options_init(o)
  o.quant = lacos.bloom.quants[point.quant or "int8"]
  local skip = point.int8_skip and table.concat(point.int8_skip, ",") or nil
  if skip then o.int8_skip = skip end
  local wb = ffi.new("double[1]")
  lacos.engine.check(C.lacos_bloom_plan_weight_bytes(wb, M.model_config(point), o))
  return wb[0]
end

function M.memory(point)
  local bloom = lacos.bloom
  local cfg = M.model_config(point)
  local C = lacos.engine.C
  local checkpointing = require("lacos.train").checkpointing_default(cfg)
  local per_example = 2
  if point.pairs ~= 0 then per_example = M.training_pairs(point.data_root, point.train_data):has_negatives() and 3 or 2 end
  local texts = per_example * (point.batch_size or 16)
  if point.mini_batch then texts = math.min(point.mini_batch, texts) end
  return M.memory_weights(point) + cfg.vocab_size * cfg.hidden_size * 2 +
         C.lacos_bloom_train_activation_bytes(cfg, texts, point.max_length or 64, point.r or 8,
                                                 bloom.target_bits(point.targets, M.model_family(point)), checkpointing and 1 or 0)
end

function M.estimate(point)
  local cfg = M.model_config(point)
  local checkpointing = require("lacos.train").checkpointing_default(cfg)
  local examples, per_example, per_sentence = 0, 2, 0
  if point.pairs ~= 0 then
    local data = M.training_pairs(point.data_root, point.train_data)
    examples = point.pairs == "all" and data:size() or math.min(point.pairs, data:size())
    per_example = data:has_negatives() and 3 or 2
    per_sentence = training_tokens_per_sentence(point, data)
  end
  local epochs = point.epochs or 1
  local per_token = seconds_per_token(point)
  local factor = M.COST.train_factor + (checkpointing and M.COST.checkpoint_extra or 0)
  local train_s = examples * epochs * per_example * per_sentence * factor * per_token
  local eval_s = eval_tokens(point) * per_token
  return { bytes = M.memory(point), seconds = train_s + eval_s, train_seconds = train_s, eval_seconds = eval_s,
           examples = examples, epochs = examples > 0 and epochs or 0 }
end

return M
