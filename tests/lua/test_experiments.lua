-- test_experiments: the experiment scripts as the README runs them.
-- experiments/scale.lua and experiments/multilingual.lua --dry-run list
-- their points; then the README's sequence on a tiny synthetic sweep, from a
-- fresh folder with the default database (results/lacos.db):
--   lacos run experiments/scale.lua   (here with --sizes tiny-xs --pairs 0,64 --eval-limit 16)
--   lacos results scale               (finds the synthetic sweep, says so)
--   lacos results plot
-- and `lacos results scale --json` / `lacos results mteb RUN` checked
-- against the numbers the runs recorded.
local H = require "harness"
local lacos = require "lacos"
local json = require "lacos.json"
local R = lacos.results

if not H.data or not H.exists(H.data .. "/sts/stsb/sts-test.csv") then
  H.skip_test("experiment scripts", "the shared datasets (LACOS_TEST_DATA) are not there")
  H.done()
end

local dir = H.tmp .. "/experiments"
os.execute(("rm -rf %q && mkdir -p %q"):format(dir, dir))
-- As a user runs them: from their own folder, no LACOS_DB (the runner sets
-- one for every test), the data root from LACOS_DATA.
local function lacos_in(folder, args)
  return H.sh(("cd %q && env -u LACOS_DB LACOS_DATA=%q %q %s"):format(folder, H.data, H.lacos, args))
end

