-- lacos.sweep: a grid of runs (models × data amounts × seeds × any option),
-- each point a run in the results database.
--
--   local sw = lacos.sweep.new{
--     name = "scale",
--     axes = { model = {"tiny-s", "tiny-m"}, pairs = {1000, 4000}, seed = {1} },
--     order = {"model", "pairs", "seed"},            -- optional; default: sorted axis names
--     fixed = { lr = 2e-4, batch_size = 16 },         -- merged into every point
--     validate = function(point) ... end,             -- raise on a bad point (before anything loads)
--     estimate = function(point) return { bytes = ..., seconds = ... } end,
--     run = function(point, ctx) ... return { status = "done" } end,
--   }
--   sw:execute{ db = path, dry_run = false, out = "results/runs" }
--
-- Every point is validated before the first one starts. A point already
-- done in the database is skipped; a point whose run was interrupted or died
-- starts a new run, which resumes from the point's checkpoint directory
-- (ctx.dir); a failed point is recorded with its error and the sweep goes on;
-- an interrupt stops the sweep after recording the point as interrupted.
local util = require "lacos.util"
local json = require "lacos.json"

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
                              describe = util.ANY }, "lacos.sweep.new")
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
  local self = setmetatable({ name = spec.name, axes = spec.axes, order = order, fixed = spec.fixed or {},
                              validate = spec.validate, estimate = spec.estimate, runner = spec.run,
                              script = spec.script, describe = spec.describe }, Sweep)
  return self
end

-- The points in order (the first axis varies slowest): each a config table
-- holding the fixed options and one value per axis.
function Sweep:points()
  local pts = {}
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
  if self.describe then return self.describe(p) end
  local parts = {}
  for _, k in ipairs(self.order) do parts[#parts + 1] = ("%s=%s"):format(k, tostring(p[k])) end
  return table.concat(parts, " ")
end

-- Validates every point; returns the list or raises with all problems listed.
function Sweep:check()
  local pts = self:points()
  local problems = {}
  if self.validate then
    for i, p in ipairs(pts) do
      local ok, err = pcall(self.validate, p)
      if not ok then problems[#problems + 1] = ("point %d (%s): %s"):format(i, self:label(p), tostring(err)) end
    end
  end
  if #problems > 0 then error("sweep " .. self.name .. " is not valid:\n  " .. table.concat(problems, "\n  "), 0) end
  return pts
end

local function fmt_seconds(s)
  if not s then return "?" end
  if s < 90 then return ("%.0f s"):format(s) end
  if s < 5400 then return ("%.0f min"):format(s / 60) end
  return ("%.1f h"):format(s / 3600)
end

-- Prints the points with their estimates (and their state in the database).
function Sweep:dry_run(db)
  local pts = self:check()
  local total_s, worst = 0, 0
  print(("sweep %s: %d points"):format(self.name, #pts))
  print(("%4s  %-44s %12s %10s  %s"):format("#", "point", "memory", "time", "status"))
  for i, p in ipairs(pts) do
    local est = self.estimate and self.estimate(p) or {}
    total_s = total_s + (est.seconds or 0)
    worst = math.max(worst, est.bytes or 0)
    local status = "new"
    if db then
      local r = db:find_run { experiment = self.name, config = p, seed = p.seed or 0 }
      if r then status = r.status end
    end
    print(("%4d  %-44s %12s %10s  %s"):format(i, self:label(p):sub(1, 44), est.bytes and util.bytes(est.bytes) or "?",
      fmt_seconds(est.seconds), status))
  end
  print(("estimated total %s, largest point %s"):format(fmt_seconds(total_s), util.bytes(worst)))
  return pts
end

-- Runs the sweep. Returns { done, skipped, failed, interrupted } counts and
-- the per-point outcomes.
function Sweep:execute(opts)
  opts = util.options(opts, { db = util.ANY, dry_run = false, out = "results/runs", quiet = false }, "sweep:execute")
  local results = require "lacos.results"
  local db = type(opts.db) == "table" and opts.db or results.open(opts.db)
  if opts.dry_run then self:dry_run(db) return { dry_run = true } end
  local pts = self:check()
  local exp = db:experiment { name = self.name, script = self.script or true, axes = self.axes }
  local E = require "lacos.engine"
  local summary = { done = 0, skipped = 0, failed = 0, interrupted = 0, points = {} }
  for i, p in ipairs(pts) do
    local label = self:label(p)
    local run, started = db:start_run { experiment = exp, name = self.name .. " " .. label, config = p, seed = p.seed or 0, reuse = true }
    if not started then
      summary.skipped = summary.skipped + 1
      summary.points[i] = { point = p, status = "skipped", run = run.id }
      if not opts.quiet then io.stderr:write(("[%d/%d] %s: %s already, skipped\n"):format(i, #pts, label, run.status)) end
    else
      if not opts.quiet then io.stderr:write(("[%d/%d] %s: run %d\n"):format(i, #pts, label, run.id)) end
      local dir = ("%s/%s/%s"):format(opts.out, self.name, self:point_id(p))
      os.execute(("mkdir -p %q"):format(dir))
      local ctx = { run = run, db = db, dir = dir, index = i, total = #pts, sweep = self }
      local ok, res = xpcall(self.runner, function(e)
        if type(e) == "string" and e:match("interrupted") then return e end
        return debug.traceback(tostring(e), 2)
      end, p, ctx)
      local interrupted = (not ok and type(res) == "string" and res:match("^interrupted"))
                       or (ok and type(res) == "table" and res.status == "interrupted")
                       or E.C.lacos_interrupt_pending() ~= 0
      if interrupted then
        run:finish("interrupted", "interrupted by a signal", "signal")
        summary.interrupted = summary.interrupted + 1
        summary.points[i] = { point = p, status = "interrupted", run = run.id }
        if not opts.quiet then io.stderr:write(("[%d/%d] %s: interrupted; rerun the sweep to resume\n"):format(i, #pts, label)) end
        break
      elseif ok and (type(res) ~= "table" or res.status == nil or res.status == "done") then
        run:finish("done")
        summary.done = summary.done + 1
        summary.points[i] = { point = p, status = "done", run = run.id, result = res }
      else
        local msg = ok and (res.reason or res.status) or tostring(res)
        run:finish("failed", msg, ok and res.status or "error")
        summary.failed = summary.failed + 1
        summary.points[i] = { point = p, status = "failed", run = run.id, error = msg }
        if not opts.quiet then io.stderr:write(("[%d/%d] %s: failed: %s\n"):format(i, #pts, label, msg:match("[^\n]*"))) end
      end
    end
  end
  if type(opts.db) ~= "table" then db:close() end
  return summary
end

return M
