-- experiments/scale.lua — the LACoS-BLOOM experiment (Hua, Williams, Shamsi
-- 2023): BLOOM sizes × amounts of NLI training pairs, LoRA on the int8 model,
-- 8-bit Adam, MNRL with in-batch negatives; every point evaluated on
-- STS12-16, STSb, SICK-R (English) and STS17 + stsb-multi-mt (multilingual)
-- and logged into the results database.
--
--   lacos run experiments/scale.lua [--models DIR] [--data DIR] [--db FILE] [--dry-run] [--synthetic]
--                                   [--sizes LIST] [--pairs LIST] [--eval-limit N] [--seeds N]
--                                   [--baseline DIR[,DIR...]]
--   lacos run experiments/scale.lua --slurm [--partition P] [--time T] [--max-parallel N] [--wait] ...
--
-- --baseline adds reference models (the paper's Sentence-BERT baseline:
-- models/all-MiniLM-L6-v2, `make models-minilm`) evaluated untrained, in
-- f32 with their own pooling, on the same sets: each a point with param
-- `baseline` = true, which lacos results scale and plot show as its own row
-- and dashed line, labelled as the baseline.
--
-- With the released checkpoints under models/ (lacos pull bigscience/bloom-560m ...)
-- it runs the paper's sweep (experiment "scale"). Without them it says so and
-- runs the same sweep on the synthetic ladder — random-weight BLOOM-shaped
-- models, labelled synthetic everywhere — as experiment "scale-synthetic".
-- Rerunning skips finished points and resumes interrupted ones from their
-- checkpoints. Then: lacos results scale; lacos results plot (both find the
-- scale sweep run last).
local lacos = require "lacos"
local X = lacos.experiment
local args = require "lacos.args"   -- usage errors

local spec = {
  name = "scale",
  usage = "lacos run experiments/scale.lua [--models DIR] [--data DIR] [--db FILE] [--dry-run] [--synthetic]\n" ..
          "                                  [--sizes LIST] [--pairs LIST] [--eval-limit N] [--seeds N]\n" ..
          "                                  [--baseline DIR[,DIR...]]",
  options = {
    { "--models", "DIR", "where the released checkpoints are", default = "models" },
    { "--data", "DIR", "datasets root (default: $LACOS_DATA, datasets/, or ../shared/datasets)" },
    { "--db", "FILE", "results database (default $LACOS_DB or results/lacos.db)" },
    { "--dry-run", nil, "list the points with memory and time estimates, run nothing" },
    { "--synthetic", nil, "use the synthetic ladder even if checkpoints are present" },
    { "--seeds", "N", "seeds per point", type = "integer", default = 1, min = 1 },
    { "--sizes", "LIST", "only these models, comma-separated (default: every one found, or the whole synthetic ladder)" },
    { "--pairs", "LIST", "training pairs per point, comma-separated whole numbers or 'all' " ..
                         "(default 1000,4000,16000,all; synthetic 0,500,2000)" },
    { "--eval-limit", "N", "STS pairs evaluated per set or language (0 = all; default: all, synthetic 300)",
      type = "integer", min = 0 },
    { "--baseline", "LIST", "model directories evaluated untrained beside the sweep, as baselines (comma-separated)" },
  },
}
local opts, help = lacos.sweep.parse(spec, arg)   -- the script's options, plus --slurm ... (lacos.sweep)
if not opts then print(help) return end

