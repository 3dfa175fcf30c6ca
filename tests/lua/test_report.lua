-- test_report: `lacos results scale` / `plot` (which experiment they show
-- when none is named, --json) and `lacos results mteb` (MTEB's result
-- format), on a results database filled through lacos.results with known
-- numbers, so every value printed can be checked against what was recorded.
-- tests/lua/test_experiments.lua checks the same commands on real runs.
local H = require "harness"
local lacos = require "lacos"
local json = require "lacos.json"
local R = lacos.results

local dir = H.tmp .. "/report"
os.execute(("rm -rf %q && mkdir -p %q"):format(dir, dir))
local db_path = dir .. "/r.db"
local SHA = ("ab"):rep(32)

-- A finished run of a scale sweep: params as experiments/scale.lua records
-- them, one final STS row per { dataset, language, spearman, pearson }.
local function add_run(experiment, model, amount, synthetic, scores, timings)
  local db = R.open(db_path)
  local run = db:start_run { experiment = experiment, name = ("%s %s pairs=%d"):format(experiment, model, amount),
                             config = { model = model, pairs = amount, synthetic = synthetic }, seed = 1 }
  run:params { model = model, pairs = amount, synthetic = synthetic, n_pairs = amount,
               model_params = lacos.bloom.param_count(model), eval_limit = 300 }
  for _, s in ipairs(scores) do
    run:sts { dataset = s[1], language = s[2], split = s.split or "test", n = s.n or 300, spearman = s[3], pearson = s[4],
              similarity = "cosine", pooling = "weightedmean", text_variant = "raw", aggregation = "all",
              model = model, dataset_sha256 = SHA }
  end
  for phase, seconds in pairs(timings or {}) do run:timing { phase = phase, avg_ns = seconds * 1e9, n_items = 300 } end
  run:finish("done")
  local id = run.id
  db:close()
  return id
end

local SCORES = {
  { "STS12", "en", 0.25, 0.5 }, { "STSBenchmark", "en", 0.625, 0.75 },
  { "STS17", "en", 0.5, 0.375 }, { "STS17", "en-ar", 0.125, 0.0625 }, { "STS17", "en-es", 0.3, 0.2 },
  { "stsb-multi-mt", "de", 0.4375, 0.4 }, { "stsb-multi-mt", "ja", 0.2, 0.1 },
}

local function lacos_results(args)
  return H.sh(("%q results %s --db %q"):format(H.lacos, args, db_path))
end

H.test("results scale without a scale sweep says how to make one", function()
  R.open(db_path):close()
  local rc, out, err = lacos_results("scale")
  H.eq(rc, 1, "exit status")
  H.eq(out, "")
  H.match(err, "no scale sweep yet %(no runs of experiment 'scale' or 'scale%-synthetic'%): lacos run experiments/scale.lua runs one")
end)

local synth_trained
H.test("results scale shows the synthetic sweep by default, and says so", function()
  add_run("scale-synthetic", "tiny-xs", 0, true, SCORES, { ["sts:STS12"] = 1.5 })
  synth_trained = add_run("scale-synthetic", "tiny-xs", 64, true, SCORES, { ["sts:STS12"] = 1.5, ["sts:STS17"] = 2.25 })
  local rc, out, err = lacos_results("scale")
  H.eq(rc, 0, err)
  H.match(err, "^lacos results: experiment 'scale%-synthetic': the SYNTHETIC ladder %(random%-weight models, not BLOOM's weights%), the scale sweep run last\n$")
  H.match(out, "^Spearman x100 %(cosine%) of experiment 'scale%-synthetic', 2 done runs — SYNTHETIC")
  H.match(out, "training pairs: 64\n")
  H.match(out, "tiny%-xs +2%.2M +25%.00 +62%.50 +43%.75\n")   -- STS12, STSBenchmark and their average
  -- named explicitly: the same table, no note
  local rc2, out2, err2 = lacos_results("scale scale-synthetic")
  H.eq(rc2, 0); H.eq(out2, out); H.eq(err2, "")
  -- an experiment that does not exist is an error that lists those that do
  rc, out, err = lacos_results("scale scale")
  H.eq(rc, 1)
  H.match(err, "no experiment 'scale' %(there is: scale%-synthetic%)")
end)

H.test("results scale picks the scale sweep with the newest run", function()
  add_run("scale", "tiny-s", 1000, false, SCORES)
  local rc, out, err = lacos_results("scale")
  H.eq(rc, 0, err)
  H.match(err, "experiment 'scale': the released BLOOM checkpoints, the scale sweep run last; 'scale%-synthetic' is there too %(lacos results scale scale%-synthetic%)")
  H.match(out, "of experiment 'scale', 1 done runs\n")
  add_run("scale-synthetic", "tiny-s", 128, true, SCORES)
  rc, out, err = lacos_results("scale")
  H.eq(rc, 0, err)
  H.match(err, "experiment 'scale%-synthetic': the SYNTHETIC ladder")
  H.match(out, "of experiment 'scale%-synthetic', 3 done runs")
  rc, out = lacos_results("scale scale")
  H.eq(rc, 0)
  H.match(out, "of experiment 'scale', 1 done runs\n")
end)

