-- lacos.experiment: what the scripts in experiments/ share — finding the
-- BLOOM checkpoints (or falling back to the synthetic ladder), the training
-- pairs, the STS evaluation of a point, and one sweep point end to end
-- (train LoRA, save the adapter, evaluate, log everything).
local lacos = require "lacos"
local util = require "lacos.util"

local M = {}

M.REAL = { "bloom-560m", "bloom-1b1", "bloom-1b7", "bloom-3b", "bloom-7b1" }
M.SYNTHETIC = { "tiny-xs", "tiny-s", "tiny-m", "tiny-l" }

local function exists(p) local f = io.open(p, "rb") if f then f:close() return true end return false end

-- The synthetic models' tokenizer: trained with the `tokenizers` library on
-- the shared data, configured exactly like BLOOM's (datasets/tokenizers/).
function M.synthetic_tokenizer()
  return lacos.engine.home .. "/datasets/tokenizers/bloomlike-32k.json"
end

-- Data root: --data / LACOS_DATA / datasets/ when it holds the STS files,
-- else the ../shared/datasets next to the lacos tree (this project's layout).
function M.data_root(dir)
  if dir then return dir end
  local env = os.getenv("LACOS_DATA")
  if env and env ~= "" then return env end
  local home = lacos.engine.home
  if exists(home .. "/datasets/sts/stsb/sts-test.csv") then return home .. "/datasets" end
  local shared = home .. "/../shared/datasets"
  if exists(shared .. "/sts/stsb/sts-test.csv") then return shared end
  return home .. "/datasets"
end

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

local model_cache = { key = nil, model = nil }
-- The model of a point, kept across consecutive points of the same model.
function M.model(point)
  local key = table.concat({ point.model, tostring(point.synthetic), point.models_dir or "", point.quant or "int8",
                             tostring(point.threshold or 0) }, "|")
  if model_cache.key == key then
    model_cache.model:remove_lora()
    return model_cache.model
  end
  if model_cache.model then model_cache.model:free(); model_cache.model = nil; collectgarbage() end
  local m
  if point.synthetic then
    m = lacos.bloom.random(point.model, { seed = point.model_seed or 1, quant = point.quant or "int8",
                                          tokenizer = M.synthetic_tokenizer() })
  else
    m = lacos.bloom.load(point.models_dir .. "/" .. point.model, { quant = point.quant or "int8",
                                                                 threshold = point.threshold or 0, cache = true })
  end
  model_cache.key, model_cache.model = key, m
  return m
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
  local ok_all, allnli = pcall(data.nli_triplets, "allnli", { data = root, mode = "entailment" })
  local set, source
  if ok_all then
    set, source = allnli, "allnli (SNLI + MultiNLI entailment pairs)"
  elseif which == "xnli" then
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
                              batch = 64, label = util.ANY }, "experiment.evaluate")
  local sts, data = lacos.sts, lacos.data
  local scores = {}
  local function encode(list) return model:encode(list, { pooling = opts.pooling, batch = opts.batch, max_length = 256,
                                                         truncation = true, force = true }) end
  for _, group in ipairs(opts.tasks) do
    for _, t in ipairs(M.EVAL[group]) do
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
        local cos = sts.cosine_scores(encode(s1), encode(s2))
        local pred = cos:to("f64"):table()
        local sp, pe = sts.spearman(pred, gold, n), sts.pearson(pred, gold, n)
        local lang = u and (u.lang2 and u.lang2 ~= u.lang1 and (u.lang1 .. "-" .. u.lang2) or u.lang1) or "en"
        local key = t.task .. (lang ~= "en" and (" " .. lang) or "")
        scores[key] = 100 * sp
        if run then
          run:sts { dataset = t.task, language = lang, split = "test", n = n, spearman = sp, pearson = pe,
                    pooling = opts.pooling, text_variant = "raw", aggregation = "all", similarity = "cosine",
                    model = opts.label, quantisation = model.quant, dataset_sha256 = sub:digest() }
        end
        if u then sub:free() end
      end
      set:free()
    end
  end
  return scores
