-- experiments/multilingual.lua — cross-lingual transfer: LoRA trained on
-- XNLI's 15 parallel languages (premise/entailment/contradiction triplets),
-- evaluated on STS17's monolingual and cross-lingual tracks and on
-- stsb-multi-mt in 11 languages, for each model size present (or the
-- synthetic ladder), next to the same model trained on English SNLI.
--
--   lacos run experiments/multilingual.lua [--models DIR] [--data DIR] [--db FILE] [--dry-run] [--slurm ...]
local lacos = require "lacos"
local X = lacos.experiment
local spec = {
  name = "multilingual",
  usage = "lacos run experiments/multilingual.lua [--models DIR] [--data DIR] [--db FILE] [--dry-run]",
  options = {
    { "--models", "DIR", "where the released checkpoints are", default = "models" },
    { "--data", "DIR", "datasets root" },
    { "--db", "FILE", "results database" },
    { "--dry-run", nil, "list the points, run nothing" },
    { "--synthetic", nil, "use the synthetic ladder even if checkpoints are present" },
  },
}
local opts, help = lacos.sweep.parse(spec, arg)
if not opts then print(help) return end
local root = X.data_root(opts.data)
local models, synthetic = X.models(opts.models, { synthetic = opts.synthetic })
if synthetic then
  models = { "tiny-s", "tiny-m" }
  io.stderr:write("multilingual: no BLOOM checkpoints: running the SYNTHETIC ladder (random weights)\n")
end
local sweep = lacos.sweep.new {
  name = synthetic and "multilingual-synthetic" or "multilingual",
  script = arg[0],
  axes = { model = models, train_data = { "nli", "xnli" }, pairs = { synthetic and 2000 or "all" }, seed = { 1 } },
  order = { "model", "train_data", "pairs", "seed" },
  fixed = { synthetic = synthetic, models_dir = X.models_dir(opts.models), data_root = root, batch_size = synthetic and 16 or 32,
            max_length = 64, pooling = "weightedmean", eval = { "multilingual" }, eval_limit = synthetic and 250 or 0 },
  validate = X.validate_point,
  estimate = X.estimate,
  memory = X.memory,
  flags = { data_root = "--data", models_dir = "--models" },
  run = X.run_point,
  describe = function(p) return ("%s %s pairs=%s seed=%s"):format(p.model, p.train_data, tostring(p.pairs), tostring(p.seed)) end,
}
local summary = sweep:execute { db = opts.db, dry_run = opts.dry_run, cli = opts }
if opts.dry_run then return end
local db = lacos.results.open(opts.db, { readonly = true })
local rows = db:query([[
  SELECT (SELECT value_text FROM params WHERE run_id = r.id AND key = 'model') AS model,
         (SELECT value_text FROM params WHERE run_id = r.id AND key = 'training_data') AS trained_on,
         s.dataset, s.language, round(100 * s.spearman, 2) AS spearman
    FROM runs r JOIN experiments e ON e.id = r.experiment_id JOIN sts_results s ON s.run_id = r.id
   WHERE e.name = ? AND r.status = 'done' ORDER BY model, trained_on, s.dataset, s.language]], sweep.name)
for _, r in ipairs(rows) do print(("%-10s %-62s %-14s %-6s %7.2f"):format(r.model, r.trained_on:sub(1, 62), r.dataset, r.language, r.spearman)) end
print(("\nresults: %s"):format(db.path))
db:close()
if summary.exit_status ~= 0 then os.exit(summary.exit_status) end
