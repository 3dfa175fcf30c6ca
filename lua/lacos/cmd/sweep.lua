-- lacos sweep: follow or cancel a sweep submitted to Slurm (lua/lacos/slurm.lua).
local args = require "lacos.args"
local json = require "lacos.json"
local slurm = require "lacos.slurm"

local spec = {
  name = "sweep",
  usage = "lacos sweep status|cancel NAME [--db FILE] [--json]",
  summary = "Follow or cancel a sweep submitted with lacos run SCRIPT --slurm.",
  description = table.concat({
    "  status NAME   each point of the sweep: pending, running, requeued, done, failed, interrupted,",
    "                dead (its task is gone, its run never ended), cancelled or not started; its Slurm",
    "                job (array_task), restarts, last training loss and step, log file and error. Once",
    "                Slurm holds none of the sweep's jobs, the finished shards are merged into the database.",
    "  cancel NAME   cancel the sweep's queued and running tasks (they checkpoint and do not requeue",
    "                themselves); its merge job still folds what finished into the database.",
    "",
    "NAME is the sweep's name (the experiment: scale-synthetic, quickstart, ...). Its files are in",
    "<folder of the database>/slurm/NAME/: array.sbatch, merge.sbatch, logs/, shards/, jobs.json.",
  }, "\n"),
  options = {
    { "--db", "FILE", "results database the sweep was submitted with (default: $LACOS_DB or results/lacos.db)" },
    { "--json", nil, "status: print JSON" },
    { "--no-merge", nil, "status: do not merge finished shards into the database" },
  },
  positional = { min = 2, max = 2, names = "SUBCOMMAND NAME" },
  examples = {
    "lacos sweep status scale",
    "lacos sweep status scale-synthetic --json",
    "lacos sweep cancel scale",
  },
}

local function fmt_loss(v, step)
  if v == nil then return "-" end
  local s = v ~= v and "NaN" or ("%.4f"):format(v)
  return step and ("%s (step %d)"):format(s, step) or s
end

local ORDER = { "running", "pending", "requeued", "done", "failed", "interrupted", "dead", "cancelled", "not started", "unreadable" }

local function print_status(st)
  local latest = st.submissions[#st.submissions]
  print(("sweep %s: job array %d submitted %s (%d point%s), merge job %s %s"):format(st.name, latest.array_job,
    latest.submitted_at, #latest.points, #latest.points == 1 and "" or "s", tostring(latest.merge_job or "-"), st.merge_state))
  local rows = { { "#", "point", "state", "job", "restarts", "last loss", "log" } }
  for _, p in ipairs(st.points) do
    rows[#rows + 1] = { tostring(p.index), p.label, p.state, p.job, p.restarts and tostring(p.restarts) or "-",
                        fmt_loss(p.loss, p.step), p.log or "-" }
  end
  local w = {}
  for _, r in ipairs(rows) do for j, c in ipairs(r) do w[j] = math.max(w[j] or 0, #c) end end
  for _, r in ipairs(rows) do
    local cells = {}
    for j, c in ipairs(r) do cells[j] = j == #r and c or (c .. (" "):rep(w[j] - #c)) end
    print("  " .. table.concat(cells, "  "))
  end
  for _, p in ipairs(st.points) do
    if p.error and (p.state == "failed" or p.state == "interrupted" or p.state == "unreadable" or p.state == "dead") then
      print(("  point %d (%s): %s"):format(p.index, p.state, (tostring(p.error):match("[^\n]*"))))
    end
  end
  local parts = {}
  for _, k in ipairs(ORDER) do if st.counts[k] then parts[#parts + 1] = ("%d %s"):format(st.counts[k], k) end end
  print(("summary: %s"):format(table.concat(parts, ", ")))
  if st.merged then
    print(("merged into %s: %d run%s now, %d there already%s"):format(st.db, st.merged.merged,
      st.merged.merged == 1 and "" or "s", st.merged.present,
      #st.merged.refused > 0 and ("; %d shard%s skipped:"):format(#st.merged.refused, #st.merged.refused == 1 and "" or "s") or ""))
    for _, r in ipairs(st.merged.refused) do print("  " .. r.reason) end
  else
    print(("not merged yet: Slurm still holds %d of the sweep's jobs (the merge job folds the shards in at the end)"):format(st.active))
  end
end

local function json_status(st)
  local pts = {}
  for i, p in ipairs(st.points) do
    pts[i] = { index = p.index, id = p.id, label = p.label, state = p.state, job = p.job, restarts = p.restarts,
               loss = p.loss ~= nil and (p.loss ~= p.loss and "NaN" or p.loss) or json.null, step = p.step,
               log = p.log, error = p.error, runs = p.runs, uuid = p.uuid }
  end
  local doc = { name = st.name, dir = st.dir, db = st.db, points = pts, counts = st.counts, active_jobs = st.active,
                merge_job = st.merge_job, merge_state = st.merge_state, submissions = st.submissions }
  if st.merged then
    doc.merged = { runs = st.merged.merged, present = st.merged.present, refused = st.merged.refused }
  end
  io.write(json.encode(doc, { indent = 2 }), "\n")
end

local function run(opts)
  local sub, name = opts._[1], opts._[2]
  if sub == "status" then
    local st = slurm.status(name, opts.db, { merge = not opts.no_merge })
    if opts.json then json_status(st) else print_status(st) end
    return 0
  elseif sub == "cancel" then
    if opts.json or opts.no_merge then args.usage_error("sweep", "--json and --no-merge are options of status") end
    local arrays, dir = slurm.cancel(name, opts.db)
    if #arrays == 0 then
      print(("sweep %s: Slurm holds none of its jobs: nothing to cancel (lacos sweep status %s)"):format(name, name))
    else
      print(("sweep %s: cancelled job array %s; running tasks checkpoint and stop without requeueing; the merge job " ..
             "folds what finished into the database (%s)"):format(name, table.concat(arrays, ", "), dir))
    end
    return 0
  end
  args.usage_error("sweep", "unknown subcommand '%s' (status, cancel)", tostring(sub))
end

return { spec = spec, run = run }
