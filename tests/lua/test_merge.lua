-- test_merge: folding database shards into the results database
-- (engine/results_merge.c, lacos.merge, lacos results merge): every table of
-- every finished run, keyed by uuid (merging twice changes nothing), runs
-- still running left for later; and the faults a cluster brings, each
-- reported and skipped while the other shards merge: a shard whose writer
-- was killed in the middle of a transaction (a hot journal), a truncated
-- copy, a file that is not a database, another schema version, another
-- sweep's shard. The database never holds half a shard.
local H = require "harness"
local lacos = require "lacos"
local util = require "lacos.util"
local R = lacos.results
local M = require "lacos.merge"

local dir = H.tmp .. "/merge"
os.execute(("rm -rf %q && mkdir -p %q/shards"):format(dir, dir))
local shards = dir .. "/shards"

local function q(s) return "'" .. tostring(s):gsub("'", [['\'']]) .. "'" end
local count = H.count

local TABLES = { "runs", "params", "metrics", "sts_results", "timings", "artifacts", "tags", "experiments", "scripts" }
local function counts(db_path)
  local t = {}
  for _, name in ipairs(TABLES) do t[name] = count(db_path, "SELECT count(*) AS n FROM " .. name) end
  return t
end

-- A shard as a task writes one: experiment `exp`, `n` finished runs with a
-- row in every table, the second resumed from the first (parent), and
-- optionally one run left running (its handle is returned, still open).
local artifact_file = H.write(dir .. "/artifact.txt", "an artifact\n")
local function make_shard(path, exp, n, seed0, leave_running)
  local db = R.open(path, { journal = "rollback" })
  local e = db:experiment { name = exp, script = false, axes = { point = { 1, 2 } } }
  local first
  for i = 1, n do
    local run = db:start_run { experiment = e, config = { point = seed0 + i }, seed = seed0 + i, reuse = true,
                               parent = (i == 2 and first) or nil }
    first = first or run.id
    run:params { model = "tiny-xs", lr = 5e-3 }
    for step = 1, 5 do run:log(step, { loss = 1 / step + i, lr = 1e-3 }) end
    run:log(6, { loss = 0 / 0 })
    run:sts { dataset = "STSBenchmark", language = "en", split = "test", n = 16, spearman = 0.1 * i, pearson = 0.2 }
    run:sts { dataset = "SICK-R", language = "en", split = "test", n = 16, spearman = 0.3, pearson = 0.4 }
    run:timing { phase = "sts:SICK-R", avg_ns = 1e9, n_items = 16 }
    run:artifact { path = artifact_file, kind = "adapter" }
    run:tags { ["slurm.log"] = "logs/x_" .. i .. ".out", ["slurm.restart"] = 0 }
    run:finish(i == n and n > 2 and "failed" or "done", i == n and n > 2 and "broke" or nil)
  end
  local running
  if leave_running then
    running = db:start_run { experiment = e, config = { point = 99 }, seed = 99, reuse = true }
    running:log(1, { loss = 5 })
    running:flush()
  end
  db:close()
  return running
end

local main = dir .. "/main.db"