end

-- One sweep point: LoRA training on the first `pairs` pairs (0 = the
-- untrained model), the adapter saved in ctx.dir/adapter, evaluation logged.
function M.run_point(point, ctx)
  local m = M.model(point)
  local run = ctx.run
  local train_pairs, source = M.training_pairs(point.data_root, point.train_data)
  local n = point.pairs == "all" and train_pairs:size() or math.min(point.pairs, train_pairs:size())
  -- the point's own values are already params (from its config); these are derived
  run:params { model_params = lacos.bloom.param_count(point.model), n_pairs = n, training_data = source }
  if n > 0 then
    m:add_lora { r = point.r or 8, alpha = point.alpha or 16, dropout = point.dropout or 0.05,
                 targets = point.targets or { "query_key_value" }, seed = point.seed or 1 }
    local result = lacos.train {
      model = m, data = train_pairs:take(n), batch_size = point.batch_size or 16, epochs = point.epochs or 1, lr = point.lr or 2e-4,
      warmup = 0.1, seed = point.seed or 1, pooling = point.pooling or "weightedmean", max_length = point.max_length or 64,
      checkpoint_dir = ctx.dir .. "/checkpoints", checkpoint_every = point.checkpoint_every or 50, run = run,
      fast_backward = true, quiet = point.quiet,   -- checkpointing: lacos.train's default for the size
      mini_batch = point.mini_batch,
    }
    if result.status ~= "done" then return result end
    m:save_lora(ctx.dir .. "/adapter", { pooling = point.pooling or "weightedmean", base_model = point.model })
    run:artifact { path = ctx.dir .. "/adapter", kind = "adapter" }
  end
  M.evaluate(m, run, { root = point.data_root, tasks = point.eval or { "english", "multilingual" },
                       pooling = point.pooling or "weightedmean", limit = point.eval_limit or 0,
                       label = point.model .. (point.synthetic and " (synthetic)" or "") })
  return { status = "done" }
end

-- Time and memory estimates for --dry-run: weights + the memory planner's
-- activations; time from the int8 GEMM rate measured right now.
local rate
function M.estimate(point)
  local bloom = lacos.bloom
  local cfg = bloom.config(point.model)
  local C = lacos.engine.C
  local B, T = 2 * (point.batch_size or 16), point.max_length or 64
  local weights = C.lacos_bloom_config_params(cfg) - cfg.vocab_size * cfg.hidden_size
  local bytes = weights + cfg.vocab_size * cfg.hidden_size * 2 +
                C.lacos_bloom_train_activation_bytes(cfg, B, T, point.r or 8, 1,
                  require("lacos.train").checkpointing_default(cfg) and 1 or 0)
  if not rate then
    local m = bloom.random({ base = "tiny-m" }, { seed = 1, quant = "int8" })
    local ids = lacos.tensor.rand({ 32, 32 }, { seed = 1, lo = 4, hi = 1000 }):to("i32")
    local mask = lacos.tensor.ones({ 32, 32 }, "i32")
    local clock = require("lacos.train").clock
    m:encode_ids(ids, mask, { pooling = "mean" })
    local t0 = clock()
    m:encode_ids(ids, mask, { pooling = "mean" })
    local c = m:config()
    rate = 1024 * 24 * c.n_layer * c.hidden_size ^ 2 / (clock() - t0)   -- ops/s
    m:free()
  end
  local per_token = 24 * cfg.n_layer * cfg.hidden_size ^ 2
  local pairs = point.pairs == "all" and 20000 or point.pairs
  local train_tokens = pairs * 2 * 20 * 4     -- ~20 tokens a sentence; forward + recompute + backward
  local eval_tokens = (point.eval_limit and point.eval_limit > 0 and point.eval_limit * 60 or 70000) * 20
  return { bytes = bytes, seconds = (train_tokens + eval_tokens) * per_token / rate }
end

return M
