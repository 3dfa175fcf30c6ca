-- test_sweep: lacos.sweep's behaviour around the points, without training a
-- model: a failed point is recorded with its error and the sweep goes on
-- (summary, exit status, rerun); a bad grid is refused before the database
-- is opened, every problem named by its option; --dry-run lists every point
-- with estimates whose time follows the epochs and the amount of data.
local H = require "harness"
local lacos = require "lacos"
local sweep = lacos.sweep
local X = lacos.experiment
local R = lacos.results

local dir = H.tmp .. "/sweep"
os.execute(("rm -rf %q && mkdir -p %q"):format(dir, dir))
local have_data = H.data and H.exists(H.data .. "/sts/stsb/sts-test.csv")

local count = H.count

-- A point whose runner raises: recorded as failed with the message, the
-- sweep runs the next points, the summary and exit status say so.
H.test("a failed point is recorded with its error and the sweep goes on", function()
  local db_path = dir .. "/fail.db"
  local ran = {}
  local fail_on = 2
  local sw = sweep.new {
    name = "failing", axes = { n = { 1, 2, 3 } },
    run = function(p, ctx)
      ran[#ran + 1] = p.n
      ctx.run:log(0, { value = p.n })
      if p.n == fail_on then error("point " .. p.n .. " broke on purpose") end
      return { status = "done" }
    end,
  }
  local s = sw:execute { db = db_path, out = dir .. "/runs", quiet = true }
  H.same(ran, { 1, 2, 3 }, 0, "points run, the one after the failure included")
  H.eq(s.done, 2, "done")
  H.eq(s.failed, 1, "failed")
  H.eq(s.exit_status, 1, "exit status")
  H.eq(s.points[2].status, "failed")
  H.match(s.points[2].error, "point 2 broke on purpose")
  local db = R.open(db_path, { readonly = true })
  local rows = db:query("SELECT id, status, error, exit_reason FROM runs ORDER BY id")
  H.eq(#rows, 3, "runs")
  H.eq(rows[1].status, "done"); H.eq(rows[3].status, "done")
  H.eq(rows[2].status, "failed")
  H.eq(rows[2].exit_reason, "error")
  H.match(rows[2].error, "point 2 broke on purpose")
  H.eq(db:query("SELECT count(*) AS n FROM metrics WHERE run_id = ?", rows[2].id)[1].n, 1, "what it logged before failing is kept")
  db:close()
  -- the rerun skips the done points and runs the failed one again
  fail_on, ran = nil, {}
  s = sw:execute { db = db_path, out = dir .. "/runs", quiet = true }
  H.same(ran, { 2 }, 0, "points run again")
  H.eq(s.skipped, 2); H.eq(s.done, 1); H.eq(s.failed, 0); H.eq(s.exit_status, 0)
  H.eq(count(db_path, "SELECT count(*) AS n FROM runs WHERE status = 'done'"), 3)
end)

H.test("a failing sweep script: the summary line counts the failure, the exit status is 1", function()
  local script = H.write(dir .. "/failing.lua", [[
local lacos = require "lacos"
local sw = lacos.sweep.new {
  name = "cli-failing", script = arg[0], axes = { n = { 1, 2, 3 } },
  run = function(p) if p.n == 2 then error("no memory for point 2") end end,
}
local s = sw:execute { db = arg[1], out = arg[2] }
os.exit(s.exit_status)
]])
  local db_path = dir .. "/cli.db"
  local rc, out, err = H.sh(("%q run %q %q %q"):format(H.lacos, script, db_path, dir .. "/cli-runs"))
  H.eq(rc, 1, "exit status; stderr: " .. err)
  H.match(err, "%[2/3%] n=2: failed %(run 2%): [^\n]*no memory for point 2")
  H.match(err, "%[3/3%] n=3: run 3")
  H.match(err, "sweep cli%-failing: 2 done, 0 skipped %(done before%), 1 failed, 0 interrupted, of 3 points")
  H.match(err, "lacos results list %-%-status failed %-%-experiment cli%-failing")
  H.eq(out, "")
  H.eq(count(db_path, "SELECT count(*) AS n FROM runs WHERE status = 'failed' AND error LIKE '%no memory for point 2%'"), 1)
end)

-- ---------------------------------------------------------------- validation

local function good_point(extra)
  local p = { model = "tiny-xs", synthetic = true, data_root = H.data or "/nonexistent", pairs = 64, seed = 1,
              lr = 5e-3, epochs = 1, batch_size = 16, max_length = 32, targets = { "all" }, eval = { "english" },
              eval_limit = 16 }
  for k, v in pairs(extra or {}) do p[k] = v end
  return p
end

H.test("validate_point names the option of every problem", function()
  if not have_data then H.skip("the shared datasets (LACOS_TEST_DATA) are not there") end
  H.eq(X.validate_point(good_point()), true)
  H.eq(X.validate_point(good_point { pairs = "all", train_data = "xnli", pooling = "lasttoken" }), true)
  H.eq(X.validate_point(good_point { baseline = true }), true, "a baseline point (lacos results scale shows it apart)")
  H.raises("option 'baseline' must be a boolean, got \"yes\"", X.validate_point, good_point { baseline = "yes" })
  local err = H.raises("unknown option 'learning_rate' (known: alpha, baseline, batch_size,", X.validate_point,
                       good_point { learning_rate = 1e-3 })
  H.match(err, "checkpoint_every")
  H.raises("unknown option 'epoch' (did you mean 'epochs'?) (known: ", X.validate_point, good_point { epoch = 2 })
  H.raises([[option 'pairs' must be a whole number >= 0 or "all", got -5]], X.validate_point, good_point { pairs = -5 })
  H.raises([[option 'pairs' must be a whole number >= 0 or "all", got "many"]], X.validate_point, good_point { pairs = "many" })
  H.raises("option 'epochs' must be a whole number >= 1, got 0.5", X.validate_point, good_point { epochs = 0.5 })
  H.raises("option 'batch_size' must be a whole number >= 2, got 1", X.validate_point, good_point { batch_size = 1 })
  H.raises("option 'lr' must be a number > 0, got -0.001", X.validate_point, good_point { lr = -1e-3 })
  H.raises("option 'dropout' must be a number in [0, 1), got 1", X.validate_point, good_point { dropout = 1 })
  H.raises([[option 'targets' has "q_proj", which is not a LoRA target]], X.validate_point, good_point { targets = { "q_proj" } })
  H.raises([[option 'eval' has "french", which is not an evaluation group (english, multilingual)]], X.validate_point,
           good_point { eval = { "french" } })
  H.raises("option 'pooling' must be one of mean, weightedmean, lasttoken, cls, max, mean_sqrt_len_tokens, got \"median\"", X.validate_point,
           good_point { pooling = "median" })
  H.raises("option 'model': no model shape 'tiny-xxl' (known: bloom-560m", X.validate_point, good_point { model = "tiny-xxl" })
  H.raises("option 'model': no checkpoint " .. dir .. "/bloom-560m (lacos pull bigscience/bloom-560m)", X.validate_point,
           good_point { model = "bloom-560m", synthetic = false, models_dir = dir })
  local no_root = good_point()
  no_root.data_root = nil
  H.raises("option 'data_root' is required", X.validate_point, no_root)
  -- several problems at once, one per line
  local p = good_point { epochs = 0, seed = -1 }
  p.data_root = nil
  err = H.raises(nil, X.validate_point, p)
  local lines = 0
  for _ in err:gmatch("[^\n]+") do lines = lines + 1 end
  H.eq(lines, 3, "problems reported: " .. err)
  -- data presence: evaluation and training data checked apart
  local empty = dir .. "/empty-data"
  os.execute(("mkdir -p %q"):format(empty))
  err = H.raises("option 'data_root': the evaluation data is not all there under " .. empty .. ": sts12 (missing)",
                 X.validate_point, good_point { data_root = empty })
  H.match(err, "the training data is not all there under [^:]+: snli%-infersent %(missing%)")
  err = H.raises(nil, X.validate_point, good_point { data_root = empty, pairs = 0 })
  H.truthy(not err:find("training data", 1, true), "a point without training needs no training data: " .. err)
end)

H.test("a bad grid is refused before the database is opened: nothing is written", function()
  if not have_data then H.skip("the shared datasets (LACOS_TEST_DATA) are not there") end
  local db_path = dir .. "/bad.db"
  local ran = 0
  local function make(axes, fixed)
    return sweep.new { name = "bad", axes = axes, order = { "model", "pairs", "seed" }, fixed = fixed,
                       validate = X.validate_point, run = function() ran = ran + 1 end }
  end
  local fixed = { synthetic = true, data_root = H.data, eval = { "english" }, eval_limit = 16 }
  local sw = make({ model = { "tiny-xs", "tiny-s" }, pairs = { 0, -5, "lots" }, seed = { 1 } }, fixed)
  local err = H.raises("sweep bad is not valid (nothing was run or recorded):", sw.execute, sw, { db = db_path, quiet = true })
  -- one line per distinct problem, with how many points have it
  H.match(err, "\n  option 'pairs' must be a whole number >= 0 or \"all\", got %-5 %(2 points, the first 2: model=tiny%-xs pairs=%-5 seed=1%)")
  H.match(err, "\n  option 'pairs' must be a whole number >= 0 or \"all\", got \"lots\" %(2 points, the first 3: ")
  H.eq(ran, 0, "points run")
  H.truthy(not H.exists(db_path), "the database file was created")
  -- an existing database gains nothing either
  local db = R.open(db_path)
  db:close()
  local fixed2 = {}
  for k, v in pairs(fixed) do fixed2[k] = v end
  fixed2.learning_rate = 1e-3
  sw = make({ model = { "tiny-xs" }, pairs = { 0 }, seed = { 1 } }, fixed2)
  err = H.raises("unknown option 'learning_rate'", sw.execute, sw, { db = db_path, quiet = true })
  H.match(err, "%(the only point%)")
  H.eq(count(db_path, "SELECT count(*) AS n FROM experiments"), 0, "experiments")
  H.eq(count(db_path, "SELECT count(*) AS n FROM runs"), 0, "runs")
  -- a dry run validates too
  H.raises("unknown option 'learning_rate'", sw.execute, sw, { db = db_path, dry_run = true })
end)

H.test("scale.lua: bad --pairs and --sizes are usage errors (exit 2) and create no database", function()
  local db_path = dir .. "/scale-bad.db"
  local scale = H.root .. "/experiments/scale.lua"
  local rc, _, err = H.sh(("%q run %q --db %q --pairs 0,abc"):format(H.lacos, scale, db_path))
  H.eq(rc, 2, "exit status; stderr: " .. err)
  H.match(err, "scale: %-%-pairs: 'abc' is not a whole number >= 0 or 'all'")
  rc, _, err = H.sh(("%q run %q --db %q --synthetic --sizes tiny-xs,tiny-q"):format(H.lacos, scale, db_path))
  H.eq(rc, 2, "exit status; stderr: " .. err)
  H.match(err, "scale: %-%-sizes: 'tiny%-q' is not among the synthetic ladder %(tiny%-xs, tiny%-s, tiny%-m, tiny%-l%)")
  rc, _, err = H.sh(("%q run %q --db %q --synthetic --data %q"):format(H.lacos, scale, db_path, dir .. "/empty-data"))
  H.eq(rc, 1, "exit status; stderr: " .. err)
  H.match(err, "sweep scale%-synthetic is not valid %(nothing was run or recorded%)")
  H.match(err, "%-%-data: the evaluation data is not all there")
  H.truthy(not err:find("data_root", 1, true), "the message names the command-line option, not the point option: " .. err)
  H.truthy(not H.exists(db_path), "a database was created")
end)

-- ---------------------------------------------------------------- estimates

H.test("estimates: training time follows the epochs and the amount of data", function()
  if not have_data then H.skip("the shared datasets (LACOS_TEST_DATA) are not there") end
  local base = good_point { pairs = 0 }
  local e0 = X.estimate(base)
  H.eq(e0.examples, 0); H.eq(e0.train_seconds, 0)
  H.truthy(e0.eval_seconds > 0, "evaluation takes time")
  local e1 = X.estimate(good_point { pairs = 500, epochs = 1 })
  local e2 = X.estimate(good_point { pairs = 500, epochs = 2 })
  local e3 = X.estimate(good_point { pairs = 1000, epochs = 1 })
  H.truthy(e1.train_seconds > 0, "training takes time")
  H.near(e2.train_seconds, 2 * e1.train_seconds, 1e-9 * e1.train_seconds, "2 epochs")
  H.near(e3.train_seconds, 2 * e1.train_seconds, 1e-9 * e1.train_seconds, "twice the pairs")
  H.near(e1.eval_seconds, e0.eval_seconds, 0, "the evaluation does not depend on the training")
  H.near(e2.seconds, e2.train_seconds + e2.eval_seconds, 1e-9 * e2.seconds)
  H.eq(e2.examples, 500); H.eq(e2.epochs, 2)
  -- "all" and amounts beyond the data are what run_point trains on: the whole set
  local data = X.training_pairs(H.data, "nli")
  local all = X.estimate(good_point { pairs = "all" })
  H.eq(all.examples, data:size(), "'all'")
  H.eq(X.estimate(good_point { pairs = 10 * data:size() }).examples, data:size(), "more than there is")
  H.near(all.train_seconds, e1.train_seconds * data:size() / 500, 1e-9 * all.train_seconds)
  -- a bigger model costs more per token, an evaluation limit less
  -- (the released shapes are scaled from one measurement by their work per token, so their order is certain;
  -- two measured tiny models could swap places on a busy machine)
  local t560 = X.estimate(good_point { pairs = 500, model = "bloom-560m" }).train_seconds
  local t1b7 = X.estimate(good_point { pairs = 500, model = "bloom-1b7" }).train_seconds
  local t7b1 = X.estimate(good_point { pairs = 500, model = "bloom-7b1" }).train_seconds
  H.truthy(t560 < t1b7 and t1b7 < t7b1, ("bigger models cost more: %.0f, %.0f, %.0f s"):format(t560, t1b7, t7b1))
  H.truthy(X.estimate(good_point { pairs = 0, eval_limit = 0 }).eval_seconds > e0.eval_seconds, "every pair costs more than 16 per set")
  -- memory: the step's texts are anchors, positives and negatives
  H.truthy(e1.bytes > e0.bytes and e1.bytes < 1e9, ("memory %d"):format(e1.bytes))
  print(("#   tiny-xs: evaluation (16 pairs per set) %.2f s, 500 pairs x 1 epoch %.2f s"):format(e0.eval_seconds, e1.train_seconds))
end)

H.test("--dry-run lists every point with training, memory and time, and writes nothing", function()
  if not have_data then H.skip("the shared datasets (LACOS_TEST_DATA) are not there") end
  local script = H.write(dir .. "/dry.lua", [[
local lacos = require "lacos"
local X = lacos.experiment
local sw = lacos.sweep.new {
  name = "dry", script = arg[0],
  axes = { model = { "tiny-xs", "tiny-s" }, pairs = { 0, 300 }, epochs = { 1, 3 } },
  order = { "model", "pairs", "epochs" },
  fixed = { synthetic = true, data_root = arg[2], eval = { "english" }, eval_limit = 16, seed = 1 },
  validate = X.validate_point, estimate = X.estimate, run = X.run_point,
}
sw:execute { db = arg[1], dry_run = true }
]])
  local db_path = dir .. "/dry.db"
  local rc, out, err = H.sh(("%q run %q %q %q"):format(H.lacos, script, db_path, H.data))
  H.eq(rc, 0, "exit status; stderr: " .. err)
  H.match(out, "^sweep dry: 8 points\n")
  H.match(out, "\n   #  point +training +memory +time  status\n")
  local rows = {}
  for i, label, training, mem, time, status in out:gmatch("\n%s+(%d+)  (model=%S+ pairs=%S+ epochs=%d+)%s+(%S+[^\n]-)%s+([%d%.]+ %a?i?B)%s+([%d%.]+ %a+)%s+(%a+)") do
    rows[#rows + 1] = { tonumber(i), label, training, mem, time, status }
  end
  H.eq(#rows, 8, "point lines in:\n" .. out)
  H.eq(rows[1][2], "model=tiny-xs pairs=0 epochs=1"); H.eq(rows[1][3], "none")
  H.eq(rows[4][2], "model=tiny-xs pairs=300 epochs=3"); H.eq(rows[4][3], "300 x 3 epochs")
  H.eq(rows[7][3], "300 x 1 epoch")
  for _, r in ipairs(rows) do H.eq(r[6], "new", "status of point " .. r[1]) end
  H.match(out, "\nestimated total [%d%.]+ %a+, largest point [%d%.]+ MiB\n$")
  H.truthy(not H.exists(db_path), "a dry run created the database")
  -- with a database, finished points show as such
  local db = R.open(db_path)
  local run = db:start_run { experiment = "dry", config = { model = "tiny-xs", pairs = 0, epochs = 1, synthetic = true,
                             data_root = H.data, eval = { "english" }, eval_limit = 16, seed = 1 }, seed = 1, reuse = true }
  run:finish("done")
  db:close()
  rc, out = H.sh(("%q run %q %q %q"):format(H.lacos, script, db_path, H.data))
  H.eq(rc, 0)
  H.match(out, "\n   1  model=tiny%-xs pairs=0 epochs=1 [^\n]+done\n")
  H.match(out, "\n   2  model=tiny%-xs pairs=0 epochs=3 [^\n]+new\n")
end)

-- ---------------------------------------------------------------- output settings are not a point's identity

H.test("a sweep started on a terminal is resumed (skipped) through a pipe: output settings are no part of a point", function()
  if not have_data then H.skip("the shared datasets (LACOS_TEST_DATA) are not there") end
  local P = require "pty"
  local db_path = dir .. "/tty.db"
  local folder = dir .. "/tty"
  os.execute(("mkdir -p %q"):format(folder))
  local argv = { "/bin/sh", "-c", 'cd "$1" && shift && exec "$@"', "sh", folder, H.lacos, "run", H.root .. "/experiments/scale.lua",
                 "--sizes", "tiny-xs", "--pairs", "0,32", "--eval-limit", "16", "--db", db_path, "--data", H.data }
  local p = assert(P.spawn(argv, { LACOS_DB = false, TERM = "xterm", NO_COLOR = "1" }))
  local status = p:wait(300)
  local screen = P.plain(p.out)
  p:close()
  H.eq(status, 0, "exit status on the terminal; screen:\n" .. screen)
  H.match(screen, "%[2/2%] tiny%-xs pairs=32 seed=1: done in")
  H.match(screen, "%[#+%] 4/4 loss [%d.]+ +%d+ tok/s ETA", "the progress bar on the terminal")
  H.truthy(not screen:find("lacos: step ", 1, true), "no plain progress lines on a terminal:\n" .. screen)
  local rc, _, err = H.sh(("cd %q && %q run %q --sizes tiny-xs --pairs 0,32 --eval-limit 16 --db %q --data %q"):format(folder,
    H.lacos, H.root .. "/experiments/scale.lua", db_path, H.data))
  H.eq(rc, 0, err)
  H.match(err, "sweep scale%-synthetic: 0 done, 2 skipped %(done before%)")
  -- no output setting in any recorded point
  local db = R.open(db_path, { readonly = true })
  for _, r in ipairs(db:query("SELECT config_json FROM runs")) do
    H.truthy(not r.config_json:find("quiet", 1, true), "an output setting in a point: " .. r.config_json)
  end
  db:close()
  H.eq(X.POINT_OPTIONS.quiet, nil, "quiet is not a point option")
  for _, script in ipairs { "scale", "quickstart", "multilingual" } do
    local text = H.read(H.root .. "/experiments/" .. script .. ".lua")
    H.truthy(not text:find("isatty", 1, true), script .. ".lua makes a point depend on the terminal")
  end
end)

H.test("without a terminal, training prints a plain line every --log-every steps, a line per evaluation set, a summary per point", function()
  if not have_data then H.skip("the shared datasets (LACOS_TEST_DATA) are not there") end
  os.execute(("mkdir -p %q"):format(dir .. "/plain"))
  local rc, _, err = H.sh(("cd %q && %q run %q --sizes tiny-xs --pairs 48 --eval-limit 16 --db %q --data %q --log-every 2"):format(
    dir .. "/plain", H.lacos, H.root .. "/experiments/scale.lua", dir .. "/plain.db", H.data))
  H.eq(rc, 0, err)
  local steps = {}
  for step, total in err:gmatch("lacos: step (%d+)/(%d+) loss [%d.]+ lr [%d.e-]+ %d+ tok/s elapsed %d+[hms%d]* ETA %d+[hms%d]*\n") do
    steps[#steps + 1] = tonumber(step)
    H.eq(tonumber(total), 6)
  end
  H.same(steps, { 2, 4, 6 }, 0, "steps with a progress line")
  H.truthy(not err:find("\r", 1, true), "no carriage returns (the terminal's bar) in a log")
  H.match(err, "lacos: eval STSBenchmark: Spearman x100 %-?[%d.]+ %(16 pairs, [%d.]+ s%)\n")
  H.match(err, "lacos: eval STS17: Spearman x100 ar %-?[%d.]+, [^\n]+ %(112 pairs, 7 subsets, [%d.]+ s%)\n")
  H.match(err, "%[1/1%] tiny%-xs pairs=48 seed=1: done in [%d.]+ s — STSBenchmark %-?[%d.]+, SICK%-R %-?[%d.]+, English mean %-?[%d.]+")
end)

-- ---------------------------------------------------------------- --slurm without a cluster

local SWEEP_SCRIPT = H.root .. "/tests/lua/slurm_sweep.lua"

H.test("--slurm --dry-run prints the batch script: array and throttle, resources, srun for ranks, sbatch arguments", function()
  local folder = dir .. "/dry-slurm"
  os.execute(("mkdir -p %q"):format(folder))
  local base = ("cd %q && env -u LACOS_DB %q run %q --data %q --name dry --kinds trivial,trivial,trivial --slurm --dry-run --log-every 5"):format(
    folder, H.lacos, SWEEP_SCRIPT, H.data or "/nonexistent")
  local rc, out, err = H.sh(base .. " --partition gpu --time 04:00:00 --gpus-per-point 1 --cpus-per-point 4 --max-parallel 2" ..
                            " --sbatch-arg=--account=abc --sbatch-arg '--constraint=a100&ib' --ranks-per-point 4")
  H.eq(rc, 0, "exit status; stderr: " .. err)
  H.match(err, "would submit 3 of 3 points %(0 done%) as one job array, then a merge job %(%-%-dry%-run: nothing written or submitted%)")
  for _, line in ipairs { "#SBATCH --job-name=lacos-dry", "#SBATCH --array=1,2,3%2", "#SBATCH --requeue",
                          "#SBATCH --signal=B:USR2@120", "#SBATCH --open-mode=append", "#SBATCH --ntasks=4",
                          "#SBATCH --cpus-per-task=4", "#SBATCH --gpus-per-task=1", "#SBATCH --time=04:00:00",
                          "#SBATCH --partition=gpu", "#SBATCH --account=abc", '#SBATCH "--constraint=a100&ib"',
                          'export LACOS_THREADS="${SLURM_CPUS_PER_TASK:-4}"' } do
    H.truthy(out:find("\n" .. line .. "\n", 1, true), line .. " in:\n" .. out)
  end
  H.match(out, "\n#SBATCH %-%-mem%-per%-cpu=%d+M\n")   -- the point's plan, per rank and core
  H.match(out, "\n#SBATCH %-%-output=[^\n]*/results/slurm/dry/logs/%%x_%%A_%%a%.out\n")
  local exec = out:match("\nexec ([^\n]+)\n")
  H.truthy(exec, "an exec line")
  H.match(exec, "^srun %-%-mpi=pmix %-n 4 %-%-kill%-on%-bad%-exit=1 ")
  H.match(exec, " run [^ ]*slurm_sweep%.lua %-%-data [^ ]+ %-%-name dry %-%-kinds trivial,trivial,trivial %-%-log%-every 5 " ..
                "%-%-slurm%-task \"%$SLURM_ARRAY_TASK_ID\" %-%-slurm%-point \"%$point\"$")
  for _, gone in ipairs { "--slurm ", "--partition", "--time", "--ranks", "--sbatch-arg", "--dry-run", "--max-parallel" } do
    H.truthy(not exec:find(gone, 1, true), gone .. " reaches the task: " .. exec)
  end
  H.match(out, "\n  1%) point=%x+ ;;\n  2%) point=%x+ ;;\n  3%) point=%x+ ;;\n")
  H.truthy(not H.exists(folder .. "/results"), "a dry run wrote results/")
  -- the script is valid bash
  local script = H.write(dir .. "/dry.sbatch", out)
  local brc, _, berr = H.sh(("bash -n %q"):format(script))
  H.eq(brc, 0, "bash -n: " .. berr)
  -- one rank: the GPUs and memory per point
  rc, out, err = H.sh(base .. " --gpus-per-point 2 --mem-per-point 16G")
  H.eq(rc, 0, err)
  H.truthy(out:find("\n#SBATCH --gres=gpu:2\n", 1, true) and out:find("\n#SBATCH --mem=16G\n", 1, true), out)
  H.match(out, "\nexec [^\n]*lacos run ")
  -- several ranks need the MPI backend: a lacos without it refuses before anything is written
  rc, _, err = H.sh(base:gsub(" %-%-dry%-run", "") .. " --ranks-per-point 2 --sbatch-arg=--test-only")
  if not H.exists((H.lacos:gsub("lacos$", "liblacos_mpi.so"))) then
    H.eq(rc, 2, err)
    H.match(err, "%-%-ranks%-per%-point 2: this lacos was built without MPI")
    H.truthy(not H.exists(folder .. "/results"), "nothing written")
  end
end)

H.test("--slurm options are usage errors without --slurm, and bad values are refused before anything is written", function()
  local base = ("%q run %q --data %q --db %q --kinds trivial"):format(H.lacos, SWEEP_SCRIPT, H.data or "/x", dir .. "/usage.db")
  for _, case in ipairs {
    { "--partition gpu", "%-%-partition applies to %-%-slurm" },
    { "--wait", "%-%-wait applies to %-%-slurm" },
    { "--max-requeues 5", "%-%-max%-requeues applies to %-%-slurm" },
    { "--slurm --dry-run --mem-per-point lots", "%-%-mem%-per%-point expects a size as sbatch takes it" },
    { "--slurm --dry-run --time soon", "%-%-time expects a time limit as sbatch takes it" },
    { "--slurm --dry-run --wait", "%-%-wait and %-%-dry%-run do not go together" },
    { "--slurm --max-parallel 0", "%-%-max%-parallel must be at least 1" },
  } do
    local rc, _, err = H.sh(base .. " " .. case[1])
    H.eq(rc, 2, case[1] .. ": " .. err)
    H.match(err, case[2], case[1])
  end
  H.truthy(not H.exists(dir .. "/usage.db"), "a usage error created the database")
end)

H.test("--slurm validates the grid as a local run does: a bad one submits nothing", function()
  local folder = dir .. "/slurm-bad"
  os.execute(("mkdir -p %q %q"):format(folder, dir .. "/empty-data"))
  local cmd = ("cd %q && %q run %q --synthetic --sizes tiny-xs --data %q"):format(folder, H.lacos,
    H.root .. "/experiments/scale.lua", dir .. "/empty-data")
  local rc, _, local_err = H.sh(cmd)
  H.eq(rc, 1, local_err)
  local slurm_err
  rc, _, slurm_err = H.sh(cmd .. " --slurm")
  H.eq(rc, 1, slurm_err)
  H.match(slurm_err, "sweep scale%-synthetic is not valid %(nothing was run or recorded%)")
  H.eq(slurm_err:match("sweep scale%-synthetic is not valid.*$"), local_err:match("sweep scale%-synthetic is not valid.*$"),
       "the same problems, in the same words")
  H.truthy(not H.exists(folder .. "/results"), "nothing written")
end)

H.test("batch-script quoting: every hostile value reads back as itself in bash; #SBATCH values refuse a newline", function()
  local S = require "lacos.slurm"
  local hostile = { [[it's]], [["x" $(touch PWNED) `id` $HOME ${PATH}]], "a\nb", "tab\there", [[back\slash\]], "--",
                    "-n", "", "'", "''", [[;&|<>*?[]{}~!#]], "x\ny" }
  for _, v in ipairs(hostile) do
    local rc, out = H.sh("bash -c " .. S.shell_quote("printf %s " .. S.shell_quote(v)))
    H.eq(rc, 0, v)
    H.eq(out, v, "bash read back")
  end
  H.raises("cannot go into an #SBATCH line", S.sbatch_quote, "a\nb")
  H.eq(S.sbatch_quote("--account=abc"), "--account=abc")
  H.eq(S.sbatch_quote([[a "b" c\d #e]]), [["a \"b\" c\\d #e"]])
  H.eq(S.folder_name("scale"), "scale")
  H.match(S.folder_name("../../etc"), "^etc%-%x+$")
  H.match(S.folder_name("a/b"), "^a_b%-%x+$")
  H.truthy(S.folder_name("a/b") ~= S.folder_name("a_b"), "two names, two folders")
  -- the task's arguments: the command line less the submitting options, in both spellings
  local spec = lacos.sweep.with_options { name = "t", options = { { "--data", "DIR", "d" }, { "--x", nil, "flag" } } }
  local argv = S.task_argv({ "--data", "--slurm", "--slurm", "--partition=gpu", "--x", "--sbatch-arg", "--data=q", "--wait",
                             "--max-requeues", "5", "--", "--slurm" }, spec)
  H.same(argv, { "--data", "--slurm", "--x", "--max-requeues", "5", "--", "--slurm" }, 0, "task argv")
end)

H.done()
