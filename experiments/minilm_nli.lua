-- experiments/minilm_nli.lua — LoRA + MNRL on NLI triplets on top of an
-- already trained sentence-transformers model (all-MiniLM-L6-v2 by
-- default, `make models-minilm`): the same model untrained and fine-tuned,
-- evaluated on STS12-16, STSb test and SICK-R test (raw text, cosine
-- Spearman x100), both points logged into the results database.
--
--   lacos run experiments/minilm_nli.lua [--model DIR] [--data DIR] [--db FILE] [--dry-run]
--                                        [--epochs N] [--batch-size N] [--lr X] [--targets LIST] [--quant f32|int8]
--                                        [--int8-skip LIST]
--
-- Training data: lacos.experiment's NLI pairs (AllNLI when present, else
-- the SNLI dev + test premise/entailment/contradiction triplets of the
-- shared data); the training loop is lacos.train (checkpoints, resume, the
-- run's curves in the database). Then: lacos results scale minilm-nli.
local lacos = require "lacos"
local X = lacos.experiment
local args = require "lacos.args"
local util = require "lacos.util"

local spec = {
  name = "minilm_nli",
  usage = "lacos run experiments/minilm_nli.lua [--model DIR] [--data DIR] [--db FILE] [--dry-run]\n" ..
          "                                       [--epochs N] [--batch-size N] [--lr X] [--targets LIST] [--quant f32|int8]\n" ..
          "                                       [--int8-skip LIST]",
  options = {
    { "--model", "DIR", "the sentence-transformers model", default = "models/all-MiniLM-L6-v2" },
    { "--data", "DIR", "datasets root (default: $LACOS_DATA, datasets/, or ../shared/datasets)" },
    { "--db", "FILE", "results database (default $LACOS_DB or results/lacos.db)" },
    { "--dry-run", nil, "list the points with memory and time estimates, run nothing" },
    { "--epochs", "N", "passes over the training pairs", type = "integer", default = 2, min = 1 },
    { "--batch-size", "N", "triplets per step (the in-batch negatives)", type = "integer", default = 32, min = 2 },
    { "--lr", "X", "peak learning rate", type = "number", default = 2e-4, min = 0 },
    { "--targets", "LIST", "LoRA targets, comma-separated", default = "query,key,value" },
    { "--quant", "KIND", "base weights", default = "f32", choices = { "f32", "int8" } },
    lacos.bloom.int8_skip_option(),
  },
}
local opts, help = args.parse(spec, arg)
if not opts then print(help) return end
local dir = opts.model:gsub("(.)/+$", "%1")
if not util.is_dir(dir) then args.usage_error("minilm_nli", "--model: %s is not a directory (make models-minilm)", dir) end
local targets = {}
for t in opts.targets:gmatch("[^,%s]+") do targets[#targets + 1] = t end

local sweep = lacos.sweep.new {
  name = "minilm-nli",
  script = arg[0],
  axes = { pairs = { 0, "all" }, seed = { 1 } },
  order = { "pairs", "seed" },
  fixed = { model = dir:match("([^/]+)$"), models_dir = X.models_dir(dir:match("^(.*)/[^/]+$") or "."), synthetic = false,
            data_root = X.data_root(opts.data), quant = opts.quant,
            int8_skip = lacos.bloom.skip_list(lacos.bloom.skip_arg(opts.int8_skip), "--int8-skip"), pooling = lacos.bloom.dir_pooling(dir),
            r = 8, alpha = 16, dropout = 0.05, targets = targets, lr = opts.lr, epochs = opts.epochs,
            batch_size = opts.batch_size, max_length = 64, eval = { "english" }, eval_limit = 0,
            quiet = not util.isatty(2) },
  validate = X.validate_point,
  estimate = X.estimate,
  run = X.run_point,
  describe = function(p) return ("%s pairs=%s seed=%s"):format(p.model, tostring(p.pairs), tostring(p.seed)) end,
}
local summary = sweep:execute { db = opts.db, dry_run = opts.dry_run }
if opts.dry_run then return end
local db = lacos.results.open(opts.db, { readonly = true })
print(require("lacos.report").format_table(require("lacos.report").collect(db, sweep.name)))
print(("\nresults: %s (lacos results scale %s; lacos results plot %s)"):format(util.abspath(db.path), sweep.name, sweep.name))
db:close()
if summary.exit_status ~= 0 then os.exit(summary.exit_status) end