H.test("results scale --json: one document, the rows with the recorded values", function()
  local rc, out, err = lacos_results("scale --json")
  H.eq(rc, 0, err)
  H.match(err, "experiment 'scale%-synthetic'")   -- the note stays off stdout
  local doc = json.decode(out, "scale --json")
  H.eq(doc.experiment, "scale-synthetic")
  H.eq(doc.synthetic, true)
  H.eq(doc.done_runs, 3)
  H.eq(doc.metric, "cosine Spearman x100, mean over seeds")
  H.eq(#doc.rows, 3, "rows (pairs x model)")
  H.eq(doc.columns[1], "pairs"); H.eq(doc.columns[2], "model")
  H.eq(doc.columns[#doc.columns], "en7_avg")
  local row
  for _, r in ipairs(doc.rows) do if r.pairs == 64 then row = r end end
  H.truthy(row, "the 64-pair row")
  H.eq(row.model, "tiny-xs")
  H.eq(row.params, lacos.bloom.param_count("tiny-xs"))
  H.eq(row.seeds, 1)
  H.near(row.STS12, 25, 1e-9); H.near(row.STSBenchmark, 62.5, 1e-9)
  H.near(row["STS17 en"], 50, 1e-9); H.near(row["STS17 en-ar"], 12.5, 1e-9)
  H.near(row["stsb-multi-mt de"], 43.75, 1e-9)
  H.near(row.avg, (25 + 62.5 + 50 + 12.5 + 30 + 43.75 + 20) / 7, 1e-9)
  H.eq(row.en7_avg, json.null, "the English average needs all 7 English sets")
  -- the CSV has the same columns
  rc, out = lacos_results("scale --csv")
  H.eq(rc, 0)
  H.eq(out:match("^[^\n]+"), table.concat(doc.columns, ","))
end)

H.test("results plot without a name plots the same sweep", function()
  local plots = dir .. "/plots"
  local rc, out, err = lacos_results("plot --out " .. plots)
  H.eq(rc, 0, err)
  H.match(err, "experiment 'scale%-synthetic'")
  for _, f in ipairs { "scale-synthetic_vs_params.png", "scale-synthetic_vs_params.svg", "scale-synthetic_vs_data.png",
                       "scale-synthetic_vs_data.svg" } do
    H.truthy(out:find(plots .. "/" .. f .. "\n", 1, true), f .. " in the output: " .. out)
    H.truthy(H.exists(plots .. "/" .. f), f)
  end
end)

local function by_task(doc)
  local t = {}
  for _, r in ipairs(doc.results) do t[r.task_name] = r end
  return t
end
local function subset(task, split, name)
  for _, e in ipairs(task.scores[split] or {}) do if e.hf_subset == name then return e end end
end

H.test("results mteb RUN: MTEB's result format with the run's values", function()
  local report = require "lacos.report"
  H.eq(report._epoch("1970-01-01T00:00:00Z"), 0)
  H.eq(report._epoch("2000-03-01T00:00:00.500Z"), 951868800.5)
  local rc, out, err = lacos_results("mteb " .. synth_trained)
  H.eq(rc, 0, err)
  local doc = json.decode(out, "mteb")
  local db = R.open(db_path, { readonly = true })
  local run = db:run(synth_trained)
  db:close()
  H.eq(doc.run, run.uuid)
  H.eq(doc.lacos.run_id, synth_trained)
  H.eq(doc.lacos.model, "tiny-xs")
  H.eq(doc.lacos.eval_limit, 300)
  local tasks = by_task(doc)
  H.eq(#doc.results, 4, "tasks")
  for _, name in ipairs { "STS12", "STSBenchmark", "STS17", "STSBenchmarkMultilingualSTS" } do
    local t = tasks[name]
    H.truthy(t, name)
    H.eq(t.task_name, name)
    H.eq(t.mteb_version, json.null, name .. ": MTEB did not run")
    H.eq(t.dataset_revision, "sha256:" .. SHA, name)
    H.eq(t.kg_co2_emissions, json.null)
    H.near(t.date, report._epoch(run.ended_at), 1e-6, name .. " date")
    H.eq(#t.scores.test >= 1, true)
    for _, e in ipairs(t.scores.test) do
      H.eq(type(e.hf_subset), "string"); H.eq(type(e.languages), "table")
      H.eq(e.main_score, e.cosine_spearman, name .. ": the main score is cosine Spearman")
      H.eq(e.spearman, e.cosine_spearman); H.eq(e.pearson, e.cosine_pearson)
      H.eq(e.manhattan_spearman, nil, "no distances lacos did not compute")
      H.eq(e.n_pairs, 300)
      H.eq(e.dataset_sha256, SHA)
    end
  end
  local e = subset(tasks.STS12, "test", "default")
  H.eq(e.main_score, 0.25); H.eq(e.cosine_pearson, 0.5)
  H.same(e.languages, { "eng-Latn" })
  H.eq(tasks.STS12.evaluation_time, 1.5)
  H.eq(tasks.STSBenchmark.evaluation_time, json.null, "no timing recorded: null, not a guess")
  H.eq(tasks.STS17.evaluation_time, 2.25)
  e = subset(tasks.STS17, "test", "en-en")
  H.eq(e.main_score, 0.5); H.same(e.languages, { "eng-Latn" })
  e = subset(tasks.STS17, "test", "en-ar")
  H.eq(e.main_score, 0.125); H.eq(e.cosine_pearson, 0.0625); H.same(e.languages, { "eng-Latn", "ara-Arab" })
  H.eq(#tasks.STS17.scores.test, 2, "STS17 subsets (the WMT en-es track is not MTEB's)")
  e = subset(tasks.STSBenchmarkMultilingualSTS, "test", "de")
  H.eq(e.main_score, 0.4375); H.same(e.languages, { "deu-Latn" })
  H.eq(#tasks.STSBenchmarkMultilingualSTS.scores.test, 1, "stsb-multi-mt subsets (ja is not in MTEB's)")
  local skipped = {}
  for _, s in ipairs(doc.lacos.skipped) do skipped[s.dataset .. " " .. s.language] = s.reason end
  H.eq(skipped["STS17 en-es"], "'en-es' is not one of MTEB's STS17 subsets")
  H.eq(skipped["stsb-multi-mt ja"], "'ja' is not one of MTEB's STSBenchmarkMultilingualSTS subsets")
end)

H.test("results mteb RUN --out DIR: one <task>.json per task, as MTEB lays them out", function()
  local out_dir = dir .. "/mteb"
  local rc, out, err = lacos_results(("mteb %d --out %q"):format(synth_trained, out_dir))
  H.eq(rc, 0, err)
  local _, whole = lacos_results("mteb " .. synth_trained)
  local tasks = by_task(json.decode(whole))
  local files = 0
  for path in out:gmatch("[^\n]+") do
    local t = json.read(path)
    H.eq(path, out_dir .. "/" .. t.task_name .. ".json")
    H.eq(json.encode(t), json.encode(tasks[t.task_name]), path)
    files = files + 1
  end
  H.eq(files, 4)
end)

H.test("results mteb maps `lacos sts` set names and skips what MTEB does not score", function()
  local db = R.open(db_path)
  local run = db:start_run { name = "sts models/x", config = { sets = "stsb:test,sts17:test,sts12:test" } }
  local function sts(dataset, language, sp, split)
    run:sts { dataset = dataset, language = language, split = split or "test", n = 100, spearman = sp, pearson = sp / 2,
              similarity = "cosine", aggregation = "all", text_variant = "raw" }
  end
  sts("stsb", "all", 0.8); sts("stsb", "all", 0.7, "dev")
  sts("sts17", "all", 0.6); sts("sts17/ar-ar", "ar", 0.55); sts("sts17/en-es-wmt", "en-es", 0.1)
  sts("sts12", "all", 0.4); sts("sts12/MSRpar", "en", 0.3)
  sts("my-pairs.tsv", "all", 0.9)
  run:timing { phase = "sts:stsb", avg_ns = 4e9 }
  run:finish("done")
  local id = run.id
  local empty = db:start_run { name = "no sts" }
  empty:finish("done")
  local empty_id = empty.id
  db:close()
  local rc, out, err = lacos_results("mteb " .. id)
  H.eq(rc, 0, err)
  local doc = json.decode(out)
  local tasks = by_task(doc)
  H.eq(subset(tasks.STSBenchmark, "test", "default").main_score, 0.8)
  H.eq(subset(tasks.STSBenchmark, "validation", "default").main_score, 0.7, "STSb's dev split is MTEB's validation")
  H.eq(tasks.STSBenchmark.evaluation_time, 4)
  H.eq(subset(tasks.STS17, "test", "ar-ar").main_score, 0.55)
  H.eq(#tasks.STS17.scores.test, 1)
  H.eq(subset(tasks.STS12, "test", "default").main_score, 0.4, "the whole set, not its MSRpar part")
  H.eq(tasks.STS12.dataset_revision, "unknown: lacos recorded no checksum of the data")
  local reasons = {}
  for _, s in ipairs(doc.lacos.skipped) do reasons[s.dataset] = s.reason end
  H.eq(reasons["sts17"], "the STS17 subsets taken together, which MTEB does not score")
  H.eq(reasons["sts17/en-es-wmt"], "'en-es-wmt' is not one of MTEB's STS17 subsets")
  H.eq(reasons["sts12/MSRpar"], "one part of STS12, which MTEB scores whole")
  H.eq(reasons["my-pairs.tsv"], "not one of MTEB's STS tasks")
  rc, out, err = lacos_results("mteb " .. empty_id)
  H.eq(rc, 1)
  H.match(err, "run " .. empty_id .. " has no final STS results to export")
  rc, out, err = lacos_results("mteb 999")
  H.eq(rc, 1)
  H.match(err, "no run '999'")
end)

H.done()