H.test("a shard's finished runs are merged with every table; a second merge changes nothing", function()
  local running = make_shard(shards .. "/a.db", "m", 3, 0, true)
  make_shard(shards .. "/b.db", "m", 2, 10)
  local rep = M.merge({ shards }, { db = main, experiment = "m", quiet = true })
  H.eq(#rep.refused, 0, "refused: " .. (rep.refused[1] and rep.refused[1].reason or ""))
  H.eq(rep.shards, 2); H.eq(rep.merged, 5); H.eq(rep.present, 0); H.eq(rep.unfinished, 1)
  local c = counts(main)
  H.eq(c.runs, 5); H.eq(c.experiments, 1)
  H.eq(c.params, 5 * (2 + 1), "params: the two logged and the config's point")
  H.eq(c.metrics, 5 * 11, "5 steps x (loss, lr) + a NaN loss")
  H.eq(c.sts_results, 10); H.eq(c.timings, 5); H.eq(c.artifacts, 5); H.eq(c.tags, 10)
  -- the rows are the shard's: uuids, statuses, values, NaN kept as NaN, the parent link by uuid
  local sh = R.open(shards .. "/a.db", { readonly = true })
  local db = R.open(main, { readonly = true })
  for _, r in ipairs(sh:query("SELECT * FROM runs WHERE status <> 'running' ORDER BY id")) do
    local m = db:query("SELECT * FROM runs WHERE uuid = ?", r.uuid)[1]
    H.truthy(m, "run " .. r.uuid .. " merged")
    for _, col in ipairs { "status", "config_sha256", "seed", "created_at", "ended_at", "host", "error", "name" } do
      H.eq(m[col], r[col], col)
    end
    local a, b = sh:run(r.id), db:run(m.id)
    H.eq(b.metrics.loss.rows, a.metrics.loss.rows); H.eq(b.metrics.loss.nonfinite, 1)
    H.eq(b.metrics.loss.min, a.metrics.loss.min)
    H.eq(#b.sts, #a.sts); H.eq(b.sts[1].spearman, a.sts[1].spearman)
    H.eq(b.params.model, "tiny-xs"); H.eq(b.params.lr, 5e-3)
    H.eq(b.tags["slurm.log"], a.tags["slurm.log"])
    H.eq(b.artifacts[1].sha256, a.artifacts[1].sha256)
    if r.parent_run_id then
      local parent_uuid = sh:query("SELECT uuid FROM runs WHERE id = ?", r.parent_run_id)[1].uuid
      H.eq(db:query("SELECT uuid FROM runs WHERE id = ?", m.parent_run_id)[1].uuid, parent_uuid, "parent, by uuid")
    end
  end
  H.eq(db:query("SELECT count(*) AS n FROM runs WHERE status = 'failed' AND error = 'broke'")[1].n, 1)
  sh:close(); db:close()
  -- merged twice: nothing new
  rep = M.merge({ shards }, { db = main, experiment = "m", quiet = true })
  H.eq(rep.merged, 0); H.eq(rep.present, 5); H.eq(rep.unfinished, 1)
  H.same(counts(main), c, 0, "table counts after a second merge")
  -- the running run finishes: the next merge takes it, and only it
  running:finish("done")
  rep = M.merge({ shards }, { db = main, quiet = true })
  H.eq(rep.merged, 1); H.eq(rep.present, 5); H.eq(rep.unfinished, 0)
  H.eq(count(main, "SELECT count(*) AS n FROM runs"), 6)
  -- the merged database is what lacos reads as usual
  H.eq(#R.open(main, { readonly = true }):runs { experiment = "m" }, 6)
end)

-- Kills `sqlite3` in the middle of a big write transaction on path: the
-- file is left with a hot journal beside it and pages of the cut
-- transaction written into it.
local function kill_mid_write(path)
  local marker, pidfile = dir .. "/mid-write", dir .. "/mid-write.pid"
  os.remove(marker)
  local script = H.write(dir .. "/mid-write.sql", table.concat({
    "PRAGMA cache_size = 2;",
    "BEGIN;",
    "UPDATE runs SET status = 'done', error = 'half-written';",
    "CREATE TABLE junk (x);",
    "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 2000) INSERT INTO junk SELECT randomblob(2000) FROM c;",
    (".system echo $$ > %s && touch %s && exec sleep 600"):format(q(pidfile), q(marker)),
  }, "\n") .. "\n")
  os.execute(("sqlite3 %s < %s > /dev/null 2>&1 & echo $! > %s.sqlite"):format(q(path), q(script), q(pidfile)))
  local t0 = util.clock()
  while not H.exists(marker) do
    assert(util.clock() - t0 < 60, "sqlite3 did not reach the middle of its transaction")
    util.sleep(0.05)
  end
  util.sleep(0.1)
  local sqlite_pid = tonumber(H.read(pidfile .. ".sqlite"):match("%d+"))
  local sleep_pid = tonumber((H.read(pidfile) or ""):match("%d+"))
  os.execute(("kill -KILL %d"):format(sqlite_pid))
  if sleep_pid then os.execute(("kill -KILL %d 2>/dev/null"):format(sleep_pid)) end
  util.sleep(0.1)
end

H.test("faults: a shard killed mid-write, a truncated copy, not a database, another schema version, another sweep's " ..
       "shard: each reported and skipped, the others merged, the database never half-merged", function()
  if H.sh("command -v sqlite3 >/dev/null") ~= 0 then H.skip("the sqlite3 shell is not installed") end
  local faults = dir .. "/faults"
  util.mkdir_p(faults)
  make_shard(faults .. "/good.db", "m", 2, 20)
  -- killed in the middle of a transaction
  make_shard(faults .. "/killed.db", "m", 2, 30)
  kill_mid_write(faults .. "/killed.db")
  H.truthy(H.exists(faults .. "/killed.db-journal"), "a hot journal beside the killed shard")
  -- a truncated copy (a copy cut short, a disk that filled up)
  make_shard(dir .. "/whole.db", "m", 2, 40)
  local whole = H.read(dir .. "/whole.db")
  H.write(faults .. "/truncated.db", whole:sub(1, math.floor(#whole / 2)))
  -- not a database at all
  H.write(faults .. "/notes.db", "these are not the runs you are looking for\n")
  -- written by a newer lacos, and by an older one
  make_shard(faults .. "/newer.db", "m", 1, 50)
  make_shard(faults .. "/older.db", "m", 1, 60)
  H.eq(select(1, H.sh(("sqlite3 %s \"INSERT INTO schema_version VALUES (%d, 'x')\""):format(q(faults .. "/newer.db"),
       R.SCHEMA_VERSION + 1))), 0)
  H.eq(select(1, H.sh(("sqlite3 %s \"DELETE FROM schema_version WHERE version = %d\""):format(q(faults .. "/older.db"),
       R.SCHEMA_VERSION))), 0)
  -- another sweep's shard
  make_shard(faults .. "/other.db", "other-sweep", 2, 70)
  local before = counts(main)
  local rep = M.merge({ faults }, { db = main, experiment = "m", quiet = true })
  local reasons = {}
  for _, r in ipairs(rep.refused) do reasons[r.path:match("[^/]+$")] = r.reason end
  H.match(reasons["killed.db"] or "", "killed%.db: opening it: half%-written: its writer was killed in the middle of a transaction")
  H.match(reasons["truncated.db"] or "", "truncated%.db: .*damaged")
  H.match(reasons["notes.db"] or "", "notes%.db: .*damaged or not an SQLite database")
  H.match(reasons["newer.db"] or "", ("schema version %d, but this lacos writes version %d; not merged %%(it was written by a newer lacos")
                                     :format(R.SCHEMA_VERSION + 1, R.SCHEMA_VERSION))
  H.match(reasons["older.db"] or "", "written by an older lacos: open it once with this one to migrate it")
  H.match(reasons["other.db"] or "", "a shard of sweep 'other%-sweep', not of 'm'; not merged")
  H.eq(#rep.refused, 6, "refused shards")
  H.eq(rep.merged, 2, "the good shard merged")
  local after = counts(main)
  H.eq(after.runs, before.runs + 2)
  H.eq(count(main, "SELECT count(*) AS n FROM runs WHERE error = 'half-written'"), 0, "nothing of the cut transaction")
  H.eq(count(main, "SELECT count(*) AS n FROM experiments WHERE name = 'other-sweep'"), 0)
  H.eq(R.open(main, { readonly = true }):query("PRAGMA integrity_check")[1].integrity_check, "ok")
  -- the killed shard's task running again opens it, which rolls the cut transaction back; then it merges
  R.open(faults .. "/killed.db", { journal = "rollback" }):close()
  H.truthy(not H.exists(faults .. "/killed.db-journal"), "the journal was rolled back")
  local r = R.merge_shard(main, faults .. "/killed.db", "m")
  H.eq(r.merged, 2); H.eq(r.experiment, "m")
  H.eq(count(main, "SELECT count(*) AS n FROM runs WHERE error = 'half-written'"), 0)
end)

H.test("bad arguments and files for the engine's shard readers: an error naming the file and cause, never a crash", function()
  local E = require "lacos.engine"
  local ffi = require "ffi"
  local faults = dir .. "/faults"   -- the previous test's shards
  local report = ffi.new("lacos_merge_report")
  -- what the C entry points refuse before they touch a file
  H.truthy(E.C.lacos_db_merge_shard(nil, main, faults .. "/good.db", nil) ~= 0)
  H.match(E.last_error(), "report, database and shard are required")
  H.truthy(E.C.lacos_db_merge_shard(report, "", faults .. "/good.db", nil) ~= 0)
  H.truthy(E.C.lacos_db_merge_shard(report, main, nil, nil) ~= 0)
  H.truthy(E.C.lacos_db_shard_runs(nil, faults .. "/good.db") ~= 0)
  H.match(E.last_error(), "json and shard are required")
  -- files that are no shard, through both readers
  local empty = H.write(dir .. "/empty.db", "")
  util.mkdir_p(dir .. "/folder.db")
  for _, case in ipairs {
    { dir .. "/no-such.db", "no%-such%.db: cannot read the shard" },
    { empty, "empty%.db: an empty file %(its task stopped before writing anything%)" },
    { dir .. "/folder.db", "folder%.db: not a file" },
    { faults .. "/notes.db", "notes%.db: .*not an SQLite database" },
    { faults .. "/truncated.db", "truncated%.db: .*damaged" },
  } do
    local path, why = case[1], case[2]
    H.match(H.raises(nil, R.merge_shard, main, path, "m"), why, "merge " .. path)
    H.match(H.raises(nil, R.shard_runs, path), why, "read " .. path)
  end
  H.match(H.raises(nil, R.shard_runs, faults .. "/newer.db"),
          ("newer%%.db: schema version %d, but this lacos reads version %d"):format(R.SCHEMA_VERSION + 1, R.SCHEMA_VERSION))
  -- the results database itself of another schema version: nothing merged into it
  local other = dir .. "/other-version.db"
  R.open(other):close()
  H.eq(select(1, H.sh(("sqlite3 %s \"INSERT INTO schema_version VALUES (%d, 'x')\""):format(q(other), R.SCHEMA_VERSION + 1))), 0)
  H.match(H.raises(nil, R.merge_shard, other, faults .. "/good.db", "m"),
          ("other%%-version%%.db: schema version %d, not this lacos's %d"):format(R.SCHEMA_VERSION + 1, R.SCHEMA_VERSION))
  local _, n = H.sh(("sqlite3 %s 'SELECT count(*) FROM runs'"):format(q(other)))
  H.eq(n, "0\n", "runs in the database of another version")
  -- a results database that is not there is not created by a merge of the engine's
  H.match(H.raises(nil, R.merge_shard, dir .. "/nowhere/x.db", faults .. "/good.db", "m"), "cannot read the results database")
end)

H.test("lacos results merge: a line per shard, the skipped ones named, exit status 1 when one was skipped", function()
  local db2 = dir .. "/cli.db"
  local rc, out, err = H.sh(("%q results merge --db %q --experiment m %q %q"):format(H.lacos, db2, shards .. "/a.db", shards .. "/b.db"))
  H.eq(rc, 0, err)
  H.eq(out, "")
  H.match(err, "a%.db: 4 runs merged, 0 there already\n")
  H.match(err, "merged 6 runs from 2 shards into " .. db2:gsub("%p", "%%%0") .. " %(0 there already, 0 still running%)")
  rc, _, err = H.sh(("%q results merge --db %q --experiment m %q"):format(H.lacos, db2, dir .. "/faults"))
  H.eq(rc, 1, err)
  H.match(err, "skipped [^\n]*other%.db: a shard of sweep 'other%-sweep', not of 'm'; not merged")
  H.match(err, "; 5 shards skipped\n")
  -- the default: every sweep folder beside the database, each checked against its own sweep's name
  local root = dir .. "/beside"
  util.mkdir_p(root .. "/slurm/m/shards")
  util.mkdir_p(root .. "/slurm/n/shards")
  H.write(root .. "/slurm/m/jobs.json", '{"name": "m", "submissions": []}')
  H.write(root .. "/slurm/n/jobs.json", '{"name": "n", "submissions": []}')
  util.copy_file(shards .. "/b.db", root .. "/slurm/m/shards/b.db")
  util.copy_file(shards .. "/b.db", root .. "/slurm/n/shards/b.db")   -- sweep m's shard in sweep n's folder
  rc, _, err = H.sh(("%q results merge --db %q"):format(H.lacos, root .. "/lacos.db"))
  H.eq(rc, 1, err)
  H.match(err, "slurm/m/shards/b%.db: 2 runs merged")
  H.match(err, "skipped [^\n]*slurm/n/shards/b%.db: a shard of sweep 'm', not of 'n'")
  rc, _, err = H.sh(("%q results merge --db %q --status done"):format(H.lacos, root .. "/lacos.db"))
  H.eq(rc, 2, err)
end)

H.done()
