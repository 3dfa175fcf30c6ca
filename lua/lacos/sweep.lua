-- lacos.sweep: a grid of runs (models × data amounts × seeds × any option),
-- each point a run in the results database.
--
--   local sw = lacos.sweep.new{
--     name = "scale",
--     axes = { model = {"tiny-s", "tiny-m"}, pairs = {1000, 4000}, seed = {1} },
--     order = {"model", "pairs", "seed"},            -- optional; default: sorted axis names
--     fixed = { lr = 2e-4, batch_size = 16 },         -- merged into every point
--     extra = { { model = "all-MiniLM-L6-v2", pairs = 0, baseline = true } },  -- points outside the grid,
--                                                     -- run first (each merged over fixed)
--     validate = function(point) ... end,             -- raise on a bad point (lacos.experiment.validate_point)
--     estimate = function(point) return { bytes = ..., seconds = ..., examples = ..., epochs = ... } end,
--     run = function(point, ctx) ... return { status = "done" } end,
--   }
--   local s = sw:execute{ db = path, dry_run = false, out = "results/runs" }
--   os.exit(s.exit_status)                            -- 1 if a point failed, 130 if interrupted
--
-- A script that parses its command line with lacos.sweep.parse (lacos.args
-- plus the sweep's own options: --slurm and its resources, --wait,
-- --log-every, ...) and hands the result to execute as `cli` runs on a
-- Slurm cluster as it runs here (lacos.slurm):
--
--   local opts, help = lacos.sweep.parse(spec, arg)
--   ...
--   local s = sw:execute{ db = opts.db, dry_run = opts.dry_run, cli = opts }
--
-- `flags` (in sweep.new) names the command-line option behind a point
-- option, so that a refused grid speaks of --data, not of data_root.
--
-- Every point is validated before the database is opened or anything is
-- loaded: a bad grid is refused with every problem named and leaves no
-- trace. A dry run lists the points with their estimates. A point already
-- done in the database is skipped; a point whose run was interrupted or died
-- starts a new run, which resumes from the point's checkpoint directory
-- (ctx.dir); a failed point is recorded with its error and the sweep goes on;
-- an interrupt stops the sweep after recording the point as interrupted.
local util = require "lacos.util"
local json = require "lacos.json"
local args = require "lacos.args"

local M = {}
local Sweep = {}
Sweep.__index = Sweep

local function copy(t)
  local o = {}
  for k, v in pairs(t) do o[k] = v end
  return o
end

