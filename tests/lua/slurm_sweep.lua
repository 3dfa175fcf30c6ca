-- slurm_sweep.lua: a small sweep for tests/lua/test_slurm.lua, run locally
-- or with --slurm like any lacos sweep. Not a test file itself.
--
--   lacos run tests/lua/slurm_sweep.lua --data DIR [--name NAME] [--kinds LIST] [--pause-dir DIR] [sweep options]
--
-- One point per entry of --kinds (its index is the point's seed):
--   train    LoRA on 96 SNLI pairs (6 steps, a checkpoint after each) of the
--            synthetic tiny-xs, then STS on 16 pairs of each English set
--   pause    the same; but as a Slurm task that has not been requeued yet it
--            stops after step 3, writes <pause-dir>/paused-<index>.<rank> (its
--            job ids and pid) and waits until a signal arrives (the test sends one)
--   fail     raises an error
--   trivial  logs one metric and is done at once
local lacos = require "lacos"
local X = lacos.experiment
local util = require "lacos.util"

local opts, help = lacos.sweep.parse({
  name = "slurm_sweep",
  usage = "lacos run tests/lua/slurm_sweep.lua --data DIR [--name NAME] [--kinds LIST] [--pause-dir DIR]",
  options = {
    { "--db", "FILE", "results database" },
    { "--data", "DIR", "datasets root", required = true },
    { "--name", "NAME", "sweep name", default = "slurm-test" },
    { "--kinds", "LIST", "the points, comma-separated: train, pause, fail, trivial", default = "train" },
    { "--pause-dir", "DIR", "where a pausing point says it is paused" },
    { "--dry-run", nil, "list the points" },
  },
}, arg)
if not opts then print(help) return end

local kinds = {}
for k in opts.kinds:gmatch("[^,]+") do kinds[#kinds + 1] = k end

local function pause(index)
  -- one marker per rank: paused-<index>.<rank> (rank 0 alone without --ranks-per-point)
  local f = assert(io.open(("%s/paused-%d.%s"):format(opts.pause_dir, index, os.getenv("SLURM_PROCID") or "0"), "w"))
  local ffi = require "ffi"
  pcall(ffi.cdef, "int getpid(void);")
  f:write(("%s %s %s %d\n"):format(os.getenv("SLURM_JOB_ID") or "-", os.getenv("SLURM_ARRAY_JOB_ID") or "-",
                                   os.getenv("SLURM_ARRAY_TASK_ID") or "-", ffi.C.getpid()))
  f:close()
  io.stderr:write(("slurm_sweep: point %d paused after step 3, waiting for a signal\n"):format(index))
  local t0 = util.clock()
  local C = require("lacos.engine").C
  -- a signal is pending, or held until the step boundary (data-parallel ranks agree on where to stop)
  while not util.sleep(0.1) and C.lacos_interrupt_held() == 0 do
    -- a guard against a test that never signals, not a timing
    if util.clock() - t0 > 600 then error("slurm_sweep: no signal came in 600 s", 0) end
  end
end

local function run(p, ctx)
  if p.kind == "fail" then error(("point %d broke on purpose"):format(p.seed), 0) end
  if p.kind == "trivial" then
    ctx.run:log(1, { loss = p.seed })
    return { status = "done", headline = "trivial" }
  end
  local m = lacos.bloom.random("tiny-xs", { seed = 1, quant = "int8", tokenizer = X.synthetic_tokenizer() })
  m:add_lora { r = 4, alpha = 8, dropout = 0.0, targets = { "all" }, seed = p.seed }
  local pausing = p.kind == "pause" and os.getenv("SLURM_JOB_ID") ~= nil and (os.getenv("SLURM_RESTART_COUNT") or "0") == "0"
  local data = X.training_pairs(p.data_root, "nli")
  local res = lacos.train {
    model = m, data = data:take(96), batch_size = 16, epochs = 1, lr = 5e-3, seed = p.seed, pooling = "mean",
    max_length = 24, checkpoint_dir = ctx.dir .. "/checkpoints", checkpoint_every = 1, run = ctx.run,
    quiet = ctx.quiet, print_every = ctx.log_every,
    on_step = function(st) if pausing and st.step == 3 then pause(p.seed) end end,
  }
  if res.status ~= "done" then return res end
  if ctx.run.null then return { status = "done" } end   -- data-parallel: rank 0 alone evaluates and records
  local scores = X.evaluate(m, ctx.run, { root = p.data_root, tasks = { "english" }, pooling = "mean", limit = 16,
                                          quiet = ctx.quiet })
  return { status = "done", headline = X.headline(scores) }
end

-- each point is "<index>-<kind>", so its kind is part of what identifies it
local axes = { point = {} }
for i, k in ipairs(kinds) do axes.point[i] = ("%d-%s"):format(i, k) end
local sweep = lacos.sweep.new {
  name = opts.name,
  script = arg[0],
  axes = axes,
  fixed = { data_root = util.abspath(opts.data) },
  run = function(p, ctx)
    local index, kind = p.point:match("^(%d+)%-(.+)$")
    return run({ seed = tonumber(index), kind = kind, data_root = p.data_root }, ctx)
  end,
  describe = function(p) return "point " .. p.point end,
  memory = function() return 64 * 2 ^ 20 end,
}
local s = sweep:execute { db = opts.db, dry_run = opts.dry_run, cli = opts }
os.exit(s.exit_status, true)   -- closing the state finalizes MPI under a launcher
