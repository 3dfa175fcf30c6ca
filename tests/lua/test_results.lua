-- test_results.lua: lacos.results (the Lua API) and `lacos results` (the
-- command): logging round trips, canonical configs, typed params,
-- non-finite metrics, get-or-create, several writer processes at once, and
-- list/show/compare/sql in table, CSV and JSON form.
local H = require "harness"
local R = require "lacos.results"
local json = require "lacos.json"

local dir = H.tmp .. "/results-lua"
os.execute("mkdir -p '" .. dir .. "'")

local function fresh(name)
  local p = dir .. "/" .. name
  for _, s in ipairs { "", "-wal", "-shm" } do os.remove(p .. s) end
  return p
end

local function q1(db, sql, ...)
  local rows = db:query(sql, ...)
  return rows[1]
end

H.test("canonical configs: key order and number spelling do not matter", function()
  local a, ha = R.canonical { seed = 1, lr = 1e-4, model = { r = 8, alpha = 16.0, name = "bloom-560m" }, tags = { "x", "y" } }
  local b, hb = R.canonical '{"tags":["x","y"],"model":{"name":"bloom-560m","alpha":16,"r":8.0},"lr":0.0001,"seed":1}'
  H.eq(a, '{"lr":0.0001,"model":{"alpha":16,"name":"bloom-560m","r":8},"seed":1,"tags":["x","y"]}')
  H.eq(b, a)
  H.eq(hb, ha)
  H.eq(#ha, 64)
  H.eq((R.canonical {}), "{}")
  H.eq((R.canonical { x = 0.1 + 0.2 }), '{"x":0.30000000000000004}')
  local c, hc = R.canonical { lr = 2e-4 }
  H.eq(c, '{"lr":0.0002}')
  H.truthy(hc ~= ha, "another config, another hash")
  H.raises("invalid JSON", R.canonical, "{oops")
  H.raises("non-finite", R.canonical, { x = 0 / 0 })
end)

H.test("a run's whole life: experiment, params, metrics, STS, timing, artifact, tags, finish", function()
  local db = R.open(fresh("life.db"))
  H.eq(db.schema_version, R.SCHEMA_VERSION)
  local script = H.write(dir .. "/sweep.lua", "-- sweep\nreturn 1\n")
  local exp = db:experiment { name = "scale", script = script, axes = { lr = { 1e-4, 2e-4 } } }
  H.truthy(exp.id > 0)
  H.eq(db:experiment { name = "scale", script = false }.id, exp.id)
  local e = q1(db, "SELECT script_text, axes_json, script_path FROM experiments WHERE id = ?", exp.id)
  H.eq(e.script_text, "-- sweep\nreturn 1\n")
  H.eq(e.axes_json, '{"lr":[0.0001,0.0002]}')
  H.match(e.script_path, "^/.*/sweep%.lua$")

  local run, started = db:start_run { experiment = exp, name = "first", config = { lr = 2e-4, model = "bloom-560m" }, seed = 42 }
  H.eq(started, true)
  H.eq(run.status, "running")
  H.match(run.uuid, "^%x+%-%x+%-4%x+%-%x+%-%x+$")
  run:params { batch = 32, fast = true, targets = { "qkv", "dense" } }
  run:param("pooling", "mean")
  for step = 1, 20 do run:log(step, { loss = 1 / step, lr = 2e-4 }) end
  run:sts { dataset = "stsb", language = "en", split = "test", n = 1379, spearman = 0.8123, pearson = 0.8, pooling = "mean",
            text_variant = "raw", aggregation = "none", model = "bloom-560m", quantisation = "int8" }
  run:sts { dataset = "stsb", language = "en", split = "validation", step = 100, n = 1500, spearman = 0.85 }
  run:timing { phase = "train_step", step = 10, avg_ns = 2.5e8, stddev_ns = 1e6, n_items = 32, n_tokens = 2048,
               peak_bytes = 1e9, optimizer_state_bytes = 6.4e6, repetitions = 5, device = "cpu" }
  local art = H.write(dir .. "/adapter.safetensors", "0123456789")
  local sha, bytes = run:artifact { path = art, kind = "adapter", step = 20 }
  H.eq(bytes, 10)
  H.eq(sha, "84d89877f0d4041efb6bf91a16f0248f2fd573e6af05c19f96bedb9f882f7882")
  run:tag("note", "baseline")
  run:finish("done")
  H.eq(run.status, "done")

  local r = db:run(run.id)
  H.eq(r.status, "done")
  H.eq(r.name, "first")
  H.eq(r.experiment, "scale")
  H.eq(r.seed, 42)
  H.eq(r.config.lr, 2e-4)
  H.eq(r.params.lr, 2e-4)
  H.eq(r.params.model, "bloom-560m")
  H.eq(r.params.batch, 32)
  H.eq(r.params.fast, "true")
  H.eq(r.params.targets, '["qkv","dense"]')
  H.eq(r.metrics.loss.rows, 20)
  H.eq(r.metrics.loss.last, 1 / 20)
  H.eq(r.metrics.loss.step, 20)
  H.eq(r.metrics.loss.max, 1)
  H.eq(#r.sts, 2)
  H.eq(r.sts[1].spearman, 0.8123)
  H.eq(r.sts[1].n_pairs, 1379)
  H.eq(r.sts[1].quantisation, "int8")
  H.eq(r.sts[2].step, 100)
  H.eq(r.timings[1].avg_ns, 2.5e8)
  H.eq(r.timings[1].optimizer_state_bytes, 6.4e6)
  H.eq(r.artifacts[1].sha256, sha)
  H.eq(r.artifacts[1].step, 20)
  H.eq(r.tags.note, "baseline")
  H.eq(r.gpu, "none")
  H.eq(r.lacos_version, require("lacos").version())
  -- the same run by uuid, by a uuid prefix and by name
  H.eq(db:run(run.uuid).id, run.id)
  H.eq(db:run(run.uuid:sub(1, 8)).id, run.id)
  H.eq(db:run("first").id, run.id)
  H.eq(db:run(999), nil)
  local summary = db:runs {}
  H.eq(#summary, 1)
  H.eq(summary[1].model, "bloom-560m")
  H.eq(summary[1].sts_spearman, 0.8123)
  H.eq(summary[1].loss, 1 / 20)
  H.raises("already finished", run.log, run, 21, { loss = 1 })
  db:close()
  H.raises("closed", db.runs, db, {})
end)

H.test("options are validated with clear errors", function()
  local db = R.open(fresh("opts.db"))
  H.raises("db:start_run: unknown option 'sed'", db.start_run, db, { sed = 1 })
  H.raises("option 'seed' must be a number", db.start_run, db, { seed = "1" })
  H.raises("seed must be a whole number", db.start_run, db, { seed = 1.5 })
  H.raises("lacos.results.open: unknown option 'readOnly'", R.open, fresh("x.db"), { readOnly = true })
  H.raises("db:runs: unknown status 'finished'", db.runs, db, { status = "finished" })
  local run = db:start_run { heartbeat = -1 }
  H.raises("run:sts: option 'dataset' is required", run.sts, run, { split = "test" })
  H.raises("run:sts: unknown option 'spearmann'", run.sts, run, { dataset = "x", split = "test", spearmann = 0.5 })
  H.raises("not ×100", run.sts, run, { dataset = "stsb", split = "test", spearman = 81.2 })
  H.raises("run:artifact: option 'kind' is required", run.artifact, run, { path = "x" })
  H.raises("write it in place first", run.artifact, run, { path = dir .. "/missing.bin", kind = "log" })
  H.raises("must be a number", run.log, run, 1, { loss = "low" })
  H.raises("run:finish: status must be done, failed or interrupted", run.finish, run, "ok")
  H.raises("heartbeat period must be at most 30 s", db.start_run, db, { heartbeat = 60 })
  run:param("lr", 1e-4)
  run:param("lr", 0.0001)
  H.raises("param 'lr' is already 0.0001 and cannot change to 0.0002", run.param, run, "lr", 2e-4)
  H.raises("config: invalid JSON", db.start_run, db, { config = "{bad" })
  run:finish("failed", "stopped by the test", "test")
  local r = db:run(run.id)
  H.eq(r.error, "stopped by the test")
  H.eq(r.exit_reason, "test")
  db:close()
end)

H.test("typed params sort numerically (1e-4 < 2e-4 < 0.0037 < 0.05)", function()
  local db = R.open(fresh("sort.db"))
  for i, lr in ipairs { 0.0037, 1e-4, 0.05, 2e-4 } do
    local run = db:start_run { config = { lr = lr, i = i }, heartbeat = -1 }
    run:finish("done")
  end
  local rows = db:query("SELECT value_num FROM params WHERE key = 'lr' ORDER BY value_num")
  H.same({ rows[1].value_num, rows[2].value_num, rows[3].value_num, rows[4].value_num }, { 1e-4, 2e-4, 0.0037, 0.05 })
  H.eq(#db:query("SELECT 1 FROM params WHERE key = 'lr' AND value_num < ?", 1e-3), 2)
  db:close()
end)

H.test("non-finite metrics are stored and read back as such", function()
  local db = R.open(fresh("nan.db"))
  local run = db:start_run { heartbeat = -1 }
  run:log(1, { loss = 0.5 })
  run:log(2, { loss = 0 / 0 })
  run:log(3, { loss = math.huge })
  run:log(4, { loss = -math.huge })
  run:finish("failed", "loss went non-finite", "nonfinite")
  local rows = db:query("SELECT step, value, is_finite FROM metrics ORDER BY step")
  H.eq(#rows, 4)
  H.eq(rows[1].is_finite, 1)
  H.eq(rows[2].is_finite, 0)
  H.eq(rows[2].value, nil)
  H.eq(rows[3].value, math.huge)
  H.eq(rows[4].value, -math.huge)
  local series = db:metrics(run.id, "loss")
  H.eq(#series, 4)
  H.truthy(series[2].value ~= series[2].value, "NaN reads back as NaN")
  H.eq(series[3].value, math.huge)
  local r = db:run(run.id)
  H.eq(r.metrics.loss.nonfinite, 3)
  H.eq(r.metrics.loss.max, 0.5)
  H.eq(db:runs {}[1].loss, -math.huge)
  db:close()
end)

H.test("get-or-create: reuse claims a point once, find_run and enqueue", function()
  local db = R.open(fresh("claim.db"))
  local exp = db:experiment { name = "sweep", script = false }
  local cfg = { lr = 1e-4, model = "tiny" }
  local a, sa = db:start_run { experiment = exp, config = cfg, seed = 1, reuse = true }
  H.eq(sa, true)
  local b, sb = db:start_run { experiment = "sweep", config = { model = "tiny", lr = 0.0001 }, seed = 1, reuse = true }
  H.eq(sb, false)
  H.eq(b.id, a.id)
  H.eq(b.status, "running")
  H.raises("not started by this handle", b.log, b, 1, { loss = 1 })
  a:finish("done")
  local c, sc = db:start_run { experiment = exp, config = cfg, seed = 1, reuse = true }
  H.eq(sc, false)
  H.eq(c.status, "done")
  H.eq(db:find_run { experiment = "sweep", config = cfg, seed = 1 }.id, a.id)
  H.eq(db:find_run { experiment = exp, config = cfg, seed = 2 }, nil)
  local id, created = db:enqueue { experiment = exp, config = cfg, seed = 2 }
  H.eq(created, true)
  local id2, created2 = db:enqueue { experiment = exp, config = cfg, seed = 2 }
  H.eq(created2, false)
  H.eq(id2, id)
  H.eq(db:runs { status = "queued" }[1].id, id)
  local d, sd = db:start_run { experiment = exp, config = cfg, seed = 2, reuse = true }
  H.eq(sd, true)
  H.eq(d.id, id)
  d:finish("done")
  H.eq(#db:runs { experiment = "sweep" }, 2)
  H.eq(#db:runs { experiment = "sweep", limit = 1 }, 1)
  H.eq(#db:runs { experiment = "nope" }, 0)
  db:close()
end)

H.test("LACOS_DB and the default results/lacos.db", function()
  local work = dir .. "/cwd"
  os.execute("rm -rf '" .. work .. "' && mkdir -p '" .. work .. "'")
  local rc, _, err = H.sh(("cd '%s' && env -u LACOS_DB '%s' -e 'local db = require(\"lacos.results\").open(); assert(db.path == \"results/lacos.db\"); db:start_run{heartbeat = -1}:finish(\"done\")'"):format(work, H.lacos))
  H.eq(rc, 0, err)
  H.truthy(H.exists(work .. "/results/lacos.db"), "results/lacos.db created under the current directory")
  rc, _, err = H.sh(("cd '%s' && LACOS_DB=other/place.db '%s' -e 'assert(require(\"lacos.results\").open().path == \"other/place.db\")'"):format(work, H.lacos))
  H.eq(rc, 0, err)
  H.truthy(H.exists(work .. "/other/place.db"), "LACOS_DB is honoured")
end)

H.test("four writer processes at once: exact row counts, nothing locked", function()
  local path = fresh("many.db")
  local runs, rows = 3, 300
  local code = [[
    local R = require "lacos.results"
    local db = R.open("%s")
    local exp = db:experiment { name = "concurrent", script = false }
    for k = 1, %d do
      local run = db:start_run { experiment = exp, config = { worker = %d, k = k }, seed = k, flush_rows = 16, heartbeat = 0.05 }
      for step = 1, %d do run:log(step, { loss = 1 / step }) end
      run:params { worker = %d }
      run:sts { dataset = "stsb", split = "test", spearman = 0.5 + k / 100 }
      run:finish("done")
    end
    local shared, started = db:start_run { experiment = exp, config = { shared = true }, seed = 0, reuse = true }
    if started then for step = 1, 10 do shared:log(step, { loss = step }) end shared:finish("done") end
    io.write(started and "claimed" or "skipped")
  ]]
  local cmd = {}
  for w = 1, 4 do
    local chunk = code:format(path, runs, w, rows, w):gsub("\n%s*", " ")
    cmd[#cmd + 1] = ("( '%s' -e '%s' > '%s/w%d.out' 2> '%s/w%d.err'; echo $? > '%s/w%d.rc' ) &"):format(
      H.lacos, chunk, dir, w, dir, w, dir, w)
  end
  cmd[#cmd + 1] = "wait"
  local t0 = os.time()
  H.sh(table.concat(cmd, "\n"))
  local claimed = 0
  for w = 1, 4 do
    local err = H.read(("%s/w%d.err"):format(dir, w)) or ""
    H.eq(tonumber((H.read(("%s/w%d.rc"):format(dir, w)) or ""):match("%d+")), 0, "worker " .. w .. " exit status (" .. err .. ")")
    H.truthy(not err:find("locked"), "worker " .. w .. " saw a lock: " .. err)
    if H.read(("%s/w%d.out"):format(dir, w)) == "claimed" then claimed = claimed + 1 end
  end
  H.eq(claimed, 1, "exactly one worker claims the shared point")
  local db = R.open(path, { readonly = true })
  H.eq(q1(db, "SELECT count(*) AS n FROM experiments").n, 1)
  H.eq(q1(db, "SELECT count(*) AS n FROM runs WHERE status = 'done'").n, 4 * runs + 1)
  H.eq(q1(db, "SELECT count(*) AS n FROM metrics").n, 4 * runs * rows + 10)
  H.eq(q1(db, "SELECT count(*) AS n FROM params WHERE key = 'worker'").n, 4 * runs)
  H.eq(q1(db, "SELECT count(*) AS n FROM sts_results").n, 4 * runs)
  H.eq(q1(db, "SELECT count(DISTINCT run_id) AS n FROM metrics").n, 4 * runs + 1)
  db:close()
  H.truthy(os.time() - t0 < 30, "took too long")
end)

H.test("provenance: git commit and dirty flag from the script's repository, host and CPU", function()
  local repo = dir .. "/repo"
  os.execute("rm -rf '" .. repo .. "'")
  local rc, _, err = H.sh(("mkdir -p '%s' && cd '%s' && git init -q . && printf 'return 1\\n' > exp.lua && git add exp.lua && "
    .. "git -c user.name=t -c user.email=t@example.com commit -qm init && git rev-parse HEAD"):format(repo, repo))
  if rc ~= 0 then H.skip("git is not usable here: " .. err) end
  local head = select(2, H.sh(("git -C '%s' rev-parse HEAD"):format(repo))):match("%x+")
  local db = R.open(fresh("git.db"))
  local exp = db:experiment { name = "g", script = repo .. "/exp.lua" }
  local run = db:start_run { experiment = exp, heartbeat = -1 }
  run:finish("done")
  local r = db:run(run.id)
  H.eq(r.git_commit, head)
  H.eq(r.git_dirty, false)
  H.truthy(r.host and #r.host > 0, "host recorded")
  H.truthy(r.cpu and #r.cpu > 0, "cpu recorded")
  H.truthy(r.pid and r.pid > 0, "pid recorded")
  H.write(repo .. "/exp.lua", "return 2\n")
  run = db:start_run { experiment = exp, heartbeat = -1 }
  run:finish("done")
  H.eq(db:run(run.id).git_dirty, true)
  -- an untracked file does not make the tree dirty; a directory outside any repository gives no commit
  H.write(repo .. "/new.txt", "x")
  os.execute("git -C '" .. repo .. "' checkout -q exp.lua")
  run = db:start_run { experiment = exp, heartbeat = -1 }
  run:finish("done")
  H.eq(db:run(run.id).git_dirty, false)
  run = db:start_run { workdir = "/", heartbeat = -1 }
  run:finish("done")
  r = db:run(run.id)
  H.eq(r.git_commit, nil)
  H.eq(r.git_dirty, nil)
  db:close()
end)

H.test("a run left open ends as failed (abandoned) at exit, or interrupted by a signal", function()
  local path = fresh("exit.db")
  local rc, _, err = H.sh(("'%s' -e 'local run = require(\"lacos.results\").open(\"%s\"):start_run{ heartbeat = -1 }; "
    .. "run:log(1, { loss = 0.5 }); run:log(2, { loss = 0.25 }); os.exit(0)'"):format(H.lacos, path))
  H.eq(rc, 0, err)
  local db = R.open(path, { readonly = true })
  local r = db:run(1)
  H.eq(r.status, "failed")
  H.eq(r.exit_reason, "abandoned")
  H.match(r.error, "process exited")
  H.eq(r.metrics.loss.rows, 2, "buffered metrics are flushed at exit")
  db:close()
  -- SIGINT while logging (waiting up to 30 s for the run to start: valgrind takes seconds): the run ends as
  -- interrupted and the command exits 130.
  path = fresh("sigint.db")
  rc, _, err = H.sh(("'%s' -e 'local run = require(\"lacos.results\").open(\"%s\"):start_run{ heartbeat = -1 }; "
    .. "io.stdout:write(\"started\\n\"); io.stdout:flush(); local i = 0; while true do i = i + 1; run:log(i, { loss = 1 / i }) end' > '%s/sig.out' & "
    .. "pid=$!; for k in $(seq 1 300); do grep -q started '%s/sig.out' 2>/dev/null && break; sleep 0.1; done; sleep 0.2; "
    .. "kill -INT $pid; wait $pid"):format(H.lacos, path, dir, dir))
  H.eq(rc, 130, err)
  db = R.open(path, { readonly = true })
  r = db:run(1)
  H.eq(r.status, "interrupted")
  H.eq(r.exit_reason, "signal")
  H.truthy(r.metrics.loss and r.metrics.loss.rows > 0, "metrics logged before the signal are kept")
  db:close()
end)

-- ---------------------------------------------------------------- the command

local cli_db = fresh("cli.db")
do
  local db = R.open(cli_db)
  local exp = db:experiment { name = "cmp", script = false }
  for i, lr in ipairs { 1e-4, 2e-4 } do
    local run = db:start_run { experiment = exp, name = "lr" .. i, config = { lr = lr, model = "tiny-s", batch = 16 }, seed = 7, heartbeat = -1 }
    for step = 1, 5 do run:log(step, { loss = 1 / (step * i) }) end
    run:log(6, { grad_norm = i == 2 and 0 / 0 or 1.5 })
    run:sts { dataset = "stsb", language = "en", split = "test", n = 100, spearman = 0.7 + i / 100, pearson = 0.6 }
    run:tag("note", "run, with \"quotes\"")
    run:finish("done")
  end
  local f = db:start_run { experiment = exp, name = "broken", config = { lr = 1 }, heartbeat = -1 }
  f:finish("failed", "diverged", "nonfinite")
  db:close()
end

local function lacos_results(args)
  return H.sh(("'%s' results --db '%s' %s"):format(H.lacos, cli_db, args))
end

local function parse_csv(text)
  local rows = {}
  for line in text:gmatch("[^\n]+") do
    local fields, pos = {}, 1
    while pos <= #line + 1 do
      if line:sub(pos, pos) == '"' then
        local s, e = pos + 1, pos + 1
        local buf = {}
        while true do
          local q = line:find('"', e, true)
          buf[#buf + 1] = line:sub(e, q - 1)
          if line:sub(q + 1, q + 1) == '"' then buf[#buf + 1] = '"'; e = q + 2 else pos = q + 2; break end
        end
        fields[#fields + 1] = table.concat(buf)
        local _ = s
      else
        local c = line:find(",", pos, true) or (#line + 1)
        fields[#fields + 1] = line:sub(pos, c - 1)
        pos = c + 1
      end
    end
    rows[#rows + 1] = fields
  end
  return rows
end

H.test("lacos results list: table, CSV, JSON, filters", function()
  local rc, out, err = lacos_results("")
  H.eq(rc, 0, err)
  local lines = {}
  for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
  H.match(lines[1], "^id%s+experiment%s+name%s+status")
  H.match(lines[2], "^%-%-")
  H.eq(#lines, 7)
  H.match(lines[6], "^score: cosine Spearman x100")   -- the headline score says what it is
  H.match(lines[3], "^%s*3%s+cmp%s+broken%s+failed")
  H.match(lines[5], "^%s*1%s+cmp%s+lr1%s+done%s+7%s+tiny%-s")
  -- columns line up: every row's status starts where the header's does
  local col = lines[1]:find("status")
  for i = 3, 5 do H.truthy(lines[i]:sub(col):match("^%a"), "aligned status column in: " .. lines[i]) end
  rc, out = lacos_results("list --json")
  H.eq(rc, 0)
  local rows = json.decode(out, "list --json")
  H.eq(#rows, 3)
  H.eq(rows[1].id, 3)
  H.eq(rows[1].status, "failed")
  H.eq(rows[3].sts_spearman, 0.71)
  H.eq(rows[3].model, "tiny-s")
  rc, out = lacos_results("--csv --status done")
  H.eq(rc, 0)
  local csv = parse_csv(out)
  H.eq(#csv, 3)
  H.eq(csv[1][1], "id")
  H.eq(csv[2][1], "2")
  rc, out = lacos_results("--limit 1 --json")
  H.eq(#json.decode(out), 1)
  rc, out = lacos_results("--experiment nope")
  H.eq(rc, 0)
  H.match(out, "no runs in .* matching the filters")
end)

H.test("lacos results show: text, JSON and CSV", function()
  local rc, out, err = lacos_results("show 2")
  H.eq(rc, 0, err)
  H.match(out, "^run 2  %x+%-")
  H.match(out, "\n  status%s+done\n")
  H.match(out, "\nparams\n")
  H.match(out, "\n%s*lr%s+0%.0002\n")
  H.match(out, "grad_norm%s+6%s+NaN")
  H.match(out, "\nsts ")
  rc, out = lacos_results("show lr1 --json")
  H.eq(rc, 0)
  local r = json.decode(out, "show --json")
  H.eq(r.id, 1)
  H.eq(r.params.lr, 1e-4)
  H.eq(r.config.model, "tiny-s")
  H.eq(r.metrics.loss.last, 0.2)
  H.eq(r.metrics.loss.rows, 5)
  H.eq(r.sts[1].spearman, 0.71)
  H.eq(r.tags.note, 'run, with "quotes"')
  rc, out = lacos_results("show 2 --json")
  H.eq(json.decode(out).metrics.grad_norm.last, "NaN")
  rc, out = lacos_results("show 1 --csv")
  H.eq(rc, 0)
  local csv = parse_csv(out)
  H.same(csv[1], { "section", "key", "value" })
  local seen = {}
  for _, row in ipairs(csv) do seen[row[1] .. ":" .. row[2]] = row[3] end
  H.eq(seen["param:lr"], "0.0001")
  H.eq(seen["metric:loss"], "0.2")
  H.eq(seen["tag:note"], 'run, with "quotes"')
  H.eq(seen["sts_spearman:stsb/en/test@-1"], "0.71")
end)

H.test("lacos results compare: params that differ, final metrics, STS", function()
  local rc, out, err = lacos_results("compare 1 2")
  H.eq(rc, 0, err)
  H.match(out, "param%s+lr%s+0%.0001%s+0%.0002")
  H.truthy(not out:find("param%s+model"), "equal params hidden")
  H.match(out, "2 params equal in all runs not shown")
  H.match(out, "metric%s+loss%s+0%.2%s+0%.1\n")
  H.match(out, "sts_spearman_x100%s+stsb/en/test%s+71%.00%s+72%.00")   -- x100 on screen, as stored in CSV and JSON
  rc, out = lacos_results("compare 1 2 --all --json")
  H.eq(rc, 0)
  local c = json.decode(out, "compare --json")
  H.eq(#c.runs, 2)
  H.eq(c.runs[2].id, 2)
  local byk = {}
  for _, row in ipairs(c.rows) do byk[row.section .. ":" .. row.key] = row.values end
  H.same(byk["param:lr"], { 1e-4, 2e-4 })
  H.same(byk["param:model"], { "tiny-s", "tiny-s" })
  H.same(byk["metric:grad_norm"], { 1.5, "NaN" })
  H.same(byk["sts_spearman:stsb/en/test"], { 0.71, 0.72 })
  rc, out = lacos_results("compare 1 2 --csv")
  local csv = parse_csv(out)
  H.same(csv[1], { "section", "key", "run 1", "run 2" })
end)

H.test("lacos results sql: read-only queries with parameters", function()
  local rc, out, err = lacos_results([[sql "SELECT run_id, spearman FROM sts_results WHERE spearman > ? ORDER BY run_id" 0.715 --json]])
  H.eq(rc, 0, err)
  local rows = json.decode(out)
  H.eq(#rows, 1)
  H.eq(rows[1].run_id, 2)
  rc, out = lacos_results([[sql "SELECT key, value_num, value_text FROM params WHERE run_id = 1 ORDER BY key" --csv]])
  H.eq(rc, 0)
  local csv = parse_csv(out)
  H.same(csv[1], { "key", "value_num", "value_text" })
  H.same(csv[2], { "batch", "16", "" })
  H.same(csv[4], { "model", "", "tiny-s" })
  rc, out, err = lacos_results([[sql "DELETE FROM runs"]])
  H.eq(rc, 1)
  H.eq(out, "")
  H.match(err, "cli%.db: query refused: it would change the database")
  rc, out, err = lacos_results([[sql "SELECT nope FROM runs"]])
  H.eq(rc, 1)
  H.match(err, "cli%.db: bad query: no such column: nope")
  local db = R.open(cli_db, { readonly = true })
  H.eq(#db:query("SELECT * FROM runs"), 3)
  db:close()
end)

H.test("a uuid prefix made of digits still finds its run (ids are tried first)", function()
  local path = fresh("digits.db")
  local db = R.open(path)
  local run = db:start_run { experiment = "x", name = "d" }
  run:finish("done")
  db:close()
  H.eq(os.execute(("sqlite3 '%s' \"UPDATE runs SET uuid = '12345678-0000-4000-8000-000000000000'\""):format(path)), 0)
  db = R.open(path)
  H.eq(db:resolve("12345678"), run.id, "digit prefix")
  H.eq(db:resolve(tostring(run.id)), run.id, "the id itself")
  H.eq(db:resolve("99999"), nil, "neither an id nor a prefix")
  db:close()
end)

-- Exit through lua_close so that finalizers free every handle (a run left
-- open must end as "abandoned", and the sanitizer build checks for leaks).
local exit = os.exit
os.exit = function(code) exit(code, true) end
H.done()