function M.new(spec)
  spec = util.options(spec, { name = util.REQUIRED, axes = util.REQUIRED, order = util.ANY, fixed = util.ANY,
                              validate = util.ANY, estimate = util.ANY, run = util.REQUIRED, script = util.ANY,
                              describe = util.ANY, extra = util.ANY, memory = util.ANY, flags = util.ANY },
                    "lacos.sweep.new")
  if type(spec.name) ~= "string" or spec.name == "" then error("lacos.sweep.new: name must be a non-empty string", 2) end
  if type(spec.axes) ~= "table" or next(spec.axes) == nil then error("lacos.sweep.new: axes must be a table of name -> list of values", 2) end
  -- shapes checked before they are iterated or sorted (fuzz_lua found the
  -- raw ipairs/sort errors a wrong type gave instead of these messages)
  for k in pairs(spec.axes) do
    if type(k) ~= "string" then error(("lacos.sweep.new: axis names must be strings, got %s"):format(type(k)), 2) end
  end
  if spec.order ~= nil and type(spec.order) ~= "table" then
    error(("lacos.sweep.new: order must be a list of axis names, got %s"):format(type(spec.order)), 2)
  end
  if spec.fixed ~= nil and spec.fixed ~= false and type(spec.fixed) ~= "table" then
    error(("lacos.sweep.new: fixed must be a table of option -> value, got %s"):format(type(spec.fixed)), 2)
  end
  local order = spec.order
  if not order then
    order = {}
    for k in pairs(spec.axes) do order[#order + 1] = k end
    table.sort(order)
  end
  for _, k in ipairs(order) do
    local vals = spec.axes[k]
    if type(vals) ~= "table" or #vals == 0 then error(("lacos.sweep.new: axis '%s' needs a non-empty list of values"):format(tostring(k)), 2) end
  end
  for k in pairs(spec.axes) do
    local found = false
    for _, o in ipairs(order) do if o == k then found = true end end
    if not found then error(("lacos.sweep.new: axis '%s' is missing from order"):format(k), 2) end
  end
  if spec.fixed then
    for k in pairs(spec.fixed) do
      if spec.axes[k] then error(("lacos.sweep.new: '%s' is both an axis and a fixed option"):format(k), 2) end
    end
  end
  local extra = spec.extra or {}
  if type(extra) ~= "table" then error(("lacos.sweep.new: extra must be a list of points, got %s"):format(type(extra)), 2) end
  for i, p in ipairs(extra) do
    if type(p) ~= "table" then error(("lacos.sweep.new: extra point %d must be a table of options, got %s"):format(i, type(p)), 2) end
  end
  if spec.flags ~= nil and type(spec.flags) ~= "table" then
    error(("lacos.sweep.new: flags must be a table of point option -> command-line option, got %s"):format(type(spec.flags)), 2)
  end
  local self = setmetatable({ name = spec.name, axes = spec.axes, order = order, fixed = spec.fixed or {},
                              validate = spec.validate, estimate = spec.estimate, runner = spec.run,
                              script = spec.script, describe = spec.describe, extra = extra, memory = spec.memory,
                              flags = spec.flags or {} }, Sweep)
  return self
end

-- The points in order: the extra points (the fixed options with each one's
-- own over them), then the grid (the first axis varies slowest), each a
-- config table holding the fixed options and one value per axis. The
-- experiment's recorded axes are the grid's alone.
function Sweep:points()
  local pts = {}
  for _, e in ipairs(self.extra) do
    local p = copy(self.fixed)
    for k, v in pairs(e) do p[k] = v end
    pts[#pts + 1] = p
  end
  local function rec(i, cur)
    if i > #self.order then
      local p = copy(self.fixed)
      for k, v in pairs(cur) do p[k] = v end
      pts[#pts + 1] = p
      return
    end
    local k = self.order[i]
    for _, v in ipairs(self.axes[k]) do
      cur[k] = v
      rec(i + 1, cur)
    end
    cur[k] = nil
  end
  rec(1, {})
  return pts
end

-- A short, stable directory name for a point.
function Sweep:point_id(p)
  local ffi = require "ffi"
  local E = require "lacos.engine"
  local text = json.encode(p)
  local hex = ffi.new("char[65]")
  E.check(E.C.lacos_sha256_buffer(text, #text, hex))
  return ffi.string(hex):sub(1, 12)
end

function Sweep:label(p)
  if self.describe then
    -- a describe written for good points must not hide the report of a bad one
    local ok, text = pcall(self.describe, p)
    if ok and type(text) == "string" then return text end
  end
  local parts = {}
  for _, k in ipairs(self.order) do parts[#parts + 1] = ("%s=%s"):format(k, tostring(p[k])) end
  return table.concat(parts, " ")
end

-- A validator's message in the words of the command line: "option
-- 'data_root'" becomes "--data" where the sweep's flags say so (a user of
-- a script never sees its point options).
function Sweep:speak_flags(text)
  for key, flag in pairs(self.flags) do
    local quoted = ("option '%s'"):format(key):gsub("%p", "%%%0")
    text = text:gsub(quoted, (tostring(flag):gsub("%%", "%%%%")))
  end
  return text
end

-- Validates every point before anything is loaded or written; returns the
-- list or raises one error listing every problem. A validator may report
-- several problems at once, one per line; the same problem in many points
-- (a bad value on one axis) is reported once, with how many points have it.
function Sweep:check()
  local pts = self:points()
  if not self.validate then return pts end
  local groups, order = {}, {}
  for i, p in ipairs(pts) do
    local ok, err = pcall(self.validate, p)
    if not ok then
      for line in self:speak_flags(tostring(err)):gmatch("[^\n]+") do
        local g = groups[line]
        if not g then
          g = { text = line, points = {} }
          groups[line] = g
          order[#order + 1] = g
        end
        g.points[#g.points + 1] = i
      end
    end
  end
  if #order == 0 then return pts end
  local lines = {}
  for _, g in ipairs(order) do
    local first = g.points[1]
    local where = #g.points == #pts and (#pts == 1 and "the only point" or ("all %d points"):format(#pts))
                  or #g.points == 1 and ("point %d: %s"):format(first, self:label(pts[first]))
                  or ("%d points, the first %d: %s"):format(#g.points, first, self:label(pts[first]))
    lines[#lines + 1] = ("%s (%s)"):format(g.text, where)
  end
  error(("sweep %s is not valid (nothing was run or recorded):\n  %s"):format(self.name, table.concat(lines, "\n  ")), 0)
end

local function fmt_seconds(s)
  if not s then return "?" end
  if s < 90 then return ("%.0f s"):format(s) end
  if s < 5400 then return ("%.0f min"):format(s / 60) end
  return ("%.1f h"):format(s / 3600)
end

-- The training a point does, as the estimate counted it: "500 x 2 epochs".
local function fmt_training(est)
  if not est.examples then return "?" end
  if est.examples == 0 then return "none" end
  return ("%d x %d epoch%s"):format(est.examples, est.epochs or 1, (est.epochs or 1) == 1 and "" or "s")
end

-- The database to show point states from in a dry run: opened read-only,
-- and only if it exists (a dry run creates nothing).
local function existing_db(path)
  local results = require "lacos.results"
  path = path or results.default_path()
  local f = io.open(path, "rb")
  if not f then return nil end
  f:close()
  return results.open(path, { readonly = true })
end

-- Prints every point with its estimates (training examples x epochs, peak
-- memory, time) and its state in the database; returns the points.
function Sweep:dry_run(db)
  local pts = self:check()
  local rows, total_s, worst, width = {}, 0, 0, #"point"
  for i, p in ipairs(pts) do
    local est = self.estimate and self.estimate(p) or {}
    total_s = total_s + (est.seconds or 0)
    worst = math.max(worst, est.bytes or 0)
    local status = "new"
    if db then
      local r = db:find_run { experiment = self.name, config = p, seed = p.seed or 0 }
      if r then status = r.status end
    end
    local label = self:label(p)
    width = math.max(width, #label)
    rows[i] = { label, fmt_training(est), est.bytes and util.bytes(est.bytes) or "?", fmt_seconds(est.seconds), status }
  end
  print(("sweep %s: %d points"):format(self.name, #pts))
  local fmt = "%4s  %-" .. width .. "s  %-20s %10s %8s  %s"
  print(fmt:format("#", "point", "training", "memory", "time", "status"))
  for i, r in ipairs(rows) do print(fmt:format(i, r[1], r[2], r[3], r[4], r[5])) end
  print(("estimated total %s, largest point %s"):format(fmt_seconds(total_s), util.bytes(worst)))
  return pts
end

-- The command-line options every sweep script gets from M.parse: running
-- on Slurm (lacos.slurm) and the progress lines of a batch job.
M.OPTIONS = {
  { "--log-every", "N", "without a terminal (a batch log, a pipe): a progress line every N training steps",
    type = "integer", min = 1, default = 10 },
  { "--slurm", nil, "submit the points not done yet to Slurm as one job array (lacos sweep status NAME follows it)" },
  { "--wait", nil, "--slurm: wait until the array and its merge end; the exit status is that of a local run" },
  { "--partition", "NAME", "--slurm: the partition" },
  { "--time", "LIMIT", "--slurm: time limit per point, as sbatch takes it (04:00:00, 2-00:00:00)" },
  { "--gpus-per-point", "N", "--slurm: GPUs per point (per rank with --ranks-per-point)", type = "integer", min = 1 },
  { "--cpus-per-point", "N", "--slurm: CPU cores per point (per rank); sets LACOS_THREADS in the task",
    type = "integer", min = 1 },
  { "--mem-per-point", "SIZE", "--slurm: memory per point as sbatch takes it (16G); default: the largest point's memory plan + 1 GiB" },
  { "--max-parallel", "N", "--slurm: at most N points running at once (the array's %N)", type = "integer", min = 1 },
  { "--ranks-per-point", "N", "--slurm: each point data-parallel over N ranks (srun --mpi=pmix -n N)", type = "integer", min = 1 },
  { "--max-requeues", "N", "--slurm: times a point requeues itself after SIGUSR2/SIGTERM (time limit, preemption); default 3",
    type = "integer", min = 0 },
  { "--sbatch-arg", "ARG", "--slurm: pass ARG to sbatch (repeat it; e.g. --sbatch-arg=--account=abc)", multiple = true },
  { "--slurm-task", "INDEX", "(written by --slurm into the batch script) run point INDEX as a Slurm task", type = "integer", min = 1 },
  { "--slurm-point", "ID", "(written by --slurm into the batch script) the id the point had at submission" },
}

-- spec (a lacos.args spec) with the sweep's options added (a copy).
function M.with_options(spec)
  local out = {}
  for k, v in pairs(spec) do out[k] = v end
  out.options = {}
  local have = {}
  for _, o in ipairs(spec.options or {}) do out.options[#out.options + 1] = o; have[o[1]] = true end
  for _, o in ipairs(M.OPTIONS) do if not have[o[1]] then out.options[#out.options + 1] = o end end
  return out
end

-- lacos.args.parse with the sweep's options; the result also remembers the
-- command line and spec (a Slurm task reruns the script with the same
-- arguments). Returns opts, or nil and the help text.
function M.parse(spec, argv)
  local full = M.with_options(spec)
  local opts, help = args.parse(full, argv or {})
  if not opts then return nil, help end
  local raw = {}
  for i = 1, #(argv or {}) do raw[i] = argv[i] end
  opts._sweep = { argv = raw, spec = full, script = argv and argv[0] }
  return opts
end

-- The exit status a sweep script should end with: 130 if interrupted, 1 if
-- a point failed, else 0.
local function exit_status(s)
  if s.interrupted > 0 then return 130 end
  if s.failed > 0 then return 1 end
  return 0
end
M.exit_status = exit_status

-- The headline of a point's result for its summary line: what the runner
-- returned as `headline`, else nothing.
local function headline(res)
  if type(res) == "table" and type(res.headline) == "string" and res.headline ~= "" then return " — " .. res.headline end
  return ""
end

-- Runs point i in `db` (experiment exp): claims it, runs it, records how it
-- ended. Returns the point's summary entry ({ status, run, ... }) and the
-- run handle. opts: out, quiet, log_every, total (for the [i/N] lines),
-- tags (recorded on a started run), say (the printer).
function Sweep:run_point(i, p, db, exp, opts)
  local E = require "lacos.engine"
  local label = self:label(p)
  local say, total = opts.say, opts.total
  -- db is nil on the ranks but 0 of a data-parallel job (lacos.dist): rank 0 claims, the others learn its decision
  local run, started
  if db then run, started = db:start_run { experiment = exp, name = self.name .. " " .. label, config = p, seed = p.seed or 0, reuse = true } end
  if opts.job then run, started = opts.job:decide(run, started) end
  if not started then
    say("[%d/%d] %s: %s already, skipped\n", i, total, label, run.status)
    return { point = p, status = "skipped", run = run.id }, run
  end
  say("[%d/%d] %s: run %d\n", i, total, label, run.id)
  if opts.tags then run:tags(opts.tags) end
  local dir = ("%s/%s/%s"):format(util.abspath(opts.out), self.name, self:point_id(p))   -- recorded absolutely
  util.mkdir_p(dir)
  local ctx = { run = run, db = db, dir = dir, index = i, total = total, sweep = self, quiet = opts.quiet,
                log_every = opts.log_every }
  local t0 = util.clock()
  local ok, res = xpcall(self.runner, function(e)
    if type(e) == "string" and e:match("interrupted") then return e end
    return debug.traceback(tostring(e), 2)
  end, p, ctx)
  local seconds = util.clock() - t0
  local interrupted = (not ok and type(res) == "string" and res:match("^interrupted"))
                   or (ok and type(res) == "table" and res.status == "interrupted")
                   or E.C.lacos_interrupt_pending() ~= 0
  if interrupted then
    local why = opts.interrupt_message
    if type(why) == "function" then why = why() end
    run:finish("interrupted", why or "interrupted by a signal", "signal")
    say("[%d/%d] %s: interrupted after %.1f s; %s\n", i, total, label, seconds,
        opts.resume_hint or "rerun the sweep to resume")
    return { point = p, status = "interrupted", run = run.id }, run
  elseif ok and (type(res) ~= "table" or res.status == nil or res.status == "done") then
    run:finish("done")
    say("[%d/%d] %s: done in %.1f s%s\n", i, total, label, seconds, headline(res))
    return { point = p, status = "done", run = run.id, result = res }, run
  end
  -- recorded with its error (the traceback kept in the database), and the
  -- sweep goes on: one bad point must not cost the others
  local msg = ok and tostring(res.reason or res.status) or tostring(res)
  run:finish("failed", msg, ok and tostring(res.status) or "error")
  say("[%d/%d] %s: failed (run %d): %s (after %.1f s)\n", i, total, label, run.id, msg:match("[^\n]*"), seconds)
  return { point = p, status = "failed", run = run.id, error = msg }, run
end

-- Runs the sweep. Returns { done, skipped, failed, interrupted, points,
-- exit_status }; unless quiet, prints a line per point and a summary line.
-- The grid is checked before the database is opened, so a bad grid leaves
-- no trace. With cli (from M.parse): --slurm submits the points instead
-- (and, without --wait, ends the process once they are submitted), a
-- --slurm-task process runs its one point and ends (lacos.slurm).
function Sweep:execute(opts)
  opts = util.options(opts, { db = util.ANY, dry_run = false, out = "results/runs", quiet = false, cli = util.ANY,
                              log_every = util.ANY }, "sweep:execute")
  if opts.db ~= nil and type(opts.db) ~= "string" and type(opts.db) ~= "table" then
    error(("sweep:execute: db must be a path or an open database, got %s"):format(type(opts.db)), 2)
  end
  local cli = opts.cli or {}
  if opts.cli ~= nil and type(opts.cli) ~= "table" then
    error(("sweep:execute: cli must be the options lacos.sweep.parse returned, got %s"):format(type(opts.cli)), 2)
  end
  local log_every = opts.log_every or cli.log_every or 10
  if cli.slurm or cli.slurm_task then
    return require("lacos.slurm").execute(self, opts, cli)
  end
  require("lacos.slurm").check_local(cli)
  if opts.dry_run then
    self:check()
    local db = type(opts.db) == "table" and opts.db or existing_db(opts.db)
    local ok, err = pcall(self.dry_run, self, db)
    if db and type(opts.db) ~= "table" then db:close() end
    if not ok then error(err, 0) end
    return { dry_run = true, done = 0, skipped = 0, failed = 0, interrupted = 0, points = {}, exit_status = 0 }
  end
  local pts = self:check()
  local results = require "lacos.results"
  -- under a launcher (mpirun -np W lacos run ...) every rank trains every
  -- point together; rank 0 alone opens the database and tells the others
  local job = require("lacos.dist").job()
  local db = (not job or job.root) and (type(opts.db) == "table" and opts.db or results.open(opts.db)) or nil
  local exp = db and db:experiment { name = self.name, script = self.script or true, axes = self.axes }
  local summary = { done = 0, skipped = 0, failed = 0, interrupted = 0, points = {} }
  -- (point labels and names shown with their control characters escaped)
  local function say(fmt, ...) if not opts.quiet and db then io.stderr:write(util.printable(fmt:format(...), { newlines = true })) end end
  for i, p in ipairs(pts) do
    local entry = self:run_point(i, p, db, exp, { out = opts.out, quiet = opts.quiet, log_every = log_every,
                                                  total = #pts, say = say, job = job })
    summary.points[i] = entry
    summary[entry.status] = summary[entry.status] + 1
    if entry.status == "interrupted" then break end
  end
  if db and type(opts.db) ~= "table" then db:close() end
  summary.exit_status = exit_status(summary)
  say("sweep %s: %d done, %d skipped (done before), %d failed, %d interrupted, of %d points\n", self.name,
      summary.done, summary.skipped, summary.failed, summary.interrupted, #pts)
  if summary.failed > 0 then
    say("  failed points are recorded with their error (lacos results list --status failed --experiment %s);\n" ..
        "  rerunning the sweep runs them again\n", self.name)
  end
  return summary
end

M.existing_db = existing_db

return M
