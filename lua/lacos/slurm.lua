-- lacos.slurm: a sweep's points as a Slurm job array (the --slurm options
-- of every lacos.sweep, `lacos sweep status|cancel`).
--
-- What goes where, for a sweep NAME and the results database DB (default
-- results/lacos.db), in DIR = <folder of DB>/slurm/NAME (a name with other
-- characters than letters, digits, '.', '_' and '-' gets them replaced and a
-- hash appended):
--   DIR/array.sbatch    the batch script submitted (sbatch it again by hand to rerun the missing points)
--   DIR/merge.sbatch    the merge job, submitted with --dependency=afterany on the array
--   DIR/logs/           one log per task, %x_%A_%a.out (the job name is lacos-NAME), and the merge's
--   DIR/shards/ID.db    each point's own results database (rollback journal), ID = the point's id
--   DIR/jobs.json       every submission: job ids, the points and their indices
--   DIR/cancelled-JOB   written by `lacos sweep cancel` before it signals the tasks
-- Task i runs point i of the grid (1-based, the numbering of --dry-run) by
-- running the same script with the same arguments plus --slurm-task i. A
-- task that gets SIGUSR2 (asked for 120 s before the time limit) or
-- SIGTERM (preemption) finishes its training step, checkpoints, records the
-- run as interrupted in its shard, asks `scontrol requeue` for itself (at
-- most --max-requeues times) and exits; the requeued task resumes from the
-- checkpoint. Nothing from a user, a file or a database reaches a shell: the
-- commands run with argument vectors (lacos.util.run), and every value
-- written into the batch script is quoted (M.shell_quote, M.sbatch_quote).
local util = require "lacos.util"
local json = require "lacos.json"
local args = require "lacos.args"

local M = {}

M.SIGNAL_BEFORE = 120   -- seconds: --signal=B:USR2@120 (Slurm may send it up to 60 s earlier)
local SIGINT, SIGTERM, SIGUSR2 = 2, 15, 12

-- Options that only make sense with --slurm (a task does not get them).
local SUBMIT_ONLY = {
  "--slurm", "--wait", "--partition", "--time", "--gpus-per-point", "--cpus-per-point", "--mem-per-point",
  "--max-parallel", "--ranks-per-point", "--sbatch-arg", "--slurm-task", "--slurm-point", "--dry-run",
}
local function key_of(flag) return (flag:gsub("^%-%-", ""):gsub("%-", "_")) end

-- ---------------------------------------------------------------- quoting

-- s as one word of a POSIX shell: single quotes, with each ' written '\''.
-- Bash reads anything between single quotes literally, newlines included.
function M.shell_quote(s)
  s = tostring(s)
  if s:find("%z") then error(("a value with a NUL byte cannot go into a batch script: %q"):format(s), 0) end
  if s:match("^[%w%-_./=:,@+]+$") then return s end   -- nothing in it a shell would read
  return "'" .. s:gsub("'", [['\'']]) .. "'"
end

-- s as one value of an #SBATCH line: sbatch splits those lines at blanks,
-- reads '#' as the start of a comment, and takes "..." with \ escaping the
-- next character (src/sbatch/opt.c); a newline cannot be written at all.
function M.sbatch_quote(s)
  s = tostring(s)
  if s:find("[%z\n\r]") then
    error(("%q cannot go into an #SBATCH line (a newline or NUL byte in it); use a path without one"):format(s), 0)
  end
  if s:match("^[%w%-_./=:,@+%%]+$") then return s end   -- nothing in it sbatch would split or strip
  return '"' .. s:gsub('[\\"]', "\\%0") .. '"'
end

-- A path as part of a Slurm filename pattern (--output): '%' is written
-- '%%'; a backslash would turn the pattern's replacements off altogether.
local function pattern_path(p)
  if p:find("\\", 1, true) then
    error(("%s: a folder whose path has a backslash cannot hold Slurm logs (sbatch then ignores %%A and %%a); " ..
           "choose another --db location"):format(p), 0)
  end
  return (p:gsub("%%", "%%%%"))
end

-- A comment line of the script: control characters (a newline would end
-- the comment and start a command) become spaces.
local function comment(s) return (tostring(s):gsub("[%c]", " ")) end

-- ---------------------------------------------------------------- places

