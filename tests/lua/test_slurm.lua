-- test_slurm: sweeps on a real Slurm cluster that the test starts on this
-- host (tests/lua/slurm_cluster.lua: munged, slurmctld, two slurmd nodes on
-- loopback, stopped by PID at the end):
--   * experiments/scale.lua (a tiny synthetic grid) with --slurm --wait:
--     every point done and merged, the numbers equal to a local run's;
--   * preemption: one task gets SIGUSR2 (what --signal=B:USR2@120 sends
--     before the time limit), another SIGTERM (preemption), each mid-
--     training; they checkpoint, requeue themselves and end with the
--     numbers of an uninterrupted run; a failing point is recorded failed
--     with its log, the others finish, the exit status says so;
--   * Ctrl-C ends --wait and leaves the jobs running; lacos sweep cancel:
--     the tasks stop without requeueing, the merge job folds what finished in;
--   * a hostile sweep name, folder and --sbatch-arg: quoted in the batch
--     script, nothing run by a shell.
-- The waits below poll Slurm with a generous limit: guards against a hang,
-- not measurements.
local H = require "harness"
local lacos = require "lacos"
local json = require "lacos.json"
local util = require "lacos.util"
local C = require "slurm_cluster"
local R = lacos.results
local q = C.q

local ok_progs, missing = C.available()
if not ok_progs then
  H.skip_test("Slurm sweeps", ("%s is not installed (make deps installs slurm-wlm and munge)"):format(missing))
  H.done()
end
if not H.data or not H.exists(H.data .. "/sts/stsb/sts-test.csv") then
  H.skip_test("Slurm sweeps", "the shared datasets (LACOS_TEST_DATA) are not there")
  H.done()
end

local dir = H.tmp .. "/slurm"
os.execute(("rm -rf %s && mkdir -p %s"):format(q(dir), q(dir)))
local started, cluster = pcall(C.start, dir .. "/cluster")
if not started then
  H.test("a Slurm cluster starts on this host", function() error(cluster, 0) end)
  H.done()
end

-- Every lacos below runs with one thread (two array tasks share the two
-- cores) and the cluster's configuration; the local reference runs the same.
local ENV = ("%s LACOS_THREADS=1 LACOS_DATA=%s"):format(cluster.env, q(H.data))
local function lacos_in(folder, argv)
  return H.sh(("cd %s && env -u LACOS_DB %s %s %s"):format(q(folder), ENV, q(H.lacos), argv))
end
local function mkdir(p) util.mkdir_p(p) return p end