local root = X.data_root(opts.data)
local models, synthetic = X.models(opts.models, { synthetic = opts.synthetic })
if opts.sizes then
  local wanted = {}
  for name in opts.sizes:gmatch("[^,]+") do
    local found = false
    for _, m in ipairs(models) do if m == name then found = true end end
    if not found then
      args.usage_error("scale", "--sizes: '%s' is not among the %s (%s)", name,
        synthetic and "synthetic ladder" or ("checkpoints under " .. opts.models), table.concat(models, ", "))
    end
    wanted[#wanted + 1] = name
  end
  if #wanted == 0 then args.usage_error("scale", "--sizes: expected model names separated by commas, got '%s'", opts.sizes) end
  models = wanted
end
local seeds = {}
for s = 1, opts.seeds do seeds[s] = s end
local amounts, eval_limit, batch
if synthetic then
  io.stderr:write("scale: no BLOOM checkpoints under " .. opts.models .. "/ (lacos pull bigscience/bloom-560m ...):\n" ..
                  "       running the SYNTHETIC ladder (random-weight models " .. table.concat(models, ", ") .. ").\n" ..
                  "       Its numbers show the pipeline, not BLOOM's quality.\n")
  amounts, eval_limit, batch = { 0, 500, 2000 }, 300, 16
else
  amounts, eval_limit, batch = { 1000, 4000, 16000, "all" }, 0, X.PAPER_RECIPE.batch_size
end
if opts.pairs then
  amounts = {}
  for v in opts.pairs:gmatch("[^,]+") do
    local n = tonumber(v)
    if v == "all" then amounts[#amounts + 1] = "all"
    elseif n and n >= 0 and n == math.floor(n) and n < 2 ^ 53 then amounts[#amounts + 1] = n
    else args.usage_error("scale", "--pairs: '%s' is not a whole number >= 0 or 'all'", v) end
  end
  if #amounts == 0 then args.usage_error("scale", "--pairs: expected amounts separated by commas, got '%s'", opts.pairs) end
end
if opts.eval_limit then eval_limit = opts.eval_limit end
-- The paper's recipe (LoRA r=8 on query_key_value, lr 2e-4) barely moves a
-- random-weight model in a few hundred steps; the synthetic ladder trains all
-- four linears at a higher rate, for two epochs, without dropout, so the data
-- axis shows something. Every trained point records how its recipe compares
-- with the paper's (param `recipe`), and the table and figures say it.
local paper = X.PAPER_RECIPE
local recipe = synthetic and { lr = 5e-3, targets = { "all" }, epochs = 2, dropout = 0.0 }
                          or { lr = paper.lr, targets = paper.targets, epochs = paper.epochs, dropout = paper.dropout }
if synthetic then
  io.stderr:write("scale: the synthetic ladder trains with its own recipe: " ..
                  X.recipe_note { r = 8, alpha = 16, dropout = recipe.dropout, lr = recipe.lr, targets = recipe.targets,
                                  epochs = recipe.epochs, batch_size = batch, max_length = 64 } .. "\n")
end

-- Baselines: a checkpoint directory each, evaluated untrained in f32 with
-- the directory's own pooling (a sentence-transformers directory's).
local util = require "lacos.util"
local baselines = {}
for dir in (opts.baseline or ""):gmatch("[^,]+") do
  dir = dir:gsub("(.)/+$", "%1")
  if not util.is_dir(dir) then args.usage_error("scale", "--baseline: %s is not a directory (make models-minilm)", dir) end
  local name, parent = dir:match("([^/]+)$"), dir:match("^(.*)/[^/]+$") or "."
  baselines[#baselines + 1] = { model = name, models_dir = X.models_dir(parent), synthetic = false, pairs = 0, seed = 1,
                                baseline = true, quant = "f32", pooling = lacos.bloom.dir_pooling(dir) }
end

local sweep = lacos.sweep.new {
  name = synthetic and "scale-synthetic" or "scale",
  script = arg[0],
  axes = { model = models, pairs = amounts, seed = seeds },
  order = { "model", "pairs", "seed" },
  fixed = { synthetic = synthetic, models_dir = X.models_dir(opts.models), data_root = root, quant = "int8", r = 8, alpha = 16,
            dropout = recipe.dropout, lr = recipe.lr, targets = recipe.targets, epochs = recipe.epochs,
            batch_size = batch, max_length = 64, pooling = "weightedmean",
            eval_limit = eval_limit, eval = { "english", "multilingual" } },
  extra = baselines,
  validate = X.validate_point,
  estimate = X.estimate,
  memory = X.memory,
  flags = { data_root = "--data", models_dir = "--models", pairs = "--pairs", eval_limit = "--eval-limit", model = "--sizes",
            seed = "--seeds" },
  run = X.run_point,
  describe = function(p)
    return ("%s%s pairs=%s seed=%s"):format(p.model, p.baseline and " (baseline)" or "", tostring(p.pairs), tostring(p.seed))
  end,
}
local summary = sweep:execute { db = opts.db, dry_run = opts.dry_run, cli = opts }
if opts.dry_run then return end
local db = lacos.results.open(opts.db, { readonly = true })
print(require("lacos.report").format_table(require("lacos.report").collect(db, sweep.name)))
print(("\nresults: %s (lacos results scale %s; lacos results plot %s)"):format(require("lacos.util").abspath(db.path),
  sweep.name, sweep.name))
db:close()
if summary.exit_status ~= 0 then os.exit(summary.exit_status) end
