-- experiments/scale.lua — the LACoS-BLOOM experiment (Hua, Williams, Shamsi
-- 2023): BLOOM sizes × amounts of NLI training pairs, LoRA on the int8 model,
-- 8-bit Adam, MNRL with in-batch negatives; every point evaluated on
-- STS12-16, STSb, SICK-R (English) and STS17 + stsb-multi-mt (multilingual)
-- and logged into the results database.
--
--   lacos run experiments/scale.lua [--models DIR] [--data DIR] [--db FILE] [--dry-run] [--synthetic]
--
-- With the released checkpoints under models/ (lacos pull bigscience/bloom-560m ...)
-- it runs the paper's sweep. Without them it says so and runs the same sweep on
-- the synthetic ladder — random-weight BLOOM-shaped models, labelled synthetic
-- everywhere — sized to finish in about 15 minutes on 2 cores. Rerunning skips
-- finished points and resumes interrupted ones from their checkpoints.
-- Then: lacos results scale; lacos results plot scale.
local lacos = require "lacos"
local X = lacos.experiment
local args = require "lacos.args"

local spec = {
  name = "scale",
  usage = "lacos run experiments/scale.lua [--models DIR] [--data DIR] [--db FILE] [--dry-run] [--synthetic]",
  options = {
    { "--models", "DIR", "where the released checkpoints are", default = "models" },
    { "--data", "DIR", "datasets root (default: $LACOS_DATA, datasets/, or ../shared/datasets)" },
    { "--db", "FILE", "results database (default $LACOS_DB or results/lacos.db)" },
    { "--dry-run", nil, "list the points with memory and time estimates, run nothing" },
    { "--synthetic", nil, "use the synthetic ladder even if checkpoints are present" },
    { "--seeds", "N", "seeds per point", type = "integer", default = 1, min = 1 },
  },
}
local opts, help = args.parse(spec, arg)
if not opts then print(help) return end

local root = X.data_root(opts.data)
local models, synthetic = X.models(opts.models, { synthetic = opts.synthetic })
local seeds = {}
for s = 1, opts.seeds do seeds[s] = s end
local amounts, eval_limit, batch
if synthetic then
  io.stderr:write("scale: no BLOOM checkpoints under " .. opts.models .. "/ (lacos pull bigscience/bloom-560m ...):\n" ..
                  "       running the SYNTHETIC ladder (random-weight models " .. table.concat(models, ", ") .. ").\n" ..
                  "       Its numbers show the pipeline, not BLOOM's quality.\n")
  amounts, eval_limit, batch = { 0, 500, 2000 }, 300, 16
else
  amounts, eval_limit, batch = { 1000, 4000, 16000, "all" }, 0, 32
end
-- The paper's recipe (LoRA r=8 on query_key_value, lr 2e-4) barely moves a
-- random-weight model in a few hundred steps; the synthetic ladder trains all
-- four linears at a higher rate so the data axis shows something.
local recipe = synthetic and { lr = 5e-3, targets = { "all" }, epochs = 2, dropout = 0.0 }
                          or { lr = 2e-4, targets = { "query_key_value" }, epochs = 1, dropout = 0.05 }

local sweep = lacos.sweep.new {
  name = synthetic and "scale-synthetic" or "scale",
  script = arg[0],
  axes = { model = models, pairs = amounts, seed = seeds },
  order = { "model", "pairs", "seed" },
  fixed = { synthetic = synthetic, models_dir = opts.models, data_root = root, quant = "int8", r = 8, alpha = 16,
            dropout = recipe.dropout, lr = recipe.lr, targets = recipe.targets, epochs = recipe.epochs,
            batch_size = batch, max_length = 64, pooling = "weightedmean",
            eval_limit = eval_limit, eval = { "english", "multilingual" }, quiet = not require("lacos.util").isatty(2) },
  validate = function(p)
    if not p.synthetic and not io.open(p.models_dir .. "/" .. p.model .. "/config.json") then
      error("missing checkpoint " .. p.models_dir .. "/" .. p.model)
    end
    if not io.open(p.data_root .. "/sts/stsb/sts-test.csv") then
      error("no STS data under " .. p.data_root .. " (set --data or LACOS_DATA; lacos data list shows what is missing)")
    end
  end,
  estimate = X.estimate,
  run = X.run_point,
  describe = function(p) return ("%s pairs=%s seed=%d"):format(p.model, tostring(p.pairs), p.seed) end,
}
local summary = sweep:execute { db = opts.db, dry_run = opts.dry_run }
if opts.dry_run then return end
io.stderr:write(("scale: %d done, %d skipped (already done), %d failed, %d interrupted\n"):format(
  summary.done, summary.skipped, summary.failed, summary.interrupted))
local db = lacos.results.open(opts.db, { readonly = true })
print(require("lacos.report").format_table(require("lacos.report").collect(db, sweep.name)))
print(("\nresults: %s (lacos results scale %s; lacos results plot %s)"):format(db.path, sweep.name, sweep.name))
db:close()
if summary.interrupted > 0 then os.exit(130) end
if summary.failed > 0 then os.exit(1) end