-- The point lines of a dry run: { index, label, training, memory, time, status }.
local function dry_points(out)
  local rows = {}
  for line in out:gmatch("[^\n]+") do
    local i, rest = line:match("^%s+(%d+)  (.+)$")
    if i then
      local label, training, mem, time, status = rest:match("^(.-)%s%s+(%S.-)%s%s+([%d%.]+ %a?i?B)%s+([%d%.]+ %a+)%s+(%a+)$")
      rows[#rows + 1] = { tonumber(i), label, training, mem, time, status }
    end
  end
  return rows
end

H.test("experiments/scale.lua --dry-run lists the synthetic sweep's 12 points", function()
  local folder = dir .. "/dry-scale"
  os.execute(("mkdir -p %q"):format(folder))
  local rc, out, err = lacos_in(folder, ("run %q --dry-run"):format(H.root .. "/experiments/scale.lua"))
  H.eq(rc, 0, "exit status; stderr: " .. err)
  H.match(err, "running the SYNTHETIC ladder")
  H.match(out, "^sweep scale%-synthetic: 12 points\n")
  local rows = dry_points(out)
  H.eq(#rows, 12, "point lines in:\n" .. out)
  local i = 0
  for _, model in ipairs { "tiny-xs", "tiny-s", "tiny-m", "tiny-l" } do
    for _, amount in ipairs { 0, 500, 2000 } do
      i = i + 1
      H.eq(rows[i][1], i)
      H.eq(rows[i][2], ("%s pairs=%d seed=1"):format(model, amount))
      H.eq(rows[i][3], amount == 0 and "none" or ("%d x 2 epochs"):format(amount))
      H.eq(rows[i][6], "new")
    end
  end
  H.match(out, "\nestimated total [%d%.]+ %a+, largest point [%d%.]+ MiB\n$")
  H.truthy(not H.exists(folder .. "/results"), "a dry run wrote results/")
end)

H.test("experiments/multilingual.lua --dry-run lists its 4 points", function()
  local folder = dir .. "/dry-multi"
  os.execute(("mkdir -p %q"):format(folder))
  local rc, out, err = lacos_in(folder, ("run %q --dry-run"):format(H.root .. "/experiments/multilingual.lua"))
  H.eq(rc, 0, "exit status; stderr: " .. err)
  H.match(out, "^sweep multilingual%-synthetic: 4 points\n")
  local rows = dry_points(out)
  H.eq(#rows, 4, "point lines in:\n" .. out)
  H.eq(rows[1][2], "tiny-s nli pairs=2000 seed=1"); H.eq(rows[2][2], "tiny-s xnli pairs=2000 seed=1")
  H.eq(rows[3][2], "tiny-m nli pairs=2000 seed=1"); H.eq(rows[4][2], "tiny-m xnli pairs=2000 seed=1")
  for _, r in ipairs(rows) do H.eq(r[3], "2000 x 1 epoch"); H.eq(r[6], "new") end
  H.truthy(not H.exists(folder .. "/results"), "a dry run wrote results/")
end)

-- ---------------------------------------------------------------- the README's sequence

local folder = dir .. "/readme"
os.execute(("mkdir -p %q"):format(folder))
local db_path = folder .. "/results/lacos.db"
local SCALE = ("run %q --sizes tiny-xs --pairs 0,64 --eval-limit 16"):format(H.root .. "/experiments/scale.lua")

H.test("lacos run experiments/scale.lua (a tiny synthetic sweep), then again", function()
  local rc, out, err = lacos_in(folder, SCALE .. " --dry-run")
  H.eq(rc, 0, err)
  H.eq(#dry_points(out), 2)
  rc, out, err = lacos_in(folder, SCALE)
  H.eq(rc, 0, "exit status; stderr: " .. err)
  H.match(err, "sweep scale%-synthetic: 2 done, 0 skipped %(done before%), 0 failed, 0 interrupted, of 2 points")
  H.match(out, "experiment 'scale%-synthetic': SYNTHETIC — random%-weight models, not BLOOM's weights, 2 done runs")
  H.match(out, "training pairs: 64\n")
  -- the ladder's recipe is not the paper's: said on stderr, recorded with the trained point, stated in the table
  local note = "not the paper's recipe: targets all (paper query_key_value), dropout 0 (paper 0.05), lr 0.005 (paper 0.0002), epochs 2 (paper 1)"
  H.truthy(err:find("scale: the synthetic ladder trains with its own recipe: " .. note, 1, true), err)
  H.truthy(out:find("\ntrained: LoRA r 8, alpha 16 on all, dropout 0, lr 0.005, 2 epochs, batch 16, max length 64; data: ", 1, true), out)
  H.truthy(out:find("; " .. note .. "\n", 1, true), out)
  H.match(out, "lacos results scale scale%-synthetic")
  H.truthy(H.exists(db_path), "results/lacos.db")
  rc, _, err = lacos_in(folder, SCALE)
  H.eq(rc, 0, err)
  H.match(err, "0 done, 2 skipped %(done before%)")
  local recipes = R.open(db_path, { readonly = true }):query(
    "SELECT p.value_text AS recipe FROM params p JOIN params q ON q.run_id = p.run_id AND q.key = 'pairs' WHERE p.key = 'recipe' ORDER BY q.value_num")
  H.eq(#recipes, 1, "the trained point records its recipe; the untrained one has none")
  H.eq(recipes[1].recipe, note)
  -- paths are recorded absolutely (the sweep ran from its folder with the default, relative, models/)
  local rdb = R.open(db_path, { readonly = true })
  local real = require("lacos.util").abspath(folder)
  for _, r in ipairs(rdb:query("SELECT key, value_text FROM params WHERE key IN ('models_dir', 'data_root')")) do
    H.eq(r.value_text:sub(1, 1), "/", r.key .. " " .. r.value_text)
    H.truthy(not r.value_text:find("/../", 1, true) and not r.value_text:find("/./", 1, true), r.value_text)
    if r.key == "models_dir" then H.eq(r.value_text, real .. "/models") end
  end
  local arts = rdb:query("SELECT path FROM artifacts WHERE kind = 'adapter'")
  H.eq(#arts, 1, "the trained point's adapter")
  H.eq(arts[1].path:sub(1, #real + 1), real .. "/", arts[1].path)
  rdb:close()
  -- what the dry run estimated next to what the runs took (on a shared machine, a rough guide)
  local db = R.open(db_path, { readonly = true })
  for _, r in ipairs(db:query([[SELECT r.config_json, s.duration_s,
                                  (SELECT sum(avg_ns) / 1e9 FROM timings t WHERE t.run_id = r.id AND t.phase LIKE 'sts:%') AS eval_s
                                  FROM runs r JOIN run_summary s ON s.id = r.id ORDER BY r.id]])) do
    local p = json.decode(r.config_json)
    local e = lacos.experiment.estimate(p)
    print(("#   tiny-xs pairs=%-3s estimated %5.1f s (evaluation %5.1f), took %5.1f s (evaluation %5.1f)"):format(
      tostring(p.pairs), e.seconds, e.eval_seconds, r.duration_s, r.eval_s))
  end
  db:close()
end)

local function recorded()
  local db = R.open(db_path, { readonly = true })
  local runs = db:query([[SELECT r.id AS id, (SELECT value_num FROM params WHERE run_id = r.id AND key = 'pairs') AS pairs
                            FROM runs r ORDER BY r.id]])
  local by_pairs = {}
  for _, r in ipairs(runs) do
    r.sts = db:query("SELECT * FROM sts_results WHERE run_id = ? AND step = -1 ORDER BY id", r.id)
    r.timings = db:query("SELECT * FROM timings WHERE run_id = ? AND phase LIKE 'sts:%'", r.id)
    by_pairs[r.pairs] = r
  end
  db:close()
  return by_pairs
end

H.test("lacos results scale: the synthetic sweep, said to be synthetic", function()
  local rc, out, err = lacos_in(folder, "results scale")
  H.eq(rc, 0, err)
  H.match(err, "experiment 'scale%-synthetic': the SYNTHETIC ladder")
  H.match(out, "^experiment 'scale%-synthetic': SYNTHETIC — random%-weight models, not BLOOM's weights, 2 done runs\n")
  H.match(out, "\nevaluated: cosine Spearman x100 on the test splits of 7 English sets %+ 18 multilingual tracks; first 16 pairs of each;")
  H.match(out, "training pairs: 0 %(untrained%)\n")
  H.match(out, "training pairs: 64\n")
  H.match(out, "STS17 en%-ar")
end)

H.test("lacos results scale --json: the recorded Spearman values x100", function()
  local rc, out, err = lacos_in(folder, "results scale --json")
  H.eq(rc, 0, err)
  local doc = json.decode(out, "results scale --json")
  H.eq(doc.experiment, "scale-synthetic"); H.eq(doc.synthetic, true); H.eq(doc.done_runs, 2)
  H.eq(#doc.groups, 1, "one group: every run evaluated and trained alike")
  local rows = doc.groups[1].rows
  H.eq(#rows, 2)
  local runs = recorded()
  local checked = 0
  for _, row in ipairs(rows) do
    local run = runs[row.pairs]
    H.truthy(run, "a run for pairs=" .. tostring(row.pairs))
    H.eq(row.model, "tiny-xs"); H.eq(row.n, 1); H.same(row.seeds, { 1 })
    H.eq(row.params, lacos.bloom.param_count("tiny-xs"))
    for _, s in ipairs(run.sts) do
      local col = (s.language == "en" and s.dataset ~= "STS17" and s.dataset ~= "stsb-multi-mt") and s.dataset
                  or (s.dataset .. " " .. s.language)
      H.near(row.scores[col].mean, 100 * s.spearman, 1e-9, col)
      checked = checked + 1
    end
  end
  H.eq(checked, 2 * 25, "values checked: 7 English sets, 7 STS17 tracks, 11 stsb-multi-mt languages per run")
end)

H.test("lacos results plot: the sweep's two figures (PNG, SVG, PDF, and the points as CSV) under results/", function()
  local rc, out, err = lacos_in(folder, "results plot")
  H.eq(rc, 0, err)
  H.match(err, "experiment 'scale%-synthetic'")
  local n = 0
  for path in out:gmatch("[^\n]+") do
    H.match(path, "^results/scale%-synthetic_vs_[a-z]+%.[a-z][a-z][a-z]$")
    local body = H.read(folder .. "/" .. path)
    H.truthy(body and #body > 0, path)
    n = n + 1
  end
  H.eq(n, 8)
end)

H.test("lacos results mteb RUN: a trained point's scores in MTEB's format", function()
  local run = recorded()[64]
  local rc, out, err = lacos_in(folder, "results mteb " .. run.id)
  H.eq(rc, 0, err)
  local doc = json.decode(out, "results mteb")
  local tasks = {}
  for _, t in ipairs(doc.results) do tasks[t.task_name] = t end
  H.eq(#doc.results, 9, "STS12-16, STSBenchmark, SICK-R, STS17, STSBenchmarkMultilingualSTS")
  local timing = {}
  for _, t in ipairs(run.timings) do timing[t.phase:sub(5)] = t.avg_ns / 1e9 end
  local MTEB = { ["stsb-multi-mt"] = "STSBenchmarkMultilingualSTS" }
  local exported = 0
  for _, s in ipairs(run.sts) do
    local t = tasks[MTEB[s.dataset] or s.dataset]
    H.truthy(t, s.dataset)
    H.eq(t.mteb_version, json.null)
    H.eq(t.evaluation_time, timing[s.dataset], s.dataset .. " evaluation_time")
    H.truthy(t.evaluation_time > 0, "evaluation_time > 0")
    local subset = (s.dataset == "STS17" and not s.language:find("-")) and (s.language .. "-" .. s.language)
                   or (s.dataset == "STS17" or s.dataset == "stsb-multi-mt") and s.language or "default"
    local entry
    for _, e in ipairs(t.scores.test) do if e.hf_subset == subset then entry = e end end
    if entry then
      H.eq(entry.main_score, s.spearman, s.dataset .. " " .. subset)
      H.eq(entry.cosine_spearman, s.spearman); H.eq(entry.cosine_pearson, s.pearson)
      H.eq(entry.n_pairs, s.n_pairs); H.eq(entry.n_pairs, 16)
      H.eq(entry.dataset_sha256, s.dataset_sha256)
      H.eq(entry.languages[1], lacos.report.MTEB_LANG[s.language:match("^[^-]+")])
      exported = exported + 1
    end
  end
  H.eq(exported, 25 - 2, "every recorded score but STS17's WMT en-es track and stsb-multi-mt ja")
  H.eq(#doc.lacos.skipped, 2)
end)

-- --baseline: a sentence-transformers model evaluated untrained beside the
-- sweep, as its own row and dashed line, labelled as the baseline and with
-- how it embeds (its own pooling, f32) where the sweep's models differ.
local minilm = H.root .. "/models/all-MiniLM-L6-v2"
if not H.exists(minilm .. "/model.safetensors") then
  H.skip_test("experiments/scale.lua --baseline", "models/all-MiniLM-L6-v2 is absent (make models-minilm)")
else
  H.test("experiments/scale.lua --baseline models/all-MiniLM-L6-v2: a row and a line of its own, labelled", function()
    local bfolder = dir .. "/baseline"
    os.execute(("mkdir -p %q"):format(bfolder))
    local cmd = ("run %q --sizes tiny-xs --pairs 0 --eval-limit 16 --baseline %q"):format(H.root .. "/experiments/scale.lua", minilm)
    local rc, out, err = lacos_in(bfolder, cmd .. " --dry-run")
    H.eq(rc, 0, err)
    local pts = dry_points(out)
    H.eq(#pts, 2)
    H.eq(pts[1][2], "all-MiniLM-L6-v2 (baseline) pairs=0 seed=1")
    rc, out, err = lacos_in(bfolder, cmd)
    H.eq(rc, 0, "exit status; stderr: " .. err)
    H.match(err, "sweep scale%-synthetic: 2 done, 0 skipped")
    rc, out, err = lacos_in(bfolder, "results scale")
    H.eq(rc, 0, err)
    -- one group: the baseline joins the sweep's untrained block, saying how it embeds
    H.truthy(not out:find("2 groups", 1, true), out)
    H.match(out, "training pairs: 0 %(untrained%)\nmodel +params +n +STS12[^\n]*\ntiny%-xs +2%.2M +1 [^\n]*\n" ..
                 "all%-MiniLM%-L6%-v2 %(baseline, mean pooling, f32 weights%) +22%.6M +1 ")
    rc, out, err = lacos_in(bfolder, "results scale --json")
    H.eq(rc, 0, err)
    local doc = json.decode(out, "results scale --json")
    H.eq(#doc.groups, 1)
    local base
    for _, row in ipairs(doc.groups[1].rows) do if row.baseline then base = row end end
    H.truthy(base, "a baseline row")
    H.eq(base.model, "all-MiniLM-L6-v2"); H.eq(base.params, 22565376); H.eq(base.pairs, 0)
    H.eq(base.baseline_own, "mean pooling, f32 weights")
    local db = R.open(bfolder .. "/results/lacos.db", { readonly = true })
    local rows = db:query([[SELECT s.spearman FROM sts_results s JOIN params p ON p.run_id = s.run_id AND p.key = 'baseline'
                             WHERE s.dataset = 'STSBenchmark' AND s.step = -1]])
    local recorded_params = {}
    for _, r in ipairs(db:query([[SELECT key, value_text FROM params WHERE run_id = (SELECT run_id FROM params WHERE key = 'baseline')
                                   AND key IN ('quant', 'pooling', 'family')]])) do recorded_params[r.key] = r.value_text end
    db:close()
    H.eq(#rows, 1)
    H.near(base.scores.STSBenchmark.mean, 100 * rows[1].spearman, 1e-9)
    H.same(recorded_params, { quant = "f32", pooling = "mean", family = "bert" })
    rc, out, err = lacos_in(bfolder, "results plot")
    H.eq(rc, 0, err)
    for _, fig in ipairs { "vs_params", "vs_data" } do
      local csv = H.read(bfolder .. "/results/scale-synthetic_" .. fig .. ".csv")
      local lines = 0
      for line in (csv or ""):gmatch("[^\n]+") do
        if line:find('"all-MiniLM-L6-v2 (baseline, mean pooling, f32 weights)', 1, true) then
          H.match(line, '",true,', fig); lines = lines + 1
        end
      end
      H.eq(lines, 4, fig .. ": a baseline line (two ends) in each panel: " .. tostring(csv))
      local png = H.read(bfolder .. "/results/scale-synthetic_" .. fig .. ".png")
      H.truthy(png and png:sub(2, 4) == "PNG", fig .. ".png")
    end
    rc, out, err = lacos_in(bfolder, ("run %q --sizes tiny-xs --pairs 0 --baseline %q"):format(H.root .. "/experiments/scale.lua",
                                                                                          bfolder .. "/no-such-model"))
    H.eq(rc, 2, err)
    H.match(err, "%-%-baseline: .*/no%-such%-model is not a directory")
  end)
end

H.done()
