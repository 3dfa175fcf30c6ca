-- experiments/quickstart.lua — the smallest end-to-end run (what `make run`
-- does): a small random-weight BLOOM (synthetic; the real checkpoints cannot
-- be downloaded everywhere), its STS scores untrained, LoRA training on 2,500
-- NLI triplets (two epochs) with 8-bit Adam and MNRL, the same scores after,
-- all logged in the results database. Well under a minute on 2 idle cores.
--
--   lacos run experiments/quickstart.lua [--data DIR] [--db FILE] [--model DIR]
--
-- The data it needs (STS12-16, STSb, SICK-R, SNLI) is downloaded into the
-- data root when it is not there (LACOS_DATA_MIRROR=URL: from a mirror of a
-- data root). Like every sweep it takes --slurm and the other options of
-- lacos.sweep (lacos run experiments/quickstart.lua --help).
local lacos = require "lacos"
local X = lacos.experiment
local spec = {
  name = "quickstart",
  usage = "lacos run experiments/quickstart.lua [--data DIR] [--db FILE] [--model DIR] [--dry-run] [--slurm ...]",
  options = {
    { "--data", "DIR", "datasets root (default: $LACOS_DATA, datasets/, or ../shared/datasets)" },
    { "--db", "FILE", "results database (default $LACOS_DB or results/lacos.db)" },
    { "--model", "DIR", "a real BLOOM checkpoint to use instead of the synthetic tiny-s" },
    { "--pairs", "N", "training pairs", type = "integer", default = 2500, min = 2 },
    { "--eval-limit", "N", "STS pairs evaluated per set (a quicker look with fewer)", type = "integer", default = 500, min = 10 },
    { "--dry-run", nil, "list the points, run nothing (with --slurm: print the batch script)" },
  },
}
local opts, help = lacos.sweep.parse(spec, arg)
if not opts then print(help) return end
local root = X.data_root(opts.data)
local synthetic = not opts.model
local name, dir = "tiny-xs", nil
if opts.model then
  dir, name = opts.model:match("^(.*)/([^/]+)/?$")
  dir, name = dir or ".", name or opts.model
end
io.stderr:write(("quickstart: %s model %s, data from %s\n"):format(synthetic and "SYNTHETIC (random weights)" or "BLOOM",
  name, root))
local sweep = lacos.sweep.new {
  name = "quickstart",
  script = arg[0],
  axes = { model = { name }, pairs = { 0, opts.pairs }, seed = { 1 } },
  order = { "model", "pairs", "seed" },
  fixed = { synthetic = synthetic, models_dir = dir and X.models_dir(dir), data_root = root, batch_size = 32, max_length = 48, lr = 5e-3,
            epochs = 2, targets = { "all" }, dropout = 0.0, pooling = "mean", eval = { "english" }, eval_limit = opts.eval_limit,
            checkpoint_every = 50 },
  validate = X.validate_point,
  memory = X.memory,
  run = X.run_point,
  flags = { data_root = "--data", pairs = "--pairs", eval_limit = "--eval-limit", model = "--model", models_dir = "--model" },
}
-- what a fresh clone lacks: fetched before the points are checked
if not opts.slurm_task and not opts.dry_run then
  local needed, seen = {}, {}
  for _, p in ipairs(sweep:points()) do
    for _, id in ipairs(X.data_needed(p)) do if not seen[id] then seen[id] = true; needed[#needed + 1] = id end end
  end
  X.fetch_data(root, needed, "quickstart")
end
local summary = sweep:execute { db = opts.db, dry_run = opts.dry_run, cli = opts }
if opts.dry_run then return end
local db = lacos.results.open(opts.db, { readonly = true })
print(require("lacos.report").format_table(require("lacos.report").collect(db, "quickstart")))
print(("\nresults are in %s — try: lacos results; lacos results scale quickstart; sqlite3 %s"):format(db.path, db.path))
db:close()
if summary.exit_status ~= 0 then os.exit(summary.exit_status) end