local function sha256_hex(text)
  local E = require "lacos.engine"
  local hex = E.ffi.new("char[65]")
  E.check(E.C.lacos_sha256_buffer(text, #text, hex))
  return E.ffi.string(hex)
end

-- The folder name of a sweep: the name itself when it is tame, else its
-- tame characters and a hash of the whole name (so two names never share one).
function M.folder_name(name)
  if name:match("^[%w][%w._-]*$") and #name <= 64 then return name end
  local tame = name:gsub("[^%w._-]", "_"):gsub("^[._-]+", ""):sub(1, 40)
  return (tame ~= "" and (tame .. "-") or "sweep-") .. sha256_hex(name):sub(1, 12)
end

-- The job name (%x in the log names): lacos-<folder name>.
function M.job_name(name) return "lacos-" .. M.folder_name(name) end

local function dirname(p) return p:match("^(.*)/[^/]*$") or "." end

-- The absolute path of the results database a sweep uses.
function M.db_path(db)
  return util.abspath(type(db) == "string" and db or require("lacos.results").default_path())
end

-- The sweep's folder beside the results database.
function M.dir(name, db)
  return dirname(M.db_path(db)) .. "/slurm/" .. M.folder_name(name)
end

-- Written whole or not at all (util.write_file): a reader never sees half a file.
local function write_file(path, text, mode)
  util.write_file(path, text)
  if mode then util.run({ "chmod", mode, util.arg_path(path) }) end
end

function M.jobs(dir)
  local path = dir .. "/jobs.json"
  if not util.exists(path) then return { submissions = {} } end
  return json.read(path)
end

-- ---------------------------------------------------------------- Slurm commands

local function need(cmd)
  local status, _, err = util.capture({ "sh", "-c", 'command -v "$1"', "sh", cmd })
  if status ~= 0 then
    error(("%s not found: --slurm and lacos sweep need Slurm's commands (sbatch, squeue, scontrol, scancel) on PATH%s")
          :format(cmd, err ~= "" and (" (" .. err:gsub("%s+$", "") .. ")") or ""), 0)
  end
end

-- Runs a Slurm command; returns its stdout, or raises with its stderr.
local function slurm(argv, what)
  local ok, status, out, err = pcall(util.capture, argv)
  if not ok then error(("%s: %s"):format(argv[1], tostring(status)), 0) end
  if status ~= 0 then
    error(("%s failed (exit %d)%s: %s"):format(table.concat(argv, " "):sub(1, 300), status, what and (" " .. what) or "",
          (err ~= "" and err or out):gsub("%s+$", "")), 0)
  end
  return out
end
M.run_command = slurm

-- The array tasks and jobs of `ids` (named `name`, the sweep's) Slurm still
-- knows as pending or running: { ["12_3"] = { state = "PENDING", reason =
-- "BeginTime" }, ["13"] = ... }, and the count. A pending array not yet
-- split into tasks shows as 12_[3-5%2]: its tasks are listed one by one.
-- Asked by job name, not by id: squeue fails on an id it has forgotten
-- (MinJobAge after the end), and an old submission's ids are forgotten.
function M.queue(ids, name)
  if #ids == 0 then return {}, 0 end
  local wanted = {}
  for _, id in ipairs(ids) do wanted[tostring(id)] = true end
  local out = slurm({ "squeue", "-h", "-r", "--name=" .. M.job_name(name) .. "," .. M.job_name(name) .. "-merge",
                      "-o", "%i|%T|%r" })
  local q, n = {}, 0
  for line in out:gmatch("[^\n]+") do
    local id, state, reason = line:match("^(%S+)|([^|]*)|(.*)$")
    if id and not wanted[id:match("^(%d+)")] then id = nil end
    if id then
      local base, set = id:match("^(%d+)_%[(.-)%]$")
      if base then
        for part in set:gsub("%%%d+$", ""):gmatch("[^,]+") do
          local a, b = part:match("^(%d+)%-(%d+)$")
          a, b = tonumber(a or part), tonumber(b or part)
          for k = a or 1, b or 0 do q[("%s_%d"):format(base, k)] = { state = state, reason = reason }; n = n + 1 end
        end
      else
        q[id] = { state = state, reason = reason }
        n = n + 1
      end
    end
  end
  return q, n
end

-- ---------------------------------------------------------------- usage

local function script_name(cli)
  return cli._sweep and cli._sweep.spec and cli._sweep.spec.name or "sweep"
end

-- A local run refuses options that only mean something with --slurm.
function M.check_local(cli)
  for _, flag in ipairs(SUBMIT_ONLY) do
    local v = cli[key_of(flag)]
    if flag ~= "--slurm" and flag ~= "--dry-run" and v ~= nil and v ~= false then
      args.usage_error(script_name(cli), "%s applies to --slurm (submitting the sweep to Slurm)", flag)
    end
  end
  if cli.max_requeues ~= nil then
    args.usage_error(script_name(cli), "--max-requeues applies to --slurm (submitting the sweep to Slurm)")
  end
end

-- ---------------------------------------------------------------- the batch scripts

-- The arguments of the script for a task: the command line as given, less
-- the options of submitting (mirrors lacos.args.parse's reading of it).
local function task_argv(raw, spec)
  local byflag, drop = {}, {}
  for _, o in ipairs(spec.options or {}) do byflag[o[1]] = o end
  for _, f in ipairs(SUBMIT_ONLY) do drop[f] = true end
  local out, i = {}, 1
  while i <= #raw do
    local a = raw[i]
    if a == "--" then
      for j = i, #raw do out[#out + 1] = raw[j] end
      break
    end
    if a:sub(1, 2) == "--" and #a > 2 then
      local flag, val = a:match("^(%-%-[^=]+)=(.*)$")
      flag = flag or a
      local o = byflag[flag]
      if o and o[2] and not val then
        if not drop[flag] then out[#out + 1] = a; out[#out + 1] = raw[i + 1] end
        i = i + 2
      else
        if not drop[flag] then out[#out + 1] = a end
        i = i + 1
      end
    else
      out[#out + 1] = a
      i = i + 1
    end
  end
  return out
end
M.task_argv = task_argv

-- Slurm's size syntax: a whole number with an optional K/M/G/T suffix.
local function check_size(flag, v, cli)
  if not tostring(v):match("^%d+[KkMmGgTt]?$") then
    args.usage_error(script_name(cli), "%s expects a size as sbatch takes it (e.g. 16G, 500M), got '%s'", flag, tostring(v))
  end
end
local function check_time(v, cli)
  local t = tostring(v)
  local ok = t:match("^%d+$") or t:match("^%d+:%d%d$") or t:match("^%d+:%d%d:%d%d$") or t:match("^%d+%-%d+$")
             or t:match("^%d+%-%d+:%d%d$") or t:match("^%d+%-%d+:%d%d:%d%d$")
  if not ok then
    args.usage_error(script_name(cli), "--time expects a time limit as sbatch takes it (minutes, HH:MM:SS, D-HH:MM:SS), got '%s'", t)
  end
end

-- Environment that moves what a task computes or where it reads, written
-- into the script so a rerun by hand from another shell sees the same.
local EXPORT = { "LACOS_DATA", "LACOS_DATA_MIRROR", "LACOS_HOME", "LACOS_THREADS", "LACOS_MEMORY_LIMIT", "LACOS_DB_TIMEOUT" }

-- The text of the array's batch script. info: name, dir, cwd, exe, script,
-- argv (the script's arguments for a task), points ({ index, id, label }),
-- mem (sbatch size text or nil), and the cli options.
function M.batch_script(info)
  local cli = info.cli
  local L = {}
  local function add(s) L[#L + 1] = s end
  local function sbatch(flag, value) add(("#SBATCH %s=%s"):format(flag, M.sbatch_quote(value))) end
  add("#!/bin/bash")
  add(comment(("# lacos sweep %s: one Slurm array task per point not done when it was written (%s)."):format(
      info.name, os.date("!%Y-%m-%d %H:%M:%SZ"))))
  add("# Written by --slurm; submitting it again by hand runs the listed points again (a point already")
  add("# done in its shard is skipped). Follow the tasks with: lacos sweep status " .. comment(info.name))
  add("# Task INDEX runs point INDEX of the grid (the numbering of --dry-run):")
  for _, p in ipairs(info.points) do add(comment(("#   %4d  %s  (point id %s)"):format(p.index, p.label, p.id))) end
  if info.mem_note then add(comment("# " .. info.mem_note)) end
  sbatch("--job-name", M.job_name(info.name))
  local idx = {}
  for _, p in ipairs(info.points) do idx[#idx + 1] = tostring(p.index) end
  sbatch("--array", table.concat(idx, ",") .. (cli.max_parallel and ("%" .. cli.max_parallel) or ""))
  sbatch("--output", pattern_path(info.dir .. "/logs") .. "/%x_%A_%a.out")
  sbatch("--open-mode", "append")
  add("#SBATCH --requeue")
  sbatch("--signal", ("B:USR2@%d"):format(M.SIGNAL_BEFORE))
  local ranks = cli.ranks_per_point or 1
  if ranks > 1 then
    sbatch("--ntasks", tostring(ranks))
    if cli.cpus_per_point then sbatch("--cpus-per-task", tostring(cli.cpus_per_point)) end
    if cli.gpus_per_point then sbatch("--gpus-per-task", tostring(cli.gpus_per_point)) end
    if info.mem then sbatch("--mem-per-cpu", info.mem_per_cpu) end
  else
    if cli.cpus_per_point then sbatch("--cpus-per-task", tostring(cli.cpus_per_point)) end
    if cli.gpus_per_point then sbatch("--gres", "gpu:" .. cli.gpus_per_point) end
    if info.mem then sbatch("--mem", info.mem) end
  end
  if cli.time then sbatch("--time", cli.time) end
  if cli.partition then sbatch("--partition", cli.partition) end
  for _, a in ipairs(cli.sbatch_arg or {}) do add("#SBATCH " .. M.sbatch_quote(a)) end
  add("")
  add("set -u")
  add("cd " .. M.shell_quote(info.cwd) .. " || exit 1")
  for _, k in ipairs(EXPORT) do
    local v = os.getenv(k)
    if v and v ~= "" then add(("export %s=%s"):format(k, M.shell_quote(v))) end
  end
  if cli.cpus_per_point and not os.getenv("LACOS_THREADS") then
    add('export LACOS_THREADS="${SLURM_CPUS_PER_TASK:-' .. cli.cpus_per_point .. '}"')
  end
  add('case "${SLURM_ARRAY_TASK_ID:-}" in')
  for _, p in ipairs(info.points) do add(("  %d) point=%s ;;"):format(p.index, p.id)) end
  add('  *) echo "lacos: task \'${SLURM_ARRAY_TASK_ID:-}\' is not a point of this array (see the list above)" >&2; exit 2 ;;')
  add("esac")
  local cmd = {}
  if ranks > 1 then
    -- the ranks train the point together (lacos.dist); rank 0 alone writes the shard and requeues
    for _, w in ipairs { "srun", "--mpi=pmix", "-n", tostring(ranks), "--kill-on-bad-exit=1" } do cmd[#cmd + 1] = w end
  end
  cmd[#cmd + 1] = M.shell_quote(info.exe)
  cmd[#cmd + 1] = "run"
  cmd[#cmd + 1] = M.shell_quote(info.script)
  for _, a in ipairs(info.argv) do cmd[#cmd + 1] = M.shell_quote(a) end
  cmd[#cmd + 1] = '--slurm-task "$SLURM_ARRAY_TASK_ID" --slurm-point "$point"'
  -- exec: the task's process is the batch step itself, so Slurm's USR2 (B:) reaches it
  add("exec " .. table.concat(cmd, " "))
  return table.concat(L, "\n") .. "\n"
end

-- The merge job's script: every shard of the sweep into the database.
function M.merge_script(info)
  local cli = info.cli
  local L = {}
  local function add(s) L[#L + 1] = s end
  add("#!/bin/bash")
  add(comment(("# lacos sweep %s: folds the tasks' shards into the results database once the array has ended."):format(info.name)))
  add("# Submitted with --dependency=afterany:<array job>; idempotent, so it may run again by hand.")
  add(("#SBATCH --job-name=%s"):format(M.sbatch_quote(M.job_name(info.name) .. "-merge")))
  add(("#SBATCH --output=%s"):format(M.sbatch_quote(pattern_path(info.dir .. "/logs") .. "/%x_%j.out")))
  add("#SBATCH --mem=1G")
  if cli.partition then add(("#SBATCH --partition=%s"):format(M.sbatch_quote(cli.partition))) end
  for _, a in ipairs(cli.sbatch_arg or {}) do add("#SBATCH " .. M.sbatch_quote(a)) end
  add("")
  add("cd " .. M.shell_quote(info.cwd) .. " || exit 1")
  add(("exec %s results merge --db %s --experiment %s %s"):format(M.shell_quote(info.exe), M.shell_quote(info.db),
      M.shell_quote(info.name), M.shell_quote(info.dir .. "/shards")))
  return table.concat(L, "\n") .. "\n"
end

-- ---------------------------------------------------------------- point states

local function shard_path(dir, id) return ("%s/shards/%s.db"):format(dir, id) end

-- The runs a point's shard holds (nil and the reason when it cannot be read).
local function shard_runs(dir, id)
  local path = shard_path(dir, id)
  if not util.exists(path) then return {} end
  local ok, runs = pcall(require("lacos.results").shard_runs, path)
  if not ok then return nil, tostring(runs) end
  return runs
end

-- Is the point done in the main database (or in its shard)?
local function done_somewhere(sweep, p, db, dir)
  if db then
    local r = db:find_run { experiment = sweep.name, config = p, seed = p.seed or 0 }
    if r and r.status == "done" then return true end
  end
  local runs = shard_runs(dir, sweep:point_id(p))
  if runs and #runs > 0 and runs[#runs].status == "done" then return true end
  return false
end

-- ---------------------------------------------------------------- merging

-- Merges every shard under dir/shards into the database; returns the
-- lacos.merge report.
local function merge_all(name, dir, db_path, quiet)
  return require("lacos.merge").merge({ dir .. "/shards" }, { db = db_path, experiment = name, quiet = quiet })
end

-- ---------------------------------------------------------------- submitting

-- The jobs of the sweep Slurm still holds (pending or running).
local function active_jobs(dir)
  local state = M.jobs(dir)
  local ids = {}
  for _, s in ipairs(state.submissions) do
    ids[#ids + 1] = tostring(s.array_job)
    if s.merge_job then ids[#ids + 1] = tostring(s.merge_job) end
  end
  if #ids == 0 then return {}, 0, state end
  local q, n = M.queue(ids, state.name)
  return q, n, state
end

local function memory_request(sweep, pending, cli)
  if cli.mem_per_point then return cli.mem_per_point, nil end
  local worst
  for _, t in ipairs(pending) do
    local bytes
    if sweep.memory then bytes = sweep.memory(t.point)
    elseif sweep.estimate then bytes = sweep.estimate(t.point).bytes end
    if type(bytes) == "number" and bytes > 0 then worst = math.max(worst or 0, bytes) end
  end
  if not worst then return nil, "no memory plan for these points: the partition's default memory applies (--mem-per-point SIZE)" end
  local mib = math.ceil((worst * 1.25 + 2 ^ 30) / 2 ^ 20 / 64) * 64
  return mib .. "M", ("memory: the largest point's plan %s x 1.25 + 1 GiB for the process = %d MiB (--mem-per-point to change)")
                     :format(util.bytes(worst), mib)
end

local function print_summary(name, s, total)
  io.stderr:write(("sweep %s: %d done, %d skipped (done before), %d failed, %d interrupted, of %d points\n"):format(
    name, s.done, s.skipped, s.failed, s.interrupted, total))
end

-- --slurm: validates, writes the batch scripts, submits the array and the
-- merge job; with --wait follows them to the end and returns the summary a
-- local run returns, else ends the process.
local function submit(sweep, opts, cli)
  local name = sweep.name
  local sname = script_name(cli)
  if cli.ranks_per_point and cli.ranks_per_point > 1 and not opts.dry_run then
    -- the ranks of a point meet through MPI (lacos.dist): liblacos_mpi.so beside the engine
    local lib = rawget(_G, "LACOS_LIB") or ""
    local plugin = os.getenv("LACOS_MPI_PLUGIN")
    if not ((plugin and plugin ~= "" and util.exists(plugin)) or util.exists(dirname(lib) .. "/liblacos_mpi.so")) then
      args.usage_error(sname, "--ranks-per-point %d: this lacos was built without MPI (no liblacos_mpi.so beside %s); " ..
                       "install MPI (apt-get install libopenmpi-dev, or make deps) and build again", cli.ranks_per_point, lib)
    end
  end
  if cli.mem_per_point then check_size("--mem-per-point", cli.mem_per_point, cli) end
  if cli.time then check_time(cli.time, cli) end
  if opts.dry_run and cli.wait then args.usage_error(sname, "--wait and --dry-run do not go together") end
  local script = (cli._sweep and cli._sweep.script) or sweep.script
  if type(script) ~= "string" or script == "" or not util.exists(script) then
    error(("sweep %s: --slurm reruns the sweep's script in each task, but it has none (lacos.sweep.new{script = arg[0]}) " ..
           "and the command line has none"):format(name), 0)
  end
  if not cli._sweep then
    error(("sweep %s: --slurm needs the command line as lacos.sweep.parse read it (execute{cli = opts})"):format(name), 0)
  end
  local pts = sweep:check()
  local db_path = M.db_path(opts.db)
  local dir = M.dir(name, db_path)
  local results = require "lacos.results"
  if not opts.dry_run then
    need("sbatch")
    local q, n = active_jobs(dir)
    if n > 0 then
      local list = {}
      for id, s in pairs(q) do list[#list + 1] = ("%s %s"):format(id, s.state:lower()) end
      table.sort(list)
      error(("sweep %s: Slurm still has %d of its jobs (%s); follow them with lacos sweep status %s, or stop them with " ..
             "lacos sweep cancel %s"):format(name, n, table.concat(list, ", "):sub(1, 200), name, name), 0)
    end
    util.mkdir_p(dir .. "/logs")
    util.mkdir_p(dir .. "/shards")
    -- the database exists before any task runs (the merge job writes into it)
    local db = results.open(db_path)
    db:experiment { name = name, script = util.abspath(script), axes = sweep.axes }
    db:close()
    merge_all(name, dir, db_path, true)
  end
  local db
  if opts.dry_run then db = require("lacos.sweep").existing_db(db_path)   -- a dry run creates nothing
  else db = results.open(db_path, { readonly = true }) end
  local pending, done = {}, 0
  for i, p in ipairs(pts) do
    if done_somewhere(sweep, p, db, dir) then done = done + 1
    else pending[#pending + 1] = { index = i, id = sweep:point_id(p), label = sweep:label(p), point = p } end
  end
  if db then db:close() end
  if #pending == 0 then
    io.stderr:write(("sweep %s: every one of its %d points is done; nothing to submit\n"):format(name, #pts))
    if opts.dry_run or not cli.wait then
      if opts.dry_run then return { dry_run = true, done = 0, skipped = #pts, failed = 0, interrupted = 0, points = {}, exit_status = 0 } end
      os.exit(0, true)
    end
    local s = { done = 0, skipped = #pts, failed = 0, interrupted = 0, points = {}, exit_status = 0 }
    print_summary(name, s, #pts)
    return s
  end
  if not opts.dry_run then
    -- array indices run from 0 to MaxArraySize - 1 (Slurm's default 1001): the grid index must fit
    local ok, config = pcall(slurm, { "scontrol", "show", "config" })
    local max_size = ok and tonumber(config:match("\nMaxArraySize%s*=%s*(%d+)")) or nil
    if max_size and pending[#pending].index > max_size - 1 then
      error(("sweep %s: point %d is beyond this cluster's largest array index %d (MaxArraySize = %d); submit part of " ..
             "the grid at a time (fewer points: the script's own options), or ask for a larger MaxArraySize")
            :format(name, pending[#pending].index, max_size - 1, max_size), 0)
    end
  end
  local mem, mem_note = memory_request(sweep, pending, cli)
  local info = { name = name, dir = dir, cwd = util.abspath("."), exe = rawget(_G, "LACOS_EXE") or "lacos",
                 script = util.abspath(script), argv = task_argv(cli._sweep.argv, cli._sweep.spec), points = pending,
                 mem = mem, mem_note = mem_note, cli = cli, db = db_path }
  if mem and cli.ranks_per_point and cli.ranks_per_point > 1 then
    local n, unit = mem:match("^(%d+)(%a?)$")
    info.mem_per_cpu = math.ceil(tonumber(n) / (cli.cpus_per_point or 1)) .. unit
  end
  local text = M.batch_script(info)
  local merge_text = M.merge_script(info)
  if opts.dry_run then
    io.write(text)
    io.stderr:write(("sweep %s: would submit %d of %d points (%d done) as one job array, then a merge job " ..
                     "(--dry-run: nothing written or submitted)\n"):format(name, #pending, #pts, done))
    return { dry_run = true, done = 0, skipped = done, failed = 0, interrupted = 0, points = {}, exit_status = 0 }
  end
  local array_path, merge_path = dir .. "/array.sbatch", dir .. "/merge.sbatch"
  write_file(array_path, text, "755")
  write_file(merge_path, merge_text, "755")
  local out = slurm({ "sbatch", "--parsable", util.arg_path(array_path) }, "submitting the array")
  local array_job = out:match("^%s*(%d+)")
  if not array_job then error(("sbatch answered %q, not a job id"):format(out), 0) end
  local merge_out = slurm({ "sbatch", "--parsable", "--dependency=afterany:" .. array_job, "--kill-on-invalid-dep=no",
                            util.arg_path(merge_path) }, "submitting the merge job")
  local merge_job = merge_out:match("^%s*(%d+)")
  local state = M.jobs(dir)
  local entry = { array_job = tonumber(array_job), merge_job = tonumber(merge_job), submitted_at = os.date("!%Y-%m-%dT%H:%M:%SZ"),
                  script = util.abspath(script), batch_script = array_path, db = db_path, name = name, points = {} }
  for _, t in ipairs(pending) do entry.points[#entry.points + 1] = { index = t.index, id = t.id, label = t.label } end
  state.name = name
  state.submissions[#state.submissions + 1] = entry
  json.write(dir .. "/jobs.json", state)
  local rel_dir = dir
  io.stderr:write(("sweep %s: submitted %d of %d points (%d done before) as Slurm job array %s; merge job %s runs after it\n")
                  :format(name, #pending, #pts, done, array_job, merge_job or "?"))
  io.stderr:write(("  batch script: %s\n  logs: %s/logs/%s_%s_<task>.out\n  shards: %s/shards/\n"):format(
    array_path, rel_dir, M.job_name(name), array_job, rel_dir))
  io.stderr:write(("  follow: lacos sweep status %s%s   stop: lacos sweep cancel %s\n"):format(
    M.shell_quote(name), opts.db and (" --db " .. M.shell_quote(opts.db)) or "", M.shell_quote(name)))
  if not cli.wait then os.exit(0, true) end
  return M.wait(sweep, pts, dir, db_path, entry)
end

-- --wait: polls Slurm until the array and the merge job are gone, merges
-- (again: idempotent), and returns the summary of the submitted points.
function M.wait(sweep, pts, dir, db_path, entry)
  local ids = { tostring(entry.array_job) }
  if entry.merge_job then ids[#ids + 1] = tostring(entry.merge_job) end
  local function interrupt(e) return tostring(e):match("^interrupted") ~= nil end
  -- polls until Slurm holds none of the jobs; Ctrl-C (the "interrupted" error the signal hook raises) ends it
  local function follow()
    local t0, last, failures = util.clock(), nil, 0
    while true do
      local ok, q, n = pcall(M.queue, ids, sweep.name)
      if not ok and interrupt(q) then error(q, 0) end
      if not ok then
        failures = failures + 1
        if failures >= 5 then error(("sweep %s: cannot follow the jobs: %s"):format(sweep.name, tostring(q)), 0) end
      else
        failures = 0
        if n == 0 then return end
        local counts = {}
        for _, s in pairs(q) do counts[s.state:lower()] = (counts[s.state:lower()] or 0) + 1 end
        local parts = {}
        for k, v in pairs(counts) do parts[#parts + 1] = ("%d %s"):format(v, k) end
        table.sort(parts)
        local line = table.concat(parts, ", ")
        if line ~= last then
          io.stderr:write(("sweep %s: [%s] %s\n"):format(sweep.name, os.date("%H:%M:%S"), line))
          last = line
        end
      end
      if util.sleep(math.min(1 + (util.clock() - t0) / 30, 10)) then error("interrupted", 0) end
    end
  end
  local ok, err = pcall(follow)
  if not ok then
    if not interrupt(err) then error(err, 0) end
    io.stderr:write(("sweep %s: stopped waiting; the jobs go on (lacos sweep status %s; lacos sweep cancel %s)\n")
                    :format(sweep.name, M.shell_quote(sweep.name), M.shell_quote(sweep.name)))
    return { done = 0, skipped = 0, failed = 0, interrupted = 1, points = {}, exit_status = 130 }
  end
  merge_all(sweep.name, dir, db_path, true)
  local results = require "lacos.results"
  local db = results.open(db_path, { readonly = true })
  local s = { done = 0, skipped = #pts - #entry.points, failed = 0, interrupted = 0, points = {} }
  local by_index = {}
  for _, p in ipairs(entry.points) do by_index[p.index] = p end
  for i, p in ipairs(pts) do
    if by_index[i] then
      local r = db:find_run { experiment = sweep.name, config = p, seed = p.seed or 0 }
      local st = r and r.status or "missing"
      if st == "done" then s.done = s.done + 1
      elseif st == "failed" then s.failed = s.failed + 1
      else s.interrupted = s.interrupted + 1 end
      s.points[i] = { point = p, status = st, run = r and r.id }
    end
  end
  db:close()
  s.exit_status = (s.failed > 0 or s.interrupted > 0) and 1 or 0
  print_summary(sweep.name, s, #pts)
  if s.failed > 0 or s.interrupted > 0 then
    io.stderr:write(("  lacos sweep status %s lists each point with its state and log\n"):format(sweep.name))
  end
  return s
end

-- ---------------------------------------------------------------- a task

local function last_signal()
  local ok, f = pcall(function() return require("ffi").C.lacos_cli_last_signal end)
  return ok and f() or 0
end

-- The log file Slurm writes this task's output to (scontrol knows it;
-- else the name the batch script asked for).
local function task_log(dir, name)
  local job = os.getenv("SLURM_JOB_ID")
  if job then
    local ok, out = pcall(slurm, { "scontrol", "show", "job", "-o", job })
    local path = ok and out:match("StdOut=(.-)%s+%u%w+=") or (ok and out:match("StdOut=(%S+)"))
    if path and path ~= "" then return path end
  end
  return ("%s/logs/%s_%s_%s.out"):format(dir, M.job_name(name), os.getenv("SLURM_ARRAY_JOB_ID") or "?",
                                        os.getenv("SLURM_ARRAY_TASK_ID") or "?")
end

-- --slurm-task INDEX: runs point INDEX into its shard, and on SIGUSR2 or
-- SIGTERM requeues itself; ends the process with the point's status.
local function task(sweep, opts, cli)
  local index = cli.slurm_task
  local pts = sweep:check()
  local p = pts[index]
  if not p then
    io.stderr:write(("lacos: task %d: the sweep %s has %d points; the grid changed since the array was submitted\n")
                    :format(index, sweep.name, #pts))
    os.exit(2, true)
  end
  local id = sweep:point_id(p)
  if cli.slurm_point and cli.slurm_point ~= id then
    io.stderr:write(("lacos: task %d: point %d of the grid is now %s (id %s), but the array was submitted for point id %s: " ..
                     "the grid changed since (other options, data or models); submit the sweep again\n")
                    :format(index, index, sweep:label(p), id, cli.slurm_point))
    os.exit(2, true)
  end
  local name = sweep.name
  local db_path = M.db_path(opts.db)
  local dir = M.dir(name, db_path)
  util.mkdir_p(dir .. "/shards")
  local restarts = tonumber(os.getenv("SLURM_RESTART_COUNT") or "0") or 0
  local array_job = os.getenv("SLURM_ARRAY_JOB_ID") or os.getenv("SLURM_JOB_ID") or "?"
  local log = task_log(dir, name)
  -- --ranks-per-point N: srun started N ranks of this point; they train it together (lacos.dist), rank 0 alone
  -- writes the shard, checkpoints and requeues
  local job = require("lacos.dist").job()
  local root = not job or job.root
  if root then
    io.stderr:write(("lacos: sweep %s, task %d (job %s_%d, restart %d, host %s%s): point %s\n"):format(
      name, index, array_job, index, restarts, os.getenv("SLURMD_NODENAME") or "?",
      job and (", %d ranks"):format(job.comm:size()) or "", sweep:label(p)))
  end
  local results = require "lacos.results"
  local db, exp
  if root then
    db = results.open(shard_path(dir, id), { journal = "rollback" })
    -- this task is the only writer of its shard: a run left running was a killed earlier attempt
    db:mark_dead(0)
    exp = db:experiment { name = name, script = util.abspath(sweep.script or cli._sweep.script), axes = sweep.axes }
  end
  local say = function(fmt, ...) if root then io.stderr:write(util.printable(fmt:format(...), { newlines = true })) end end
  local entry = sweep:run_point(index, p, db, exp, {
    job = job,
    out = opts.out, quiet = opts.quiet, log_every = cli.log_every or 10, total = #pts, say = say,
    tags = { ["slurm.job"] = ("%s_%d"):format(array_job, index), ["slurm.job_id"] = os.getenv("SLURM_JOB_ID"),
             ["slurm.restart"] = restarts, ["slurm.log"] = log, ["slurm.node"] = os.getenv("SLURMD_NODENAME") },
    interrupt_message = function()
      return ("interrupted by %s"):format(({ [SIGUSR2] = "SIGUSR2 (Slurm's warning before the time limit)",
        [SIGTERM] = "SIGTERM (preempted, cancelled or at the time limit)", [SIGINT] = "SIGINT" })[last_signal()] or "a signal")
    end,
    resume_hint = "checkpointed",
  })
  if db then db:close() end
  -- the other ranks end with the point, successfully: srun --kill-on-bad-exit must not stop rank 0 while it
  -- records the point or requeues the task
  if not root then os.exit(0, true) end
  if entry.status == "done" or entry.status == "skipped" then os.exit(0, true) end
  if entry.status == "failed" then
    io.stderr:write(("lacos: point %d failed; its error is in %s (lacos sweep status %s)\n"):format(index, shard_path(dir, id), name))
    os.exit(1, true)
  end
  -- interrupted
  local sig = last_signal()
  local job_id = os.getenv("SLURM_JOB_ID")
  if (sig == SIGUSR2 or sig == SIGTERM) and job_id then
    if util.exists(("%s/cancelled-%s"):format(dir, array_job)) then
      io.stderr:write("lacos: the sweep was cancelled (lacos sweep cancel): not requeued; run the sweep again to resume\n")
      os.exit(130, true)
    end
    local max = cli.max_requeues or 3
    if restarts >= max then
      io.stderr:write(("lacos: not requeued: this task was requeued %d times already (--max-requeues %d); " ..
                       "submit the sweep again to resume it from its checkpoint\n"):format(restarts, max))
      os.exit(130, true)
    end
    -- the task itself: in an array, SLURM_JOB_ID of the last task is the array's own id, which would requeue every task
    local target = os.getenv("SLURM_ARRAY_JOB_ID") and os.getenv("SLURM_ARRAY_TASK_ID")
                   and (os.getenv("SLURM_ARRAY_JOB_ID") .. "_" .. os.getenv("SLURM_ARRAY_TASK_ID")) or job_id
    -- everything is saved; the SIGTERM Slurm sends with the requeue is no second interrupt
    pcall(function() require("ffi").C.lacos_cli_signals_ignore() end)
    local ok, status, _, err = pcall(util.capture, { "scontrol", "requeue", target })
    -- Slurm takes the job down as it requeues it, scontrol (a process of the job) included: killed is success
    if ok and (status == 0 or status == 128 + SIGTERM or status == 128 + 9) then
      io.stderr:write(("lacos: requeued (restart %d of at most %d); the task resumes from its checkpoint\n"):format(restarts + 1, max))
      os.exit(0, true)
    end
    io.stderr:write(("lacos: could not requeue (scontrol requeue %s: %s); submit the sweep again to resume the point\n")
                    :format(target, ok and ((err or ""):gsub("%s+$", "") .. " exit " .. tostring(status)) or tostring(status)))
  end
  os.exit(130, true)
end

-- The --slurm and --slurm-task entry (from sweep:execute).
function M.execute(sweep, opts, cli)
  if cli.slurm_task then
    if cli.slurm then args.usage_error(script_name(cli), "--slurm-task is what a submitted task runs; it does not go with --slurm") end
    return task(sweep, opts, cli)
  end
  return submit(sweep, opts, cli)
end

-- ---------------------------------------------------------------- status and cancel

-- Every point of the sweep's latest submission (and points of earlier
-- ones) with its state: pending, running, requeued, done, failed,
-- interrupted, dead (its task is gone but its run was left running),
-- cancelled, or not started. Merges the finished shards into the database
-- once Slurm holds none of the sweep's jobs. Returns { name, dir, db,
-- submissions, points = { index, id, label, state, job, restarts, log,
-- loss, step, error, run }, counts, merged }.
function M.status(name, db_arg, opts)
  opts = opts or {}
  local db_path = M.db_path(db_arg)
  local dir = M.dir(name, db_path)
  local state = M.jobs(dir)
  if #state.submissions == 0 then
    error(("sweep %s: never submitted to Slurm from here (no %s/jobs.json); submit it with lacos run SCRIPT --slurm%s")
          :format(name, dir, db_arg and " --db FILE" or ""), 0)
  end
  need("squeue")
  local q, active = active_jobs(dir)
  local points, order = {}, {}
  for si, s in ipairs(state.submissions) do
    for _, p in ipairs(s.points) do
      if not points[p.id] then order[#order + 1] = p.id end
      points[p.id] = { index = p.index, id = p.id, label = p.label, job = ("%d_%d"):format(s.array_job, p.index),
                       submission = si, cancelled = util.exists(("%s/cancelled-%d"):format(dir, s.array_job)) }
    end
  end
  local merged
  if active == 0 and opts.merge ~= false then
    merged = merge_all(name, dir, db_path, true)
  end
  local counts = {}
  for _, id in ipairs(order) do
    local pt = points[id]
    local runs, why = shard_runs(dir, id)
    local last = runs and runs[#runs]
    local interrupted_before = false
    for _, r in ipairs(runs or {}) do if r.status == "interrupted" then interrupted_before = true end end
    local inq = q[pt.job]
    if inq and inq.state == "RUNNING" then pt.state = "running"
    elseif inq and (inq.state == "PENDING" or inq.state == "REQUEUED" or inq.state == "REQUEUE_HOLD") then
      pt.state = interrupted_before and "requeued" or "pending"
    elseif inq then pt.state = inq.state:lower()
    elseif not runs then pt.state = "unreadable"; pt.error = why
    elseif not last then pt.state = pt.cancelled and "cancelled" or "not started"
    elseif last.status == "running" then pt.state = "dead"
    else pt.state = last.status end
    if last then
      pt.loss = last.loss ~= json.null and last.loss or nil
      if last.loss_finite == 0 then pt.loss = 0 / 0 end
      pt.step = last.step ~= json.null and last.step or nil
      local tags = type(last.tags) == "table" and last.tags or {}
      pt.log = tags["slurm.log"]
      pt.restarts = tonumber(tags["slurm.restart"])
      if last.status == "failed" or last.status == "interrupted" then
        pt.error = last.error ~= json.null and last.error or last.exit_reason
      end
      pt.uuid = last.uuid
    end
    pt.runs = runs and #runs or 0
    if not pt.log then
      local s = state.submissions[pt.submission]
      pt.log = ("%s/logs/%s_%d_%d.out"):format(dir, M.job_name(name), s.array_job, pt.index)
    end
    counts[pt.state] = (counts[pt.state] or 0) + 1
  end
  local list = {}
  for _, id in ipairs(order) do list[#list + 1] = points[id] end
  table.sort(list, function(a, b) return a.index < b.index end)
  local latest = state.submissions[#state.submissions]
  local merge_state = latest.merge_job and q[tostring(latest.merge_job)]
  return { name = name, dir = dir, db = db_path, submissions = state.submissions, points = list, counts = counts,
           active = active, merged = merged, merge_job = latest.merge_job,
           merge_state = merge_state and merge_state.state:lower() or "ended" }
end

-- Cancels the sweep's jobs still queued or running (its merge job still
-- folds what finished). Returns the cancelled job ids.
function M.cancel(name, db_arg)
  local db_path = M.db_path(db_arg)
  local dir = M.dir(name, db_path)
  local state = M.jobs(dir)
  if #state.submissions == 0 then
    error(("sweep %s: never submitted to Slurm from here (no %s/jobs.json)"):format(name, dir), 0)
  end
  need("scancel")
  local q = active_jobs(dir)
  local arrays = {}
  for _, s in ipairs(state.submissions) do
    local live = false
    for id in pairs(q) do if id:match("^" .. s.array_job .. "_") or id == tostring(s.array_job) then live = true end end
    if live then
      -- tasks read this before they requeue themselves on the SIGTERM that follows
      write_file(("%s/cancelled-%d"):format(dir, s.array_job), os.date("!%Y-%m-%dT%H:%M:%SZ") .. "\n")
      arrays[#arrays + 1] = tostring(s.array_job)
    end
  end
  if #arrays > 0 then
    local argv = { "scancel" }
    for _, a in ipairs(arrays) do argv[#argv + 1] = a end
    slurm(argv, "cancelling the sweep")
  end
  return arrays, dir
end

return M
