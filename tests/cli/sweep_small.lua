-- sweep_small.lua: a small sweep of real experiment points (lacos.experiment's
-- run_point: LoRA training with checkpoints every 2 steps, the adapter saved,
-- an STS evaluation logged) on the synthetic tiny-xs model, for the crash and
-- concurrency tests (tests/cli/test_crash.sh). Not a test file itself.
--
--   lacos run tests/cli/sweep_small.lua --db FILE --out DIR [--data DIR] [--seeds N] [--pairs LIST]
local lacos = require "lacos"
local X = lacos.experiment
local args = require "lacos.args"
local opts, help = args.parse({
  name = "sweep_small",
  usage = "lacos run tests/cli/sweep_small.lua --db FILE --out DIR [--data DIR] [--seeds N] [--pairs LIST]",
  options = {
    { "--db", "FILE", "results database", required = true },
    { "--out", "DIR", "where the points' checkpoints and adapters go", required = true },
    { "--data", "DIR", "datasets root" },
    { "--name", "NAME", "experiment name", default = "small" },
    { "--seeds", "N", "seeds per point", type = "integer", default = 1, min = 1 },
    { "--pairs", "LIST", "training pairs of the points, comma-separated", default = "0,160,320" },
  },
}, arg)
if not opts then print(help) return end

local amounts = {}
for v in opts.pairs:gmatch("[^,]+") do amounts[#amounts + 1] = assert(tonumber(v), "--pairs: numbers") end
local seeds = {}
for s = 1, opts.seeds do seeds[s] = s end

local sweep = lacos.sweep.new {
  name = opts.name,
  script = arg[0],
  axes = { model = { "tiny-xs" }, pairs = amounts, seed = seeds },
  order = { "model", "pairs", "seed" },
  fixed = { synthetic = true, data_root = X.data_root(opts.data), batch_size = 16, max_length = 24, lr = 5e-3,
            epochs = 1, targets = { "all" }, dropout = 0.1, pooling = "mean", eval = { "english" }, eval_limit = 24,
            checkpoint_every = 2 },
  validate = X.validate_point,
  run = X.run_point,
}
local s = sweep:execute { db = opts.db, out = opts.out, quiet = os.getenv("SWEEP_VERBOSE") == nil }
print(("done %d skipped %d failed %d interrupted %d"):format(s.done, s.skipped, s.failed, s.interrupted))
if s.failed > 0 then os.exit(1) end
if s.interrupted > 0 then os.exit(130) end