-- The recorded numbers of each done point of an experiment: loss series and
-- final STS scores, keyed by the run's name (the sweep's name and the
-- point's label: the config itself holds absolute paths, which differ
-- between the two folders the runs are compared from).
local function numbers(db_path, experiment)
  local db = R.open(db_path, { readonly = true })
  local out = {}
  for _, r in ipairs(db:query([[SELECT r.id, r.name AS config_sha256 FROM runs r JOIN experiments e ON e.id = r.experiment_id
                                 WHERE e.name = ? AND r.status = 'done']], experiment)) do
    local losses = {}
    for m in db:each("SELECT step, value FROM metrics WHERE run_id = ? AND key = 'loss' ORDER BY step, rowid", r.id) do
      losses[#losses + 1] = { m.step, m.value }
    end
    local sts = {}
    for s in db:each("SELECT dataset, language, spearman, pearson, n_pairs FROM sts_results WHERE run_id = ? ORDER BY dataset, language", r.id) do
      sts[#sts + 1] = { s.dataset .. " " .. (s.language or ""), s.spearman, s.pearson, s.n_pairs }
    end
    out[r.config_sha256] = { losses = losses, sts = sts, id = r.id }
  end
  db:close()
  return out
end

local function same_numbers(got, want, what)
  local n = 0
  for sha, w in pairs(want) do
    local g = got[sha]
    H.truthy(g, what .. ": a done run for point " .. sha)
    H.eq(#g.losses, #w.losses, what .. ": loss rows")
    for i, l in ipairs(w.losses) do
      H.eq(g.losses[i][1], l[1], what .. ": step"); H.eq(g.losses[i][2], l[2], ("%s: loss at step %d"):format(what, l[1]))
    end
    H.eq(#g.sts, #w.sts, what .. ": STS rows")
    for i, s in ipairs(w.sts) do
      H.eq(g.sts[i][1], s[1]); H.eq(g.sts[i][2], s[2], what .. ": Spearman " .. s[1]); H.eq(g.sts[i][3], s[3])
      H.eq(g.sts[i][4], s[4])
    end
    n = n + 1
  end
  return n
end

local function status_json(folder, name)
  local rc, out, err = lacos_in(folder, "sweep status " .. q(name) .. " --json")
  H.eq(rc, 0, "lacos sweep status: " .. err)
  return json.decode(out, "sweep status --json")
end

-- Runs cmd in the background; returns a function that waits for it and
-- gives its exit status, stdout and stderr, and the process's pid (lacos
-- itself: the subshell and env exec it).
local function background(folder, argv, tag)
  local base = dir .. "/" .. tag
  os.execute(("( (cd %s && exec env -u LACOS_DB %s %s %s > %s 2> %s) & echo $! > %s; wait $!; echo $? > %s ) < /dev/null &")
             :format(q(folder), ENV, q(H.lacos), argv, q(base .. ".out"), q(base .. ".err"), q(base .. ".pid"), q(base .. ".rc")))
  H.truthy(C.await(function() return (H.read(base .. ".pid") or ""):match("%d+\n") end, 10), tag .. " started")
  return function(limit)
    H.truthy(C.await(function() return H.exists(base .. ".rc") and (H.read(base .. ".rc") or ""):match("%d") end, limit or 600),
             tag .. " ended; stderr so far: " .. (H.read(base .. ".err") or ""))
    return tonumber(H.read(base .. ".rc"):match("%d+")), H.read(base .. ".out"), H.read(base .. ".err")
  end
end

local function squeue(job)
  return cluster:run(("squeue -h -r -j %s -o '%%i %%T %%r'"):format(job))
end

-- A requeued task waits ~2 minutes (BeginTime) before it may start again:
-- once it is pending for that reason and its old process (pid, from the
-- pause marker) is gone, let it start now. (Started while slurmd still
-- cleans up the old instance, the new one could be killed with it: the
-- wait Slurm imposes is there for that.)
local function release_requeued(job, ...)
  H.truthy(C.await(function() return squeue(job):match("PENDING BeginTime") ~= nil end, 120),
           "task " .. job .. " requeued and pending: " .. squeue(job))
  for _, marker in ipairs { ... } do
    local pid = tonumber((H.read(marker) or ""):match("(%d+)%s*$"))
    H.truthy(pid, "a pid in " .. marker)
    H.truthy(C.await(function()
      local r = os.execute(("kill -0 %d 2>/dev/null"):format(pid))
      return r ~= 0 and r ~= true
    end, 60), "the old process of task " .. job .. " ended")
  end
  cluster:run(("scontrol update JobId=%s StartTime=now"):format(job))
end

-- ---------------------------------------------------------------- the README's sweep on Slurm

local SCALE = ("run %s --sizes tiny-xs --pairs 0,64 --eval-limit 16"):format(q(H.root .. "/experiments/scale.lua"))

H.test("scale.lua --slurm --wait: every point done and merged, with a local run's numbers", function()
  local here, there = mkdir(dir .. "/scale-local"), mkdir(dir .. "/scale-slurm")
  local t0 = util.clock()
  local rc, _, err = lacos_in(here, SCALE)
  local local_s = util.clock() - t0
  H.eq(rc, 0, "local run: " .. err)
  t0 = util.clock()
  local out
  rc, out, err = lacos_in(there, SCALE .. " --slurm --wait")
  local slurm_s = util.clock() - t0
  H.eq(rc, 0, "exit status; stderr: " .. err)
  H.match(err, "submitted 2 of 2 points %(0 done before%) as Slurm job array %d+; merge job %d+ runs after it")
  H.match(err, "sweep scale%-synthetic: 2 done, 0 skipped %(done before%), 0 failed, 0 interrupted, of 2 points")
  H.match(out, "experiment 'scale%-synthetic'[^\n]*, 2 done runs")
  local n = same_numbers(numbers(there .. "/results/lacos.db", "scale-synthetic"),
                         numbers(here .. "/results/lacos.db", "scale-synthetic"), "Slurm vs local")
  H.eq(n, 2, "points compared")
  -- what goes where
  local sd = there .. "/results/slurm/scale-synthetic"
  local script = H.read(sd .. "/array.sbatch")
  H.match(script, "\n#SBATCH %-%-array=1,2\n")
  H.match(script, "\n#SBATCH %-%-requeue\n")
  H.match(script, "\n#SBATCH %-%-signal=B:USR2@120\n")
  H.match(script, "\n#SBATCH %-%-mem=%d+M\n")
  H.match(script, "\n#SBATCH %-%-output=" .. (sd .. "/logs/"):gsub("%p", "%%%0") .. "%%x_%%A_%%a%.out\n")
  local st = status_json(there, "scale-synthetic")
  H.eq(#st.points, 2)
  for _, p in ipairs(st.points) do
    H.eq(p.state, "done", "point " .. p.index)
    H.truthy(H.exists(p.log), "log " .. tostring(p.log))
    H.match(H.read(p.log), "done in [%d.]+ s — STSBenchmark")
    H.truthy(H.exists(("%s/shards/%s.db"):format(sd, p.id)), "shard of point " .. p.index)
  end
  H.match(H.read(st.points[2].log), "lacos: step 8/8 loss [%d.]+ lr ")   -- plain progress lines in a batch log
  H.eq(st.merge_state, "ended")
  -- again: nothing left to submit
  rc, _, err = lacos_in(there, SCALE .. " --slurm")
  H.eq(rc, 0, err)
  H.match(err, "every one of its 2 points is done; nothing to submit")
  print(("#   2-point tiny sweep: local %.1f s, on the test cluster (submit, 2 tasks, merge) %.1f s"):format(local_s, slurm_s))
end)

-- ---------------------------------------------------------------- preemption, a failing point

local SWEEP = q(H.root .. "/tests/lua/slurm_sweep.lua") .. " --data " .. q(H.data)

H.test("preemption: SIGUSR2 and SIGTERM mid-training requeue the tasks, which resume with identical numbers; " ..
       "a failing point is recorded failed with its log; the exit status says so", function()
  local here, there = mkdir(dir .. "/pre-local"), mkdir(dir .. "/pre-slurm")
  local pause = mkdir(dir .. "/pause")
  local args = ("run %s --name preempt --kinds pause,fail,pause --pause-dir %s --log-every 1"):format(SWEEP, q(pause))
  local rc, _, err = lacos_in(here, args)
  H.eq(rc, 1, "the local run has a failing point: " .. err)
  local t0 = util.clock()
  local wait = background(there, args .. " --slurm --wait --max-requeues 2", "preempt")
  H.truthy(C.await(function() return H.exists(pause .. "/paused-1.0") and H.exists(pause .. "/paused-3.0") end, 300),
           "both training points paused after step 3; " .. (H.read(dir .. "/preempt.err") or ""))
  local job1 = H.read(pause .. "/paused-1.0"):match("^%S+ (%d+) (%d+)")
  local array = job1
  cluster:run(("scancel --signal=USR2 --batch %s_1"):format(array))
  cluster:run(("scancel --signal=TERM --batch %s_3"):format(array))
  -- while it waits to start again, lacos sweep status calls it requeued, with the loss it had reached
  H.truthy(C.await(function() return squeue(array .. "_1"):match("PENDING BeginTime") ~= nil end, 120), "task 1 requeued")
  local mid = status_json(there, "preempt")
  H.eq(mid.points[1].state, "requeued"); H.eq(mid.points[1].step, 3); H.truthy(type(mid.points[1].loss) == "number")
  H.truthy(mid.merged == nil, "no merge while Slurm holds the sweep's jobs")
  release_requeued(array .. "_1", pause .. "/paused-1.0")
  release_requeued(array .. "_3", pause .. "/paused-3.0")
  local out
  rc, out, err = wait(600)
  local took = util.clock() - t0
  -- on a failure, what each task wrote says why
  local function logs()
    local text = {}
    for _, f in ipairs(util.listdir(there .. "/results/slurm/preempt/logs") or {}) do
      text[#text + 1] = "== " .. f .. "\n" .. (H.read(there .. "/results/slurm/preempt/logs/" .. f) or "")
    end
    return table.concat(text, "\n") .. "\n== slurmctld\n" .. (H.read(dir .. "/cluster/log/slurmctld.log") or ""):sub(-6000)
  end
  H.eq(rc, 1, "exit status (a point failed); stderr: " .. err .. logs())
  H.match(err, "sweep preempt: 2 done, 0 skipped %(done before%), 1 failed, 0 interrupted, of 3 points", logs())
  H.eq(out, "")
  -- identical numbers to the uninterrupted local run
  local main = there .. "/results/lacos.db"
  H.eq(same_numbers(numbers(main, "preempt"), numbers(here .. "/results/lacos.db", "preempt"), "resumed vs uninterrupted"), 2)
  local db = R.open(main, { readonly = true })
  local runs = db:query([[SELECT r.status, r.error, r.exit_reason, (SELECT value FROM tags t WHERE t.run_id = r.id AND t.key = 'slurm.log') AS log,
                                 (SELECT value FROM tags t WHERE t.run_id = r.id AND t.key = 'slurm.restart') AS restart, r.config_json
                            FROM runs r ORDER BY r.id]])
  db:close()
  local by = {}
  for _, r in ipairs(runs) do
    local p = json.decode(r.config_json).point
    by[p] = by[p] or {}
    table.insert(by[p], r)
  end
  for _, p in ipairs { "1-pause", "3-pause" } do
    H.eq(#by[p], 2, p .. ": the interrupted run and the resumed one")
    H.eq(by[p][1].status, "interrupted"); H.eq(by[p][2].status, "done")
    H.eq(by[p][1].restart, "0"); H.eq(by[p][2].restart, "1")
    local log = H.read(by[p][2].log)
    H.match(log, "requeued %(restart 1 of at most 2%)")
    H.match(log, "lacos: resumed from step 3")
  end
  H.match(by["1-pause"][1].error, "SIGUSR2")
  H.match(by["3-pause"][1].error, "SIGTERM")
  H.eq(#by["2-fail"], 1); H.eq(by["2-fail"][1].status, "failed")
  H.match(by["2-fail"][1].error, "point 2 broke on purpose")
  H.match(H.read(by["2-fail"][1].log), "point 2 broke on purpose")
  local st = status_json(there, "preempt")
  local states = {}
  for _, p in ipairs(st.points) do states[p.index] = p end
  H.eq(states[1].state, "done"); H.eq(states[1].restarts, 1)
  H.eq(states[2].state, "failed"); H.match(states[2].error, "broke on purpose"); H.truthy(H.exists(states[2].log))
  H.eq(states[3].state, "done"); H.eq(states[3].restarts, 1)
  -- the merge job waited for the requeued tasks (afterany holds through a requeue) and merged everything
  local merge_log = ("%s/results/slurm/preempt/logs/lacos-preempt-merge_%d.out"):format(there, st.merge_job)
  H.match(H.read(merge_log) or "", "merged 5 runs from 3 shards", merge_log)
  local _, text = lacos_in(there, "sweep status preempt")
  H.match(text, "point 2 %(failed%): point 2 broke on purpose")
  H.match(text, "summary: 2 done, 1 failed")
  print(("#   3 points, two of them preempted and requeued once: %.1f s on the test cluster"):format(took))
end)

-- ---------------------------------------------------------------- cancel

H.test("Ctrl-C stops --wait, not the jobs; lacos sweep cancel: the running task checkpoints and stops without " ..
       "requeueing; the merge job folds it in", function()
  local there = mkdir(dir .. "/cancel")
  local pause = mkdir(dir .. "/pause-cancel")
  local wait = background(there, ("run %s --name cancelled --kinds pause,trivial --pause-dir %s --slurm --max-parallel 1 --wait")
                                 :format(SWEEP, q(pause)), "cancel-wait")
  H.truthy(C.await(function() return H.exists(pause .. "/paused-1.0") end, 300), "the point paused")
  os.execute(("kill -INT %d"):format(tonumber(H.read(dir .. "/cancel-wait.pid"):match("%d+"))))
  local rc, _, err = wait(60)
  H.eq(rc, 130, "exit status of an interrupted --wait; stderr: " .. err)
  H.match(err, "submitted 2 of 2 points")
  H.match(err, "sweep cancelled: stopped waiting; the jobs go on %(lacos sweep status cancelled; lacos sweep cancel cancelled%)\n")
  H.match(H.read(there .. "/results/slurm/cancelled/array.sbatch"), "\n#SBATCH %-%-array=1,2%%1\n")
  local st = status_json(there, "cancelled")
  H.eq(st.points[1].state, "running"); H.eq(st.points[2].state, "pending")
  H.truthy(st.merged == nil, "no merge while the jobs are there")
  local out
  rc, out, err = lacos_in(there, "sweep cancel cancelled")
  H.eq(rc, 0, err)
  H.match(out, "cancelled job array %d+")
  local array = H.read(pause .. "/paused-1.0"):match("^%S+ (%d+)")
  H.truthy(C.await(function() return not cluster:run("squeue -h"):match("%S") end, 120), "every job gone: " .. cluster:run("squeue"))
  st = status_json(there, "cancelled")
  H.eq(st.points[1].state, "interrupted"); H.eq(st.points[1].restarts, 0)
  H.match(st.points[1].error, "SIGTERM")
  H.eq(st.points[2].state, "cancelled")
  H.match(H.read(st.points[1].log), "the sweep was cancelled %(lacos sweep cancel%): not requeued")
  local db = R.open(there .. "/results/lacos.db", { readonly = true })
  H.eq(db:query("SELECT count(*) AS n FROM runs WHERE status = 'interrupted'")[1].n, 1, "the interrupted run, merged")
  db:close()
  H.truthy(H.exists(("%s/results/slurm/cancelled/cancelled-%s"):format(there, array)))
end)

H.test("--max-requeues caps the requeues: past it the task records the point interrupted and stops", function()
  local there = mkdir(dir .. "/capped")
  local pause = mkdir(dir .. "/pause-capped")
  local wait = background(there, ("run %s --name capped --kinds pause --pause-dir %s --slurm --wait --max-requeues 0")
                                 :format(SWEEP, q(pause)), "capped")
  H.truthy(C.await(function() return H.exists(pause .. "/paused-1.0") end, 300), "the point paused")
  local array = H.read(pause .. "/paused-1.0"):match("^%S+ (%d+)")
  cluster:run(("scancel --signal=USR2 --batch %s_1"):format(array))
  local rc, _, err = wait(300)
  H.eq(rc, 1, "exit status: the point did not finish; stderr: " .. err)
  H.match(err, "sweep capped: 0 done, 0 skipped %(done before%), 0 failed, 1 interrupted, of 1 points")
  local st = status_json(there, "capped")
  H.eq(st.points[1].state, "interrupted"); H.eq(st.points[1].restarts, 0)
  H.match(H.read(st.points[1].log), "not requeued: this task was requeued 0 times already %(%-%-max%-requeues 0%)")
  H.eq(cluster:run("squeue -h"), "", "nothing left in the queue")
end)

-- ---------------------------------------------------------------- several ranks per point

H.test("--ranks-per-point 2: srun --mpi=pmix trains each point over 2 ranks, rank 0 records it; the numbers of mpirun -np 2", function()
  if H.sh("command -v mpirun >/dev/null") ~= 0 then H.skip("no mpirun (apt-get install openmpi-bin)") end
  local lib = H.lacos:gsub("lacos$", "liblacos_mpi.so")
  if not H.exists(lib) then H.skip("this lacos was built without MPI (no " .. lib .. ")") end
  local here, there = mkdir(dir .. "/ranks-local"), mkdir(dir .. "/ranks-slurm")
  local argv = ("run %s --sizes tiny-xs --pairs 0,64 --eval-limit 16"):format(q(H.root .. "/experiments/scale.lua"))
  -- the reference: the same sweep on 2 ranks under mpirun, here
  local rc, _, err = H.sh(("cd %s && env -u LACOS_DB %s timeout 600 mpirun --allow-run-as-root --oversubscribe --mca btl_tcp_if_include lo " ..
                           "-np 2 %s %s"):format(q(here), ENV, q(H.lacos), argv))
  H.eq(rc, 0, "mpirun -np 2: " .. err)
  -- on Slurm: one array task per point, each an srun step of 2 ranks on one node (pmix)
  local out
  rc, out, err = lacos_in(there, argv .. " --slurm --wait --ranks-per-point 2 --sbatch-arg=--nodes=1")
  H.eq(rc, 0, "exit status; stderr: " .. err)
  H.match(err, "sweep scale%-synthetic: 2 done, 0 skipped %(done before%), 0 failed, 0 interrupted, of 2 points")
  H.match(out, "2 done runs")
  local script = H.read(there .. "/results/slurm/scale-synthetic/array.sbatch")
  H.match(script, "\n#SBATCH %-%-ntasks=2\n")
  H.match(script, "\nexec srun %-%-mpi=pmix %-n 2 ")
  H.eq(same_numbers(numbers(there .. "/results/lacos.db", "scale-synthetic"), numbers(here .. "/results/lacos.db", "scale-synthetic"),
                    "2 ranks on Slurm vs 2 ranks under mpirun"), 2)
  -- one run per point (rank 0's), and the log says the point ran on 2 ranks
  local db = R.open(there .. "/results/lacos.db", { readonly = true })
  H.eq(db:query("SELECT count(*) AS n FROM runs")[1].n, 2, "runs recorded")
  db:close()
  local st = status_json(there, "scale-synthetic")
  H.match(H.read(st.points[2].log), "task 2 %(job %d+_2, restart 0, host n%d, 2 ranks%)")
end)

H.test("a 2-rank point gets SIGUSR2 mid-training: the ranks stop together, rank 0 requeues, the resumed point has the " ..
       "numbers of an uninterrupted mpirun -np 2 run", function()
  if H.sh("command -v mpirun >/dev/null") ~= 0 then H.skip("no mpirun (apt-get install openmpi-bin)") end
  if not H.exists((H.lacos:gsub("lacos$", "liblacos_mpi.so"))) then H.skip("this lacos was built without MPI") end
  local here, there = mkdir(dir .. "/ranks-pre-local"), mkdir(dir .. "/ranks-pre-slurm")
  local pause = mkdir(dir .. "/pause-ranks")
  local args = ("run %s --name ranks-preempt --kinds pause --pause-dir %s --log-every 1"):format(SWEEP, q(pause))
  local rc, _, err = H.sh(("cd %s && env -u LACOS_DB %s timeout 600 mpirun --allow-run-as-root --oversubscribe --mca btl_tcp_if_include lo " ..
                           "-np 2 %s %s"):format(q(here), ENV, q(H.lacos), args))
  H.eq(rc, 0, "mpirun -np 2: " .. err)
  local wait = background(there, args .. " --slurm --wait --ranks-per-point 2 --sbatch-arg=--nodes=1", "ranks-preempt")
  H.truthy(C.await(function() return H.exists(pause .. "/paused-1.0") and H.exists(pause .. "/paused-1.1") end, 300),
           "both ranks paused after step 3; " .. (H.read(dir .. "/ranks-preempt.err") or ""))
  local array = H.read(pause .. "/paused-1.0"):match("^%S+ (%d+)")
  cluster:run(("scancel --signal=USR2 --batch %s_1"):format(array))
  release_requeued(array .. "_1", pause .. "/paused-1.0", pause .. "/paused-1.1")
  local out
  rc, out, err = wait(600)
  H.eq(rc, 0, "exit status; stderr: " .. err)
  H.match(err, "sweep ranks%-preempt: 1 done")
  H.eq(same_numbers(numbers(there .. "/results/lacos.db", "ranks-preempt"), numbers(here .. "/results/lacos.db", "ranks-preempt"),
                    "resumed 2 ranks vs uninterrupted 2 ranks"), 1)
  local db = R.open(there .. "/results/lacos.db", { readonly = true })
  local runs = db:query("SELECT status, error FROM runs ORDER BY id")
  db:close()
  H.eq(#runs, 2); H.eq(runs[1].status, "interrupted"); H.match(runs[1].error, "SIGUSR2"); H.eq(runs[2].status, "done")
  local st = status_json(there, "ranks-preempt")
  H.eq(st.points[1].restarts, 1)
  H.match(H.read(st.points[1].log), "requeued %(restart 1 of at most 3%)")
  H.eq(out, "")
end)

-- ---------------------------------------------------------------- hostile names

H.test("a hostile sweep name, folder and --sbatch-arg are quoted in the batch script; nothing runs through a shell", function()
  local name = [[it's "odd" $(touch PWNED1) `touch PWNED2`; x]]
  local there = mkdir(dir .. [[/we ird's "dir" $(touch PWNED3)]])
  local rc, _, err = lacos_in(there, ("run %s --name %s --kinds trivial,trivial --slurm --wait --sbatch-arg %s"):format(SWEEP,
    q(name), q([[--comment=a 'b' "c" $(touch PWNED4)]])))
  H.eq(rc, 0, "exit status; stderr: " .. err)
  H.match(err, "2 done, 0 skipped")
  local found, list = H.sh(("find %s -name 'PWNED*'"):format(q(dir)))
  H.eq(found, 0)
  H.eq(list, "", "files a shell would have made")
  local db = R.open(there .. "/results/lacos.db", { readonly = true })
  H.eq(db:query("SELECT count(*) AS n FROM runs r JOIN experiments e ON e.id = r.experiment_id WHERE e.name = ? AND r.status = 'done'",
                name)[1].n, 2)
  db:close()
  local sd = require("lacos.slurm").dir(name, there .. "/results/lacos.db")
  H.truthy(H.exists(sd .. "/array.sbatch"), "the sweep's folder: " .. sd)
  H.match(sd, "/slurm/it_s__odd_[%w_]+%-%x+$")
  -- the --sbatch-arg reached sbatch as one argument, quotes and all
  local job = cluster:run(("scontrol show job %s"):format(require("lacos.slurm").jobs(sd).submissions[1].array_job))
  H.truthy(job:find([[Comment=a 'b' "c" $(touch PWNED4)]], 1, true), "the comment as given: " .. job)
  local st = status_json(there, name)
  H.eq(st.name, name); H.eq(st.points[1].state, "done"); H.eq(st.points[2].state, "done")
end)

H.test("a grid with more points than the cluster's largest array index is refused before anything is submitted", function()
  local there = mkdir(dir .. "/too-many")
  local kinds = {}
  for i = 1, 50 do kinds[i] = "trivial" end
  local rc, _, err = lacos_in(there, ("run %s --name too-many --kinds %s --slurm"):format(SWEEP, table.concat(kinds, ",")))
  H.eq(rc, 1, err)
  H.match(err, "sweep too%-many: point 50 is beyond this cluster's largest array index 49 %(MaxArraySize = 50%)")
  H.truthy(not require("lacos.slurm").jobs(there .. "/results/slurm/too-many").submissions[1], "nothing submitted")
  H.eq(cluster:run("squeue -h -n lacos-too-many"), "")
end)

cluster:stop()
H.done()
